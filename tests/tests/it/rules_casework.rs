//! The rules of case work from the command line: transfers, evaluations and their
//! follow-up, postal delivery, agents, extensions.

use yichuang_tests::TempDir;

use crate::rules_support::{ELDERLY, ID, INSTANT, Node, agent_id, at};

fn center(dir: &TempDir) -> Node {
    Node::init(dir.path(), "center", Some("001"), 0)
}

#[test]
fn transfers_name_a_real_center_or_the_back_office() {
    let dir = TempDir::new("transfer");
    let node = center(&dir);
    let t = at("2026-03-02", "10:00");
    let (case, _) = node.new_case(&t, ELDERLY, &[]);
    node.step(&t, &case, "accepted", &[]);
    let rows: [(&str, Result<&str, &str>); 5] = [
        ("to_center=099", Err("unknown center \"099\"")),
        ("to_center=abc", Err("unknown center \"abc\"")),
        ("to_center=001", Err("already at 001")),
        ("to_center=district", Ok("district")),
        ("to_center=003", Ok("003")),
    ];
    for (data, expected) in rows {
        match expected {
            Ok(current) => {
                let v = node.step(&t, &case, "transferred", &[data]);
                assert_eq!(
                    (v["current_center"].as_str(), v["home_center"].as_str()),
                    (Some(current), Some("001"))
                );
            }
            Err(message) => {
                let err = node.refused(&t, &case, "transferred", &[data]);
                assert!(err.contains(message), "{data}: {err}");
            }
        }
    }
    let row = &node.json(&t, &["case", "list", "--json"])[0];
    assert_eq!(
        row["current_center"], "003",
        "the index follows the transfer"
    );
}

#[test]
fn one_confidential_evaluation_per_service_and_bad_reviews_followed_up() {
    let dir = TempDir::new("evaluate");
    let node = center(&dir);
    let t = at("2026-03-02", "10:00");
    let (case, _) = node.new_case(&t, INSTANT, &[]);
    node.step(&t, &case, "accepted", &[]);
    node.step(&t, &case, "completed", &[]);
    for (data, message) in [
        (
            &["level=满意", "evaluator=李四"][..],
            "evaluator stays confidential",
        ),
        (
            &["level=满意", "phone=13800138000"][..],
            "evaluator stays confidential",
        ),
        (&["level=还行"][..], "expected 非常满意"),
        (
            &["level=满意", "channel=wechat"][..],
            "expected one of window",
        ),
    ] {
        let err = node.refused(&t, &case, "evaluated", data);
        assert!(err.contains(message), "{data:?}: {err}");
    }
    let v = node.step(&t, &case, "evaluated", &["level=非常不满意"]);
    let evaluation = &v["facts"]["evaluations"][0];
    assert_eq!(
        (evaluation["level"].as_str(), evaluation["channel"].as_str()),
        (Some("very_dissatisfied"), Some("window"))
    );
    let stored = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "evaluated")
        .unwrap();
    let keys: Vec<&str> = stored["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["channel", "level", "occurrence"],
        "nothing about the evaluator is kept"
    );
    assert!(
        node.refused(&t, &case, "evaluated", &["level=满意"])
            .contains("already evaluated")
    );

    let text = yichuang_tests::ok(&["case", "show", "--dir", &node.dir, &case]);
    assert!(text.contains("差评待整改"), "{text}");
    let id = format!("evaluation={}", evaluation["event_id"].as_str().unwrap());
    assert!(
        node.refused(&t, &case, "evaluation_followed_up", &[&id])
            .contains("needs a note")
    );
    node.json(
        &t,
        &[
            "case",
            "event",
            &case,
            "evaluation_followed_up",
            "--data",
            &id,
            "--note",
            "回访并致歉",
            "--json",
        ],
    );
    let text = yichuang_tests::ok(&["case", "show", "--dir", &node.dir, &case]);
    assert!(
        text.contains("已整改") && !text.contains("差评待整改"),
        "{text}"
    );
}

