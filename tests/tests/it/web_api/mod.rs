//! The HTTP API against a real `yichuang http` process: every endpoint, with good
//! input and with bad input (wrong types, missing fields, unknown items, illegal
//! transitions, oversized bodies, no session, wrong passwords). Every failure must
//! be a JSON error with the right status, and must change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use automerge::Change;
use serde_json::{Value, json};
use yichuang_node::http::LOGINS_IN_FLIGHT_MAX;
use yichuang_node::http::throttle::{LOGIN_FAILURES_MAX, LOGIN_WINDOW_MS, LoginGuard, LoginLimits};
use yichuang_node::store::Store;
use yichuang_tests::web::{Api, InProcess, PASSWORD, Server, add_user};
use yichuang_tests::{TempDir, fails, init_node, json, ok};

mod auth;
mod cases;
mod node;

const ID: &str = "11010519491231002X";
const PHONE: &str = "13800138000";

struct Node {
    _dir: TempDir,
    dir: String,
    server: Server,
    api: Api,
}

/// A center node with a clerk `C007`, its server, and a signed-in client.
fn center() -> Node {
    let dir = TempDir::new("web-api");
    let d = init_node(dir.path(), "center", Some("003"));
    add_user(&d, "C007", "clerk", PASSWORD);
    let server = Server::http(&d);
    let api = server.client().login("C007", PASSWORD);
    Node {
        _dir: dir,
        dir: d,
        server,
        api,
    }
}

/// Adds an account with `role` to the node and signs it in.
fn signed_in(n: &Node, name: &str, role: &str) -> Api {
    add_user(&n.dir, name, role, PASSWORD);
    n.server.client().login(name, PASSWORD)
}

fn first_item(api: &Api) -> Value {
    let r = api.get("/api/catalog");
    r.expect(200);
    r.json[0].clone()
}

fn case_body(item: &str) -> Value {
    json!({"item_code": item, "applicant": {"name": "王小明", "id_no": ID, "phone": PHONE}})
}

fn register(api: &Api, item: &str) -> Value {
    let r = api.post("/api/cases", &case_body(item));
    r.expect(201);
    r.json.clone()
}

fn case_count(api: &Api) -> usize {
    api.get("/api/cases?limit=1000").json["count"]
        .as_u64()
        .expect("count") as usize
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Copies every change of a case from one store to another, as sync would.
fn copy_case(from: &mut Store, to: &mut Store, doc_id: &str) {
    let id = doc_id.parse().unwrap();
    let changes: Vec<Change> = from
        .raw_changes(&id)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| Change::from_bytes(bytes).unwrap())
        .collect();
    to.apply_remote(&id, changes, Some("peer")).unwrap();
}

/// Makes a registered case's `applicant.phone` a conflict, as two nodes apart would:
/// the hub gets the case, its clerk H001 changes the phone while C007 changes it at
/// the center, and the hub's change arrives. Returns the case number.
fn phone_conflict(n: &Node, created: &Value) -> String {
    let case_no = created["case_no"].as_str().unwrap().to_owned();
    let doc_id = created["doc_id"].as_str().unwrap().to_owned();
    let hub_dir = TempDir::new("web-hub");
    let h = init_node(hub_dir.path(), "hub", None);
    let mut hub = Store::open(std::path::Path::new(&h)).unwrap();
    let mut center = Store::open(std::path::Path::new(&n.dir)).unwrap();
    copy_case(&mut center, &mut hub, &doc_id);
    hub.case_edit(
        &case_no,
        "H001",
        &[("applicant.phone".into(), "13700137000".into())],
    )
    .unwrap();
    n.api
        .patch(
            &format!("/api/cases/{case_no}"),
            &json!({"set": {"applicant.phone": "13900139000"}}),
        )
        .expect(200);
    copy_case(&mut hub, &mut center, &doc_id);
    case_no
}
