//! The node's own endpoints: live sync status, the dashboard, metrics, OpenAPI
//! and the district report.

use super::*;

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
