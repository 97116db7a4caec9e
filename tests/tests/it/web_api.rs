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

#[test]
fn health_is_open_and_everything_else_needs_a_session() {
    let n = center();
    let anon = n.server.client();
    let h = anon.get("/api/health");
    h.expect(200);
    assert_eq!(h.json["ok"], true);
    assert_eq!(h.json["role"], "center");
    for path in [
        "/api/cases",
        "/api/cases/440399-003-20250101-0001",
        "/api/catalog",
        "/api/conflicts",
        "/api/sync",
        "/api/sync/stream",
        "/api/dashboard",
        "/api/me",
        "/api/openapi.json",
    ] {
        let r = anon.get(path);
        r.expect(401);
        assert!(r.message().contains("sign in"), "{path}: {}", r.message());
        anon.with_token("not-a-token").get(path).expect(401);
        anon.with_token(&"ab".repeat(32)).get(path).expect(401);
    }
    anon.post("/api/cases", &case_body("x")).expect(401);
    anon.post("/api/cases/x/events", &json!({"kind": "accepted"}))
        .expect(401);
    anon.patch("/api/cases/x", &json!({"set": {"applicant.phone": PHONE}}))
        .expect(401);
    anon.post("/api/cases/x/resolve", &json!({"event_id": "e1"}))
        .expect(401);
    anon.post("/api/logout", &json!({})).expect(401);
    // A page without a session sends the browser to the login page.
    let page = anon.get("/cases");
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.location.as_deref(), Some("/login"));
    // Nothing was registered by any of it.
    assert_eq!(case_count(&n.api), 0);
}

