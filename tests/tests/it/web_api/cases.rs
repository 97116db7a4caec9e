//! Cases over the API: registering, bad registrations, detail with legal steps,
//! reveals and edits, lists with filters and search, and the conflict queue.

use super::*;

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