#[test]
fn postal_delivery_needs_an_address_and_a_tracking_number() {
    let dir = TempDir::new("post");
    let node = center(&dir);
    let t = at("2026-03-02", "10:00");
    let err = node.fails(
        &t,
        &[
            "case",
            "new",
            "--item",
            ELDERLY,
            "--applicant-name",
            "丙",
            "--applicant-id",
            ID,
            "--delivery",
            "post",
        ],
    );
    assert!(err.contains("postal delivery needs an address"), "{err}");
    let (case, _) = node.new_case(
        &t,
        ELDERLY,
        &[
            "--delivery",
            "post",
            "--delivery-address",
            "云溪区溪桥路1号",
        ],
    );
    node.step(&t, &case, "accepted", &[]);
    node.step(&t, &case, "completed", &[]);
    assert!(
        node.refused(&t, &case, "delivered", &[])
            .contains("needs a tracking number")
    );
    assert!(
        node.refused(&t, &case, "delivered", &["tracking_no=12-34"])
            .contains("letters and digits")
    );
    let v = node.step(&t, &case, "delivered", &["tracking_no=EA123456789CN"]);
    assert_eq!(
        (v["status"].as_str(), v["delivery"]["tracking_no"].as_str()),
        (Some("delivered"), Some("EA123456789CN"))
    );

    // Editing: an address is needed whichever order the fields come in, and the item
    // must offer the method.
    let (other, _) = node.new_case(&t, ELDERLY, &[]);
    let edit = |sets: &[&'static str]| edit_args(&other, sets);
    assert!(
        node.fails(&t, &edit(&["delivery.method=post"]))
            .contains("postal delivery needs an address")
    );
    assert!(
        node.fails(&t, &edit(&["delivery.method=locker"]))
            .contains("not delivered by \"locker\"")
    );
    let v = node.json(
        &t,
        &edit(&["delivery.method=post", "delivery.address=云溪区榕湖路8号"]),
    );
    assert_eq!(
        (
            v["delivery"]["method"].as_str(),
            v["delivery"]["address"].as_str()
        ),
        (Some("post"), Some("云溪区榕湖路8号"))
    );
}

#[test]
fn agents_and_extensions() {
    let dir = TempDir::new("agent");
    let node = center(&dir);
    let t = at("2026-03-02", "10:00");
    let same = node.fails(
        &t,
        &[
            "case",
            "new",
            "--item",
            ELDERLY,
            "--applicant-name",
            "丁",
            "--applicant-id",
            ID,
            "--agent-name",
            "戊",
            "--agent-id",
            ID,
        ],
    );
    assert!(same.contains("acts for someone else"), "{same}");
    let agent = agent_id();
    let (case, _) = node.new_case(
        &t,
        ELDERLY,
        &["--agent-name", "代办戊", "--agent-id", &agent],
    );
    let v = node.show(&t, &case);
    assert_eq!(v["agent"]["name"], "代办戊");
    let m04 = v["materials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["code"] == "M04")
        .unwrap();
    assert_eq!(
        m04["required"], true,
        "with an agent, the power of attorney is required"
    );

    node.step(&t, &case, "accepted", &[]);
    assert!(
        node.refused(&t, &case, "extended", &["value=10"])
            .contains("approving head")
    );
    assert!(
        node.refused(&t, &case, "extended", &["value=100", "approved_by=局长"])
            .contains("from 1 to 60")
    );
    node.step(&t, &case, "extended", &["value=10", "approved_by=局长"]);
    assert!(
        node.refused(&t, &case, "extended", &["value=5", "approved_by=局长"])
            .contains("already extended")
    );
}

fn edit_args<'a>(case: &'a str, sets: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["case", "edit", case, "--json"];
    for s in sets {
        args.extend(["--set", s]);
    }
    args
}