#[test]
fn login_checks_the_password_and_sessions_end_at_logout() {
    let n = center();
    let anon = n.server.client();
    let wrong = anon.post(
        "/api/login",
        &json!({"name": "C007", "password": "wrong-password"}),
    );
    wrong.expect(401);
    assert!(wrong.message().contains("wrong user name or password"));
    let unknown = anon.post(
        "/api/login",
        &json!({"name": "nobody", "password": PASSWORD}),
    );
    unknown.expect(401);
    assert_eq!(
        unknown.message(),
        wrong.message(),
        "no hint which one was wrong"
    );
    let missing = anon.post("/api/login", &json!({"name": "C007"}));
    missing.expect(422);
    assert_eq!(missing.field(), "password");
    let typed = anon.post("/api/login", &json!({"name": 7, "password": PASSWORD}));
    typed.expect(422);
    assert_eq!(typed.field(), "name");
    anon.send_raw(
        "POST",
        "/api/login",
        "application/json",
        b"{\"name\": \"C007\",",
    )
    .expect(400);
    anon.send_raw("POST", "/api/login", "text/plain", b"name=C007")
        .expect(415);

    let r = anon.post("/api/login", &json!({"name": "C007", "password": PASSWORD}));
    r.expect(200);
    assert_eq!(r.json["role"], "clerk");
    let token = r.json["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    let cookie = r.set_cookie.clone().expect("a session cookie");
    assert!(
        cookie.starts_with(&format!("yc_session={token}"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let me = anon.with_token(&token).get("/api/me");
    me.expect(200);
    assert_eq!(me.json["name"], "C007");
    assert_eq!(me.json["center"], "003");
    anon.with_token(&token)
        .post("/api/logout", &json!({}))
        .expect(204);
    anon.with_token(&token).get("/api/me").expect(401);

    // A new password ends the old sessions and the old password stops working.
    let again = anon.login("C007", PASSWORD);
    add_user(&n.dir, "C007", "supervisor", "another-pass-2");
    again.get("/api/me").expect(401);
    anon.post("/api/login", &json!({"name": "C007", "password": PASSWORD}))
        .expect(401);
    let sup = anon.login("C007", "another-pass-2");
    assert_eq!(sup.get("/api/me").json["role"], "supervisor");
}

#[test]
fn user_add_refuses_short_passwords_and_unknown_roles() {
    let dir = TempDir::new("web-user");
    let d = init_node(dir.path(), "center", Some("003"));
    let err = fails(&["user", "add", "--dir", &d, "--name", "C1"]);
    assert!(err.contains("standard input"), "{err}");
    let err = fails(&["user", "add", "--dir", &d, "--name", "C1", "--role", "king"]);
    assert!(err.contains("unknown role"), "{err}");
    add_user(&d, "C1", "admin", "long-enough-1");
    let users = json(&["user", "list", "--dir", &d, "--json"]);
    assert_eq!(users, json!([{"name": "C1", "role": "admin"}]));
    // The database holds a PHC string, never the password.
    let conn = rusqlite::Connection::open(dir.join("yichuang.db")).unwrap();
    let phc: String = conn
        .query_row(
            "SELECT password_phc FROM users WHERE name = 'C1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        phc.starts_with("$argon2id$") && !phc.contains("long-enough-1"),
        "{phc}"
    );
    let listed = ok(&["user", "list", "--dir", &d]);
    assert!(listed.contains("C1\tadmin"), "{listed}");
}

#[test]
fn registering_a_case_answers_201_and_records_the_clerk() {
    let n = center();
    let item = first_item(&n.api);
    let code = item["code"].as_str().unwrap();
    let mut body = case_body(code);
    let required: Vec<Value> = item["materials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["required"] == true)
        .map(|m| m["code"].clone())
        .collect();
    body["materials_received"] = Value::Array(required.clone());
    body["delivery"] = item["delivery"][0].clone();
    let r = n.api.post("/api/cases", &body);
    r.expect(201);
    let case_no = r.json["case_no"].as_str().unwrap().to_owned();
    assert!(case_no.starts_with("440399-003-"), "{case_no}");
    assert_eq!(r.json["case"]["status"], "submitted");
    assert_eq!(r.json["case"]["applicant"]["id_no"], "110105********002X");
    assert_eq!(r.json["case"]["events"][0]["clerk"], "C007");
    assert_eq!(r.json["case"]["created_clerk"], "C007");
    assert_eq!(r.json["at_hub"], false, "nothing reached a hub yet");
    for m in r.json["case"]["materials"].as_array().unwrap() {
        assert_eq!(m["received"], required.contains(&m["code"]), "{m}");
    }

    let list = n.api.get("/api/cases");
    list.expect(200);
    assert_eq!(list.json["count"], 1);
    let row = &list.json["cases"][0];
    assert_eq!(row["case_no"], case_no.as_str());
    assert_eq!(row["applicant_id"], "110105********002X");
    assert_eq!(row["status_label"], "待受理");
    assert!(!list.text.contains(ID), "a list never shows a full ID");
}

#[test]
fn bad_registrations_are_json_errors_that_change_nothing() {
    let n = center();
    let item = first_item(&n.api);
    let code = item["code"].as_str().unwrap();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"item_code": 5, "applicant": {"name": "王", "id_no": ID}}),
            422,
            "item_code",
        ),
        (
            json!({"applicant": {"name": "王", "id_no": ID}}),
            422,
            "item_code",
        ),
        (json!({"item_code": code}), 422, "applicant"),
        (
            json!({"item_code": code, "applicant": {"name": "王"}}),
            422,
            "applicant.id_no",
        ),
        (
            json!({"item_code": code, "applicant": {"name": ["王"], "id_no": ID}}),
            422,
            "applicant.name",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": ID, "phone": 138}}),
            422,
            "applicant.phone",
        ),
        (
            json!({"item_code": "1234567890123456789012345678901", "applicant": {"name": "王", "id_no": ID}}),
            422,
            "item_code",
        ),
        (
            json!({"item_code": "", "applicant": {"name": "王", "id_no": ID}}),
            422,
            "item_code",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "  ", "id_no": ID}}),
            422,
            "applicant.name",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": "110105194912310021"}}),
            422,
            "applicant.id_no",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": ID, "phone": "12345"}}),
            422,
            "applicant.phone",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": ID, "kind": "alien"}}),
            422,
            "applicant.kind",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": ID}, "materials_received": ["NOPE"]}),
            422,
            "materials_received",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": ID}, "delivery": "pigeon"}),
            422,
            "delivery",
        ),
        (
            json!({"item_code": code, "applicant": {"name": "王", "id_no": ID}, "surprise": 1}),
            422,
            "",
        ),
        (json!([1, 2, 3]), 422, ""),
        (json!("a string"), 422, ""),
    ];
    for (body, status, field) in &cases {
        let r = n.api.post("/api/cases", body);
        r.expect(*status);
        if !field.is_empty() {
            assert_eq!(r.field(), *field, "{body}: {}", r.text);
        }
    }
    for raw in [
        &b"{"[..],
        b"not json",
        b"",
        b"{\"item_code\": \"x\",}",
        b"\xff\xfe",
    ] {
        n.api
            .send_raw("POST", "/api/cases", "application/json", raw)
            .expect(400);
    }
    n.api
        .send_raw(
            "POST",
            "/api/cases",
            "text/plain",
            case_body(code).to_string().as_bytes(),
        )
        .expect(415);
    n.api
        .send_raw(
            "POST",
            "/api/cases",
            "application/x-www-form-urlencoded",
            b"item_code=1",
        )
        .expect(415);
    let mut big = case_body(code);
    // Just over the limit: the server reads it all, so the answer is never lost to a reset.
    big["applicant"]["address"] = Value::String("长".repeat(22_000));
    let r = n.api.send_raw(
        "POST",
        "/api/cases",
        "application/json",
        big.to_string().as_bytes(),
    );
    r.expect(413);
    assert!(r.message().contains("larger than"), "{}", r.text);
    assert_eq!(case_count(&n.api), 0, "no bad request registered anything");
    // The case-number sequence was not spent either.
    let good = register(&n.api, code);
    assert!(
        good["case_no"].as_str().unwrap().ends_with("-0001"),
        "{good}"
    );
}

