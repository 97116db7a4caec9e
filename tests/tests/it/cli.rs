//! The case commands as a clerk runs them: register, list, show, advance, edit,
//! resolve, reveal; several processes on one data folder at once.

use std::process::Command;

use automerge::AutoCommit;
use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, Value};
use yichuang_node::store::Store;
use yichuang_shared::ids::NodeId;
use yichuang_tests::{TempDir, bin, first_item, init_node, json, ok};

const ID: &str = "11010519491231002X";

fn new_case(d: &str, item: &str) -> String {
    let v = json(&[
        "case",
        "new",
        "--dir",
        d,
        "--item",
        item,
        "--applicant-name",
        "测试己",
        "--applicant-id",
        ID,
        "--applicant-phone",
        "13800138000",
        "--json",
    ]);
    v["case_no"].as_str().unwrap().to_owned()
}

#[test]
fn register_list_advance_and_reveal() {
    let dir = TempDir::new("cli");
    let d = init_node(dir.path(), "center", Some("003"));
    let item = first_item(&d);
    let case_no = new_case(&d, &item);
    let parts: Vec<&str> = case_no.split('-').collect();
    assert_eq!(parts.len(), 4, "{case_no}");
    assert_eq!((parts[0], parts[1], parts[3]), ("440399", "003", "0001"));
    assert!(
        parts[2].len() == 8 && parts[2].starts_with("20"),
        "{case_no}"
    );
    assert_eq!(
        new_case(&d, &item).split('-').nth(3),
        Some("0002"),
        "the sequence persists across processes"
    );

    let rows = json(&["case", "list", "--dir", &d, "--json"]);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["case_no"] == case_no.as_str())
        .unwrap();
    assert_eq!(row["status"], "submitted");
    assert_eq!(row["item_code"], item.as_str());
    assert_eq!(row["home_center"], "003");
    assert_eq!(row["conflicts"], 0);
    assert_eq!(row["applicant_id"], "110105********002X");
    let table = ok(&["case", "list", "--dir", &d]);
    assert!(
        table.contains(&case_no) && table.contains("110105********002X") && !table.contains(ID),
        "{table}"
    );

    for step in ["accepted", "forwarded", "reviewed", "approved", "completed"] {
        let v = json(&[
            "case", "event", "--dir", &d, &case_no, step, "--clerk", "C007", "--json",
        ]);
        assert_eq!(v["status"], step.replace("forwarded", "handling"));
    }
    let filtered = json(&[
        "case",
        "list",
        "--dir",
        &d,
        "--status",
        "completed",
        "--json",
    ]);
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    let searched = json(&[
        "case",
        "list",
        "--dir",
        &d,
        "--search",
        &case_no[..15],
        "--json",
    ]);
    assert_eq!(
        searched.as_array().unwrap().len(),
        2,
        "prefix search finds both cases"
    );
    assert_eq!(
        json(&["case", "list", "--dir", &d, "--search", "测试己", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let masked = json(&["case", "show", "--dir", &d, &case_no, "--json"]);
    assert_eq!(masked["applicant"]["id_no"], "110105********002X");
    assert_eq!(masked["applicant"]["phone"], "138****8000");
    assert!(
        masked["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["clerk"] != "S009")
    );
    let revealed = json(&[
        "case", "show", "--dir", &d, &case_no, "--reveal", "--clerk", "S009", "--json",
    ]);
    assert_eq!(revealed["applicant"]["id_no"], ID);
    let audits: Vec<_> = revealed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "id_revealed")
        .collect();
    assert_eq!(audits.len(), 1, "the reveal is recorded");
    assert_eq!(audits[0]["clerk"], "S009");
    let human = ok(&["case", "show", "--dir", &d, &case_no]);
    assert!(human.contains("已办结") && !human.contains(ID), "{human}");

    let edited = json(&[
        "case",
        "edit",
        "--dir",
        &d,
        &case_no,
        "--set",
        "applicant.phone=13900139000",
        "--set",
        "delivery.tracking_no=SF100",
        "--json",
    ]);
    assert_eq!(edited["applicant"]["phone"], "139****9000");
    assert_eq!(edited["delivery"]["tracking_no"], "SF100");
}

#[test]
fn several_processes_write_one_folder_at_once() {
    let dir = TempDir::new("multi");
    let d = init_node(dir.path(), "center", Some("005"));
    let item = first_item(&d);
    // Eight clerks' commands at the same moment, as beside a running `serve`.
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(bin())
                .args([
                    "case",
                    "new",
                    "--dir",
                    &d,
                    "--item",
                    &item,
                    "--applicant-name",
                    "测试庚",
                    "--applicant-id",
                    ID,
                    "--json",
                ])
                .output()
        })
        .collect();
    let mut numbers = std::collections::HashSet::new();
    for out in children {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        numbers.insert(v["case_no"].as_str().unwrap().to_owned());
    }
    assert_eq!(numbers.len(), 8, "every case got its own number");
    assert_eq!(
        json(&["case", "list", "--dir", &d, "--json"])
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

/// A concurrent edit from another node, merged into the store, shows as a conflict
/// that `case resolve` clears.
#[test]
fn a_merged_conflict_is_listed_and_resolved_from_the_cli() {
    let dir = TempDir::new("resolve");
    let d = init_node(dir.path(), "center", Some("003"));
    let item = first_item(&d);
    let case_no = new_case(&d, &item);
    let mut store = Store::open(dir.path()).unwrap();
    let doc_id = store.resolve_case(&case_no).unwrap();
    // Another node holds a copy and edits the phone while this one does too.
    let mut other: AutoCommit = store.load_doc(&doc_id).unwrap().fork();
    other.set_actor(NodeId([0xee; 8]).actor([1, 2, 3, 4]));
    let applicant = match other.get(automerge::ROOT, "applicant").unwrap() {
        Some((Value::Object(ObjType::Map), id)) => id,
        x => panic!("{x:?}"),
    };
    let before = other.get_heads();
    other.put(&applicant, "phone", "13700137000").unwrap();
    other.commit();
    ok(&[
        "case",
        "edit",
        "--dir",
        &d,
        &case_no,
        "--set",
        "applicant.phone=13900139000",
    ]);
    let changes = other.get_changes(&before);
    let applied = store.apply_remote(&doc_id, changes, Some("peer")).unwrap();
    assert_eq!(applied.stored, 1);
    drop(store);

    let rows = json(&["case", "list", "--dir", &d, "--json"]);
    assert_eq!(rows[0]["conflicts"], 1);
    let shown = json(&["case", "show", "--dir", &d, &case_no, "--json"]);
    let conflict = &shown["field_conflicts"][0];
    assert_eq!(conflict["path"], "applicant.phone");
    assert_eq!(conflict["values"].as_array().unwrap().len(), 2);
    assert!(
        conflict["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["node"] == NodeId([0xee; 8]).to_string().as_str())
    );
    let human = ok(&["case", "show", "--dir", &d, &case_no]);
    assert!(human.contains("字段冲突: applicant.phone"), "{human}");

    let resolved = json(&[
        "case",
        "resolve",
        "--dir",
        &d,
        &case_no,
        "--field",
        "applicant.phone",
        "--value",
        "13600136000",
        "--json",
    ]);
    assert_eq!(resolved["conflict_count"], 0);
    assert_eq!(
        json(&["case", "list", "--dir", &d, "--json"])[0]["conflicts"],
        0
    );
    let shown = json(&["case", "show", "--dir", &d, &case_no, "--reveal", "--json"]);
    assert_eq!(shown["applicant"]["phone"], "13600136000");
}