#[test]
fn case_detail_steps_reveal_and_edits() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    let case_no = register(&n.api, &code)["case_no"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/cases/{case_no}");

    let d = n.api.get(&path);
    d.expect(200);
    assert_eq!(d.json["case"]["applicant"]["id_no"], "110105********002X");
    let steps: Vec<&str> = d.json["case"]["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"accepted") && !steps.contains(&"approved"),
        "{steps:?}"
    );
    n.api.get("/api/cases/440399-003-20200101-9999").expect(404);
    n.api
        .get(&format!("/api/cases/{}", "x".repeat(500)))
        .expect(404);
    n.api.get(&format!("{path}?reveal=maybe")).expect(422);

    let events = format!("{path}/events");
    let illegal = n.api.post(&events, &json!({"kind": "approved"}));
    illegal.expect(409);
    assert_eq!(illegal.field(), "kind");
    assert!(
        illegal.message().contains("legal next steps"),
        "{}",
        illegal.text
    );
    let unknown = n.api.post(&events, &json!({"kind": "teleported"}));
    unknown.expect(422);
    assert_eq!(unknown.field(), "kind");
    n.api
        .post(&events, &json!({"kind": "submitted"}))
        .expect(422);
    n.api
        .post(&events, &json!({"kind": "id_revealed"}))
        .expect(422);
    n.api.post(&events, &json!({"kind": 3})).expect(422);
    n.api.post(&events, &json!({})).expect(422);
    n.api
        .post(
            "/api/cases/440399-003-20200101-9999/events",
            &json!({"kind": "accepted"}),
        )
        .expect(404);
    let accepted = n
        .api
        .post(&events, &json!({"kind": "accepted", "note": "材料齐全"}));
    accepted.expect(200);
    assert_eq!(accepted.json["case"]["status"], "accepted");
    let last = accepted.json["case"]["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["kind"].as_str(), last["clerk"].as_str()),
        (Some("accepted"), Some("C007"))
    );
    // The deadline runs from acceptance (absent only when it falls in a year whose
    // holiday calendar is not yet published).
    let deadline = &accepted.json["deadline"];
    assert!(
        deadline.is_null() || deadline["promised_ms"].as_i64().unwrap() > 0,
        "{}",
        accepted.text
    );

    // Reveal: the full number, and an audit event naming the supervisor.
    let sup = signed_in(&n, "S001", "supervisor");
    let revealed = sup.get(&format!("{path}?reveal=true"));
    revealed.expect(200);
    assert_eq!(revealed.json["case"]["applicant"]["id_no"], ID);
    let audit = n.api.get(&path);
    assert_eq!(
        audit.json["case"]["applicant"]["id_no"],
        "110105********002X"
    );
    let reveals: Vec<&Value> = audit.json["case"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "id_revealed")
        .collect();
    assert_eq!(reveals.len(), 1);
    assert_eq!(reveals[0]["clerk"], "S001");

    // Edits.
    let edited = n
        .api
        .patch(&path, &json!({"set": {"applicant.phone": "13900139000"}}));
    edited.expect(200);
    assert_eq!(edited.json["case"]["applicant"]["phone"], "139****9000");
    let bad = n
        .api
        .patch(&path, &json!({"set": {"applicant.phone": "123"}}));
    bad.expect(422);
    let unknown = n.api.patch(&path, &json!({"set": {"meta.case_no": "x"}}));
    unknown.expect(422);
    assert_eq!(unknown.field(), "field");
    n.api.patch(&path, &json!({"set": {}})).expect(422);
    n.api
        .patch(&path, &json!({"set": {"applicant.phone": 5}}))
        .expect(422);
    n.api
        .patch(
            "/api/cases/440399-003-20200101-9999",
            &json!({"set": {"applicant.phone": PHONE}}),
        )
        .expect(404);
    // A failed edit changed nothing.
    assert_eq!(
        n.api.get(&path).json["case"]["applicant"]["phone"],
        "139****9000"
    );
    // Unknown routes and methods are JSON errors too.
    n.api.get("/api/nothing-here").expect(404);
    n.api.delete(&path).expect(405);
}

#[test]
fn list_filters_and_search() {
    let n = center();
    let items = n.api.get("/api/catalog");
    let a = items.json[0]["code"].as_str().unwrap().to_owned();
    let b = items.json[1]["code"].as_str().unwrap().to_owned();
    let first = register(&n.api, &a)["case_no"].as_str().unwrap().to_owned();
    let mut other = case_body(&b);
    other["applicant"]["name"] = json!("李四");
    n.api.post("/api/cases", &other).expect(201);
    n.api
        .post(
            &format!("/api/cases/{first}/events"),
            &json!({"kind": "accepted"}),
        )
        .expect(200);

    let by_status = n.api.get("/api/cases?status=accepted");
    by_status.expect(200);
    assert_eq!(by_status.json["count"], 1);
    assert_eq!(by_status.json["cases"][0]["case_no"], first.as_str());
    let bad = n.api.get("/api/cases?status=flying");
    bad.expect(422);
    assert_eq!(bad.field(), "status");
    let by_name = n.api.get(&format!("/api/cases?q={}", urlencode("李四")));
    assert_eq!(by_name.json["count"], 1);
    let by_no = n.api.get(&format!("/api/cases?q={}", &first[..15]));
    assert_eq!(by_no.json["count"], 2, "a case-number prefix matches both");
    let by_item = n.api.get(&format!("/api/cases?item={b}"));
    assert_eq!(by_item.json["count"], 1);
    assert_eq!(by_item.json["cases"][0]["item_code"], b.as_str());
    let limited = n.api.get("/api/cases?limit=1");
    assert_eq!(limited.json["count"], 1);
    n.api.get("/api/cases?limit=lots").expect(422);
    n.api.get("/api/cases?colour=red").expect(422);
    let overdue = n.api.get("/api/cases?overdue=overdue");
    overdue.expect(200);
    assert_eq!(overdue.json["count"], 0, "fresh cases are not overdue");
    let any = n.api.get("/api/cases?overdue=any");
    any.expect(200);
    for row in any.json["cases"].as_array().unwrap() {
        assert!(row["deadline_ms"].as_i64().is_some(), "{row}");
    }
    n.api.get("/api/cases?overdue=soon").expect(422);
    n.api
        .get(&format!("/api/cases?q={}", "x".repeat(101)))
        .expect(422);

    let cat = n.api.get(&format!("/api/catalog?q={}", urlencode("电梯")));
    cat.expect(200);
    let names: Vec<&str> = cat
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("电梯")),
        "{names:?}"
    );
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

#[test]
fn conflicts_are_listed_with_every_value_and_resolved_by_a_person() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    let case_no = phone_conflict(&n, &register(&n.api, &code));

    let q = n.api.get("/api/conflicts");
    q.expect(200);
    let items = q.json.as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", q.text);
    let fc = &items[0]["field_conflicts"][0];
    assert_eq!(fc["path"], "applicant.phone");
    let values = fc["values"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    let clerks: Vec<&str> = values
        .iter()
        .map(|v| v["clerk"].as_str().unwrap())
        .collect();
    assert!(
        clerks.contains(&"C007") && clerks.contains(&"H001"),
        "{clerks:?}"
    );
    assert!(
        values
            .iter()
            .all(|v| v["value"].as_str().unwrap().contains("****")),
        "masked: {values:?}"
    );
    assert!(
        values
            .iter()
            .all(|v| !v["node"].as_str().unwrap().is_empty())
    );
    let listed = n.api.get("/api/cases");
    assert_eq!(listed.json["cases"][0]["conflicts"], 1);

    let resolve = format!("/api/cases/{case_no}/resolve");
    let sup = signed_in(&n, "S001", "supervisor");
    sup.post(&resolve, &json!({})).expect(422);
    sup.post(&resolve, &json!({"field": "applicant.phone"}))
        .expect(422);
    sup.post(&resolve, &json!({"field": "applicant.phone", "pick": 9}))
        .expect(422);
    sup.post(&resolve, &json!({"field": "applicant.name", "value": "x"}))
        .expect(409);
    sup.post(&resolve, &json!({"event_id": "e0"})).expect(409);
    let hub_value = values.iter().position(|v| v["clerk"] == "H001").unwrap() + 1;
    let done = sup.post(
        &resolve,
        &json!({"field": "applicant.phone", "pick": hub_value}),
    );
    done.expect(200);
    assert_eq!(done.json["case"]["conflict_count"], 0);
    assert_eq!(done.json["case"]["applicant"]["phone"], "137****7000");
    assert_eq!(n.api.get("/api/conflicts").json, json!([]));
    sup.post(
        &resolve,
        &json!({"field": "applicant.phone", "value": PHONE}),
    )
    .expect(409);
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

#[test]
fn sync_status_follows_the_hub_checkpoint_and_streams_live() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    let case_no = register(&n.api, &code)["case_no"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = n.api.get("/api/sync");
    s.expect(200);
    assert_eq!(s.json["connected"], false);
    assert_eq!(s.json["last_contact_ms"], 0);
    assert_eq!(s.json["unsynced_cases"], 1);
    assert!(s.json["unsynced_changes"].as_i64().unwrap() >= 1);
    assert_eq!(s.json["unsynced_case_nos"], json!([case_no]));
    let pending = n.api.get("/api/cases?unsynced=true");
    assert_eq!(pending.json["count"], 1);
    assert_eq!(pending.json["cases"][0]["at_hub"], false);
    let first = n.api.first_event("/api/sync/stream", "sync");
    assert_eq!(first["unsynced_cases"], 1);

    // What the sync engine writes when the hub acknowledges everything.
    let conn =
        rusqlite::Connection::open(std::path::Path::new(&n.dir).join("yichuang.db")).unwrap();
    let head: i64 = conn
        .query_row("SELECT MAX(seq) FROM changes", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "INSERT INTO peers (peer, sent_seq, last_contact_ms) VALUES ('00112233445566778899aabbccddeeff', ?1, ?2)",
        rusqlite::params![head, yichuang_node::store::now_ms()],
    )
    .unwrap();
    let s = n.api.get("/api/sync");
    assert_eq!(s.json["connected"], true, "{}", s.text);
    assert_eq!(s.json["unsynced_changes"], 0);
    assert_eq!(s.json["hub_acked_seq"], head);
    assert_eq!(s.json["peers"][0]["unacked_changes"], 0);
    let detail = n.api.get(&format!("/api/cases/{case_no}"));
    assert_eq!(detail.json["at_hub"], true);
    assert_eq!(n.api.get("/api/cases").json["cases"][0]["at_hub"], true);
    assert_eq!(n.api.get("/api/cases?unsynced=true").json["count"], 0);
    // A later change is not at the hub until it is acknowledged.
    n.api
        .post(
            &format!("/api/cases/{case_no}/events"),
            &json!({"kind": "accepted"}),
        )
        .expect(200);
    let s = n.api.get("/api/sync");
    assert_eq!(s.json["unsynced_cases"], 1);
    assert_eq!(s.json["peers"][0]["unacked_changes"], 1);
    assert!(s.json["peers"][0]["oldest_unacked_ms"].as_i64().is_some());
}

#[test]
fn dashboard_metrics_and_openapi() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    register(&n.api, &code);
    register(&n.api, &code);

    let d = n.api.get("/api/dashboard");
    d.expect(200);
    assert_eq!(d.json["total"], 2);
    assert_eq!(d.json["by_center"][0]["key"], "003");
    assert_eq!(d.json["by_center"][0]["count"], 2);
    assert_eq!(d.json["by_status"][0]["key"], "submitted");
    let days = d.json["daily"]["days"].as_array().unwrap();
    assert_eq!(days.len(), 14);
    let series = &d.json["daily"]["centers"][0]["counts"];
    assert_eq!(series.as_array().unwrap().last().unwrap(), 2, "{series}");

    let m = n.server.client().get("/metrics");
    m.expect(200);
    assert!(
        m.content_type.starts_with("text/plain"),
        "{}",
        m.content_type
    );
    for needle in [
        "yichuang_cases{status=\"submitted\"} 2",
        "# TYPE yichuang_sync_lag_seconds gauge",
        "yichuang_sync_unsynced_cases 2",
        "yichuang_sync_connected 0",
        "yichuang_sync_rejections_total 0",
        "yichuang_sync_bytes_received_total 0",
        "yichuang_sync_changes_sent_total 0",
        "yichuang_conflicts 0",
    ] {
        assert!(
            m.text.contains(needle),
            "{needle} missing from:\n{}",
            m.text
        );
    }
    assert!(!m.text.contains("王小明") && !m.text.contains(ID));

    let doc = n.api.get("/api/openapi.json");
    doc.expect(200);
    let paths = &doc.json["paths"];
    for (path, method) in [
        ("/api/health", "get"),
        ("/api/login", "post"),
        ("/api/cases", "get"),
        ("/api/cases", "post"),
        ("/api/cases/{case}", "get"),
        ("/api/cases/{case}", "patch"),
        ("/api/cases/{case}/events", "post"),
        ("/api/cases/{case}/resolve", "post"),
        ("/api/conflicts", "get"),
        ("/api/catalog", "get"),
        ("/api/sync", "get"),
        ("/api/sync/stream", "get"),
        ("/api/dashboard", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    assert!(doc.json["components"]["schemas"]["CreateCaseBody"].is_object());
    assert!(doc.json["components"]["securitySchemes"]["bearer"].is_object());
}

/// `GET /api/report` answers what `yichuang report` computes, as JSON or CSV, and
/// refuses bad parameters by name.
#[test]
fn report_over_the_api_with_bad_parameters() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    register(&n.api, &code);
    let n = Node {
        api: signed_in(&n, "A001", "admin"),
        ..n
    };
    let today =
        yichuang_node::store::cases_fmt_time(yichuang_node::store::now_ms())[..10].to_owned();
    let r = n
        .api
        .get(&format!("/api/report?from={today}&to={today}&by=center"));
    r.expect(200);
    assert!(r.json["rows"].is_array(), "{}", r.text);
    // A registered case not yet accepted counts as no 受理.
    assert_eq!(r.json["total"]["accepted"], 0, "{}", r.text);
    let csv = n
        .api
        .get(&format!("/api/report?from={today}&to={today}&format=csv"));
    csv.expect(200);
    assert!(
        csv.content_type.starts_with("text/csv"),
        "{}",
        csv.content_type
    );
    for (query, field) in [
        ("from=2026-13-01&to=2026-12-01", "from"),
        (&format!("from={today}&to=2020-01-01") as &str, "to"),
        (&format!("from={today}&to={today}&by=planet") as &str, "by"),
        (
            &format!("from={today}&to={today}&format=xml") as &str,
            "format",
        ),
    ] {
        let bad = n.api.get(&format!("/api/report?{query}"));
        bad.expect(422);
        assert_eq!(bad.field(), field, "{query}: {}", bad.text);
    }
}

/// Each role tries each gated action. Clerks register, advance and edit; supervisors
/// also reveal ID numbers and resolve conflicts; admins also read the report. A
/// refusal is a 403 JSON error that changes nothing, checked before the input is,
/// and the pages offer no button the role may not press.
#[test]
fn roles_gate_what_each_user_may_do() {
    let n = center();
    let code = first_item(&n.api)["code"].as_str().unwrap().to_owned();
    let users = [
        ("clerk", n.api.clone()),
        ("supervisor", signed_in(&n, "S001", "supervisor")),
        ("admin", signed_in(&n, "A001", "admin")),
    ];
    let today =
        yichuang_node::store::cases_fmt_time(yichuang_node::store::now_ms())[..10].to_owned();
    for (role, api) in &users {
        let me = api.get("/api/me");
        me.expect(200);
        assert_eq!(me.json["role"], *role);
        let may = |action: &str| {
            me.json["permissions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == action)
        };
        let (supervisor, admin) = (*role != "clerk", *role == "admin");
        assert_eq!(
            (
                may("register"),
                may("reveal"),
                may("resolve"),
                may("report")
            ),
            (true, supervisor, supervisor, admin),
            "{role}: {}",
            me.text
        );

        // Every role works cases.
        let created = api.post("/api/cases", &case_body(&code));
        created.expect(201);
        let case_no = created.json["case_no"].as_str().unwrap().to_owned();
        let path = format!("/api/cases/{case_no}");
        api.post(&format!("{path}/events"), &json!({"kind": "accepted"}))
            .expect(200);
        let edited = api.patch(&path, &json!({"set": {"applicant.address": "云溪路1号"}}));
        edited.expect(200);
        assert_eq!(edited.json["case"]["applicant"]["address"], "云溪路1号");

        // Reveal: supervisors and admins; a refused reveal records nothing.
        let reveal = api.get(&format!("{path}?reveal=true"));
        let reveals = |api: &Api| {
            api.get(&path).json["case"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "id_revealed")
                .count()
        };
        if supervisor {
            reveal.expect(200);
            assert_eq!(reveal.json["case"]["applicant"]["id_no"], ID);
            assert_eq!(reveals(api), 1, "{role}");
        } else {
            reveal.expect(403);
            assert_eq!(reveal.field(), "reveal");
            assert!(reveal.message().contains("supervisor"), "{}", reveal.text);
            assert!(!reveal.text.contains(ID));
            assert_eq!(reveals(api), 0, "a refused reveal is not recorded");
        }
        let page = api.get(&format!("/cases/{case_no}"));
        page.expect(200);
        assert_eq!(page.text.contains(r#"id="reveal""#), supervisor, "{role}");

        // Resolve: supervisors and admins; the refusal comes before the body is read.
        let conflicted = phone_conflict(&n, &created.json);
        let resolve = format!("/api/cases/{conflicted}/resolve");
        let queue = api.get("/conflicts");
        queue.expect(200);
        assert_eq!(queue.text.contains("data-resolve="), supervisor, "{role}");
        let pick = api.post(&resolve, &json!({"field": "applicant.phone", "pick": 1}));
        if supervisor {
            pick.expect(200);
            assert_eq!(pick.json["case"]["conflict_count"], 0);
        } else {
            pick.expect(403);
            assert!(pick.message().contains("supervisor"), "{}", pick.text);
            api.post(&resolve, &json!({})).expect(403);
            api.send_raw("POST", &resolve, "application/json", b"{")
                .expect(403);
            assert!(queue.text.contains("resolve-needs-supervisor"));
            assert_eq!(
                api.get(&path).json["case"]["conflict_count"],
                1,
                "a refused resolve changes nothing"
            );
            // A supervisor clears it, so the next role starts from a clean queue.
            users[1]
                .1
                .post(&resolve, &json!({"field": "applicant.phone", "pick": 1}))
                .expect(200);
        }

        // The report: admins only; the refusal comes before the parameters are read.
        let report = api.get(&format!("/api/report?from={today}&to={today}"));
        if admin {
            report.expect(200);
            assert!(report.json["rows"].is_array(), "{}", report.text);
        } else {
            report.expect(403);
            assert!(report.message().contains("admin"), "{}", report.text);
            api.get("/api/report?from=never").expect(403);
        }
    }
    assert_eq!(case_count(&n.api), 3);
}

/// Five wrong passwords for a name lock it for the window, even against the right
/// password, with a 429 that says when to retry; a success clears the count; a name
/// without an account locks the same way, with the same answer. The throttle's clock
/// is the test's, so the window passes without waiting.
#[test]
fn repeated_wrong_passwords_lock_the_name_until_the_window_passes() {
    let dir = TempDir::new("web-lock");
    let d = init_node(dir.path(), "center", Some("003"));
    add_user(&d, "C007", "clerk", PASSWORD);
    add_user(&d, "C008", "clerk", PASSWORD);
    let now = Arc::new(AtomicI64::new(1_767_225_600_000)); // 2026-01-01 08:00 China time
    let clock = now.clone();
    let server = InProcess::start(&d, move |state| {
        state.login_guard = Arc::new(LoginGuard::new(
            LoginLimits::default(),
            Arc::new(move || clock.load(Ordering::SeqCst)),
        ));
    });
    let anon = server.client();
    let attempt = |name: &str, password: &str| {
        anon.post("/api/login", &json!({"name": name, "password": password}))
    };
    let max = LOGIN_FAILURES_MAX as usize;

    // One short of the limit, then the right password: in, and the count starts over.
    for _ in 0..max - 1 {
        attempt("C007", "wrong-password").expect(401);
    }
    attempt("C007", PASSWORD).expect(200);
    for _ in 0..max {
        attempt("C007", "wrong-password").expect(401);
    }
    // Now locked, the right password included.
    let locked = attempt("C007", PASSWORD);
    locked.expect(429);
    assert_eq!(locked.field(), "name");
    let wait_s = (LOGIN_WINDOW_MS / 1000).to_string();
    assert!(
        locked
            .message()
            .contains("try again after 2026-01-01 08:15")
            && locked.message().contains(&format!("in {wait_s} s")),
        "{}",
        locked.text
    );
    assert_eq!(locked.retry_after.as_deref(), Some(wait_s.as_str()));
    assert!(locked.set_cookie.is_none(), "no session while locked");
    // The login page refuses too.
    let page = anon.send_raw(
        "POST",
        "/login",
        "application/x-www-form-urlencoded",
        format!("name=C007&password={PASSWORD}").as_bytes(),
    );
    assert_eq!(page.status, 429, "{}", page.text);
    assert!(page.text.contains("已暂时锁定") && page.set_cookie.is_none());
    // Other names are not affected.
    attempt("C008", PASSWORD).expect(200);

    // A name with no account locks alike and gets the same answer, so the refusal
    // tells nothing about which names exist.
    for _ in 0..max {
        attempt("nobody", "wrong-password").expect(401);
    }
    let unknown = attempt("nobody", PASSWORD);
    unknown.expect(429);
    assert_eq!(unknown.text, locked.text);
    assert_eq!(unknown.retry_after, locked.retry_after);

    // A burst of guesses at once gets no more tries than the limit (plus the ones
    // already checking when the lock fell); the rest are refused.
    let burst: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..4 * max)
            .map(|_| scope.spawn(|| attempt("burst", "wrong-password").status))
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let refused = burst.iter().filter(|s| **s == 429).count();
    let checked = burst.iter().filter(|s| **s == 401).count();
    assert_eq!(refused + checked, burst.len(), "{burst:?}");
    assert!(
        checked < max + LOGINS_IN_FLIGHT_MAX,
        "{checked} guesses were checked: {burst:?}"
    );

    // Until the window passes: one millisecond before, still refused; then in.
    now.fetch_add(LOGIN_WINDOW_MS - 1, Ordering::SeqCst);
    let last = attempt("C007", PASSWORD);
    last.expect(429);
    assert_eq!(last.retry_after.as_deref(), Some("1"));
    now.fetch_add(1, Ordering::SeqCst);
    let me = anon.login("C007", PASSWORD).get("/api/me");
    me.expect(200);
    assert_eq!(me.json["name"], "C007");
}
