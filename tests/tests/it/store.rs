//! The store: durability across reopen and SIGKILL, byte-exact changes, schema
//! versions, and bad input (full disk, read-only folder, newer files) losing nothing.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use automerge::Change;
use yichuang_node::bench::fake::{self, Rng};
use yichuang_node::store::{CaseFilter, NodeSettings, Store, StoreConfig, StoreError, schema};
use yichuang_shared::ids::{NodeId, Role};
use yichuang_tests::{TempDir, bin, fails, init_node, json, ok};

fn settings() -> NodeSettings {
    NodeSettings {
        node_id: NodeId([7; 8]),
        name: "test-center".into(),
        role: Role::Center,
        district: "440399".into(),
        center: "003".into(),
        staff: String::new(),
        created_ms: 0,
    }
}

fn items(store: &mut Store) -> Vec<String> {
    store.catalog().unwrap().keys().cloned().collect()
}

fn all_rows(store: &mut Store) -> Vec<yichuang_node::store::CaseRow> {
    store
        .list_cases(&CaseFilter {
            limit: 1_000,
            ..CaseFilter::default()
        })
        .unwrap()
}

#[test]
fn reopen_gives_identical_documents_index_and_bytes() {
    let dir = TempDir::new("reopen");
    let mut store = Store::init(dir.path(), settings()).unwrap();
    let codes = items(&mut store);
    let mut rng = Rng::new(11);
    let mut numbers = Vec::new();
    for i in 0..40 {
        let created = store
            .create_case(&fake::case_request(&mut rng, &codes, "c1"))
            .unwrap();
        if i % 2 == 0 {
            store
                .case_event(
                    &created.case_no,
                    yichuang_shared::case::EventKind::Accepted,
                    "c1",
                    "",
                    Default::default(),
                )
                .unwrap();
        }
        if i % 5 == 0 {
            // Enough edits on one case to force a snapshot and compaction.
            for n in 0..40 {
                store
                    .case_edit(
                        &created.case_no,
                        "c1",
                        &[("applicant.address".into(), format!("云溪路{n}号"))],
                    )
                    .unwrap();
            }
        }
        numbers.push(created.case_no);
    }
    let rows_before = all_rows(&mut store);
    let mut docs_before = Vec::new();
    for id in store.doc_ids().unwrap() {
        let mut doc = store.load_doc(&id).unwrap();
        docs_before.push((
            id.clone(),
            doc.get_heads(),
            doc.save(),
            store.raw_changes(&id).unwrap(),
        ));
    }
    let compacted: i64 = store
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM docs WHERE snapshot IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        compacted >= 8,
        "the heavily edited cases were compacted ({compacted})"
    );
    drop(store);

    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.cached_docs(), 0, "a reopened store starts cold");
    assert_eq!(all_rows(&mut store), rows_before);
    assert_eq!(rows_before.len(), 40);
    for (id, heads, saved, raw) in docs_before {
        let mut doc = store.load_doc(&id).unwrap();
        assert_eq!(doc.get_heads(), heads, "{id}");
        assert_eq!(doc.save(), saved, "{id}");
        let raw_after = store.raw_changes(&id).unwrap();
        assert_eq!(
            raw_after, raw,
            "{id}: every change reads back byte for byte"
        );
        for (hash, bytes) in raw_after {
            let change = Change::from_bytes(bytes.clone()).unwrap();
            assert_eq!(
                change.hash().0.as_slice(),
                hash.as_slice(),
                "{id}: stored hash matches the bytes"
            );
            assert_eq!(change.raw_bytes(), bytes.as_slice());
        }
    }
    for n in numbers {
        assert_eq!(store.case_view(&n, false, "c1").unwrap().case_no, n);
    }
}

#[test]
fn sigkill_while_creating_loses_no_acknowledged_case() {
    let dir = TempDir::new("sigkill");
    let d = init_node(dir.path(), "center", Some("003"));
    let item = yichuang_tests::first_item(&d);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut rng = Rng::new(0x5eed);
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        let mut child = Command::new(bin())
            .args(["case", "import", "--dir", &d])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let lines: Vec<String> = (0..200)
            .map(|_| {
                serde_json::json!({"item": item, "applicant_name": fake::name(&mut rng), "applicant_id": fake::resident_id(&mut rng)})
                    .to_string()
            })
            .collect();
        // The feeder stops by itself when the child dies (broken pipe) or the lines run out.
        let feeder = std::thread::spawn(move || {
            for l in lines {
                if writeln!(stdin, "{l}").is_err() {
                    break;
                }
            }
        });
        let kill_after = 1 + rng.below(15) as usize;
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        for _ in 0..kill_after {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            acknowledged.push(v["case_no"].as_str().unwrap().to_owned());
        }
        // SIGKILL while the child is writing the next cases.
        child.kill().unwrap();
        child.wait().unwrap();
        feeder.join().unwrap();
        assert!(
            acknowledged.len() > round,
            "round {round} acknowledged at least one case"
        );
    }
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let present: std::collections::HashSet<String> = all_rows(&mut store)
        .into_iter()
        .map(|r| r.case_no)
        .collect();
    for n in &acknowledged {
        assert!(
            present.contains(n),
            "acknowledged case {n} survived SIGKILL"
        );
        store.case_view(n, false, "t").unwrap();
    }
    assert!(acknowledged.len() >= ROUNDS);
}

#[test]
fn an_older_file_is_upgraded_and_a_newer_one_refused_untouched() {
    let dir = TempDir::new("schema");
    {
        let conn = rusqlite::Connection::open(dir.join(yichuang_node::store::DB_FILE)).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('node', ?1)",
            [serde_json::to_string(&settings()).unwrap()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('feed_epoch', '42')",
            [],
        )
        .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        schema::version(store.connection()).unwrap(),
        schema::SCHEMA_VERSION
    );
    const { assert!(schema::SCHEMA_VERSION >= 2) };
    let peers: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM peers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(peers, 0, "the version-2 tables exist after the upgrade");
    assert_eq!(store.feed_epoch().unwrap(), 42);
    drop(store);

    let newer = schema::SCHEMA_VERSION + 1;
    {
        let conn = rusqlite::Connection::open(dir.join(yichuang_node::store::DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", newer).unwrap();
    }
    match Store::open(dir.path()) {
        Err(e @ StoreError::NewerSchema { .. }) => {
            assert!(e.to_string().contains("newer Yichuang"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let err = fails(&["case", "list", "--dir", dir.path().to_str().unwrap()]);
    assert!(
        err.contains("newer Yichuang") && err.contains("untouched"),
        "{err}"
    );
    let conn = rusqlite::Connection::open(dir.join(yichuang_node::store::DB_FILE)).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, newer, "the newer file was not modified");
}

#[test]
fn a_full_disk_fails_clearly_and_keeps_every_earlier_case() {
    let dir = TempDir::new("full");
    let mut store = Store::init(dir.path(), settings()).unwrap();
    let codes = items(&mut store);
    let pages: u32 = store
        .connection()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    drop(store);
    // Room for a few dozen more cases, then the "disk" is full.
    let mut store = Store::open_with(
        dir.path(),
        StoreConfig {
            max_page_count: Some(pages + 40),
            ..StoreConfig::default()
        },
    )
    .unwrap();
    let mut rng = Rng::new(5);
    let mut created = Vec::new();
    let err = loop {
        assert!(created.len() < 10_000, "the page cap never bit");
        match store.create_case(&fake::case_request(&mut rng, &codes, "c1")) {
            Ok(c) => created.push(c.case_no),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StoreError::DiskFull), "{err:?}");
    assert!(
        err.to_string().contains("disk is full") && err.to_string().contains("intact"),
        "{err}"
    );
    assert!(!created.is_empty());
    // Editing an existing case on the full disk fails the same way and changes nothing.
    let before = store.case_view(&created[0], false, "c1").unwrap();
    let mut failed_edits = 0;
    for n in 0..200 {
        if store
            .case_edit(
                &created[0],
                "c1",
                &[("applicant.address".into(), "x".repeat(1500 + n))],
            )
            .is_err()
        {
            failed_edits += 1;
            break;
        }
    }
    assert_eq!(failed_edits, 1, "the full disk refused an edit");
    drop(store);

    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    for n in &created {
        assert_eq!(&store.case_view(n, false, "c1").unwrap().case_no, n);
    }
    assert_eq!(store.case_count().unwrap() as usize, created.len());
    let after = store.case_view(&created[0], false, "c1").unwrap();
    assert_eq!(after.events.len(), before.events.len());
    // With room again, work goes on.
    store
        .create_case(&fake::case_request(&mut rng, &codes, "c1"))
        .unwrap();
}

#[test]
fn a_read_only_folder_refuses_writes_clearly_and_loses_nothing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("readonly");
    let d = init_node(&dir.join("node"), "center", Some("003"));
    let item = yichuang_tests::first_item(&d);
    let created = json(&[
        "case",
        "new",
        "--dir",
        &d,
        "--item",
        &item,
        "--applicant-name",
        "测试乙",
        "--applicant-id",
        "11010519491231002X",
        "--json",
    ]);
    let case_no = created["case_no"].as_str().unwrap().to_owned();
    // Root ignores permission bits, so the writer runs as an unprivileged user
    // (nobody) against a folder and files it may read but not write.
    let exe = dir.join("yichuang");
    std::fs::copy(bin(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(&d).unwrap() {
        std::fs::set_permissions(
            entry.unwrap().path(),
            std::fs::Permissions::from_mode(0o444),
        )
        .unwrap();
    }
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = Command::new(&exe)
        .args([
            "case",
            "new",
            "--dir",
            &d,
            "--item",
            &item,
            "--applicant-name",
            "测试丙",
            "--applicant-id",
            "11010519491231002X",
        ])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("read-only"), "a clear message: {err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(&d).unwrap() {
        std::fs::set_permissions(
            entry.unwrap().path(),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let rows = json(&["case", "list", "--dir", &d, "--json"]);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["case_no"], case_no.as_str());
}

/// Every bad input is refused with a message that names the problem, and the
/// case it was aimed at is unchanged.
#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let dir = TempDir::new("badinput");
    let d = init_node(dir.path(), "center", Some("003"));
    let item = yichuang_tests::first_item(&d);
    let created = json(&[
        "case",
        "new",
        "--dir",
        &d,
        "--item",
        &item,
        "--applicant-name",
        "测试丁",
        "--applicant-id",
        "11010519491231002X",
        "--json",
    ]);
    let case_no = created["case_no"].as_str().unwrap().to_owned();
    let before = ok(&["case", "show", "--dir", &d, &case_no, "--json"]);
    let new = |extra: &[&str]| {
        let mut args = vec!["case", "new", "--dir", &d, "--applicant-name", "测试戊"];
        args.extend_from_slice(extra);
        fails(&args)
    };
    let check = |err: String, expected: &str| {
        assert!(err.contains(expected), "expected {expected:?} in: {err}")
    };
    check(
        new(&["--item", &item, "--applicant-id", "110105194912310021"]),
        "check digit is wrong: expected X",
    );
    check(
        new(&["--item", &item, "--applicant-id", "11010519491331002X"]),
        "birth date",
    );
    check(
        new(&[
            "--item",
            &item,
            "--applicant-id",
            "91350100M000100Y44",
            "--applicant-kind",
            "enterprise_legal_person",
        ]),
        "credit code check character is wrong",
    );
    check(
        new(&[
            "--item",
            &item,
            "--applicant-id",
            "11010519491231002X",
            "--applicant-phone",
            "12345",
        ]),
        "phone number",
    );
    check(
        new(&[
            "--item",
            "no-such-item",
            "--applicant-id",
            "11010519491231002X",
        ]),
        "unknown item code",
    );
    check(
        new(&[
            "--item",
            &item,
            "--applicant-id",
            "11010519491231002X",
            "--applicant-kind",
            "alien",
        ]),
        "unknown applicant kind",
    );
    let step = |args: &[&str]| {
        let mut all = vec!["case", "event", "--dir", &d, &case_no];
        all.extend_from_slice(args);
        fails(&all)
    };
    check(
        step(&["approved"]),
        "approved is not allowed while the case is submitted; legal next steps: accepted",
    );
    check(step(&["flying"]), "unknown event kind");
    check(step(&["transferred"]), "a transfer needs a target center");
    let edit = |set: &str| fails(&["case", "edit", "--dir", &d, &case_no, "--set", set]);
    check(edit("applicant.shoe_size=42"), "unknown field");
    check(edit("applicant.phone=abc"), "phone number");
    check(edit("no-equals-sign"), "is not KEY=VALUE");
    check(edit("=x"), "empty key");
    check(edit("materials.M99.received=true"), "no material");
    check(
        edit("materials.M01.received=maybe"),
        "expected true or false",
    );
    check(
        edit("delivery.method=pigeon"),
        "expected one of window, post, locker",
    );
    check(
        fails(&["case", "show", "--dir", &d, "440399-003-19990101-9999"]),
        "no case",
    );
    check(
        fails(&["case", "list", "--dir", &d, "--status", "lost"]),
        "unknown status",
    );
    check(
        fails(&[
            "case",
            "list",
            "--dir",
            dir.join("nowhere").to_str().unwrap(),
        ]),
        "run `yichuang init` first",
    );
    check(
        fails(&[
            "init",
            "--dir",
            &d,
            "--role",
            "center",
            "--district",
            "440399",
            "--center",
            "003",
        ]),
        "already holds a Yichuang node",
    );
    check(
        fails(&[
            "init",
            "--dir",
            dir.join("x").to_str().unwrap(),
            "--role",
            "center",
            "--district",
            "440399",
            "--center",
            "099",
        ]),
        "unknown center",
    );
    check(
        fails(&[
            "init",
            "--dir",
            dir.join("y").to_str().unwrap(),
            "--role",
            "center",
            "--district",
            "110000",
            "--center",
            "001",
        ]),
        "unknown district",
    );
    let mut child = Command::new(bin())
        .args(["case", "import", "--dir", &d])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{not json\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    check(
        String::from_utf8_lossy(&out.stderr).into_owned(),
        "line 1 is not a case record",
    );
    // The case is exactly as it was, and there is still just one.
    assert_eq!(
        ok(&["case", "show", "--dir", &d, &case_no, "--json"]),
        before
    );
    assert_eq!(
        json(&["case", "list", "--dir", &d, "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Many clerks at once through the store thread: their writes share group commits,
/// a bad request fails alone, and every acknowledged case is there after reopening.
#[test]
fn the_store_thread_groups_commits_and_isolates_failures() {
    use yichuang_node::store::StoreHandle;
    let dir = TempDir::new("group");
    let mut store = Store::init(dir.path(), settings()).unwrap();
    let codes = items(&mut store);
    let handle = StoreHandle::spawn(store);
    let results: Vec<(bool, Result<String, String>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8u64)
            .map(|w| {
                let handle = handle.clone();
                let codes = codes.clone();
                scope.spawn(move || {
                    let mut rng = Rng::new(w);
                    let mut out = Vec::new();
                    for i in 0..25 {
                        let mut req = fake::case_request(&mut rng, &codes, "c");
                        let bad = i % 7 == 3;
                        if bad {
                            req.applicant.id_no = "110105194912310021".into();
                        }
                        let r = handle
                            .call_blocking(move |s| s.create_case(&req))
                            .unwrap()
                            .map(|c| c.case_no)
                            .map_err(|e| e.to_string());
                        out.push((bad, r));
                    }
                    out
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    drop(handle);
    let mut good = Vec::new();
    for (bad, r) in &results {
        match (bad, r) {
            (false, Ok(n)) => good.push(n.clone()),
            (true, Err(e)) => assert!(e.contains("check digit"), "{e}"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(good.len(), 8 * 25 - 8 * 4);
    let unique: std::collections::HashSet<_> = good.iter().collect();
    assert_eq!(unique.len(), good.len(), "case numbers are unique");
    // Every reply came after its group committed, so a fresh connection sees them all.
    let mut reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.case_count().unwrap() as usize, good.len());
    for n in &good {
        reopened.case_view(n, false, "t").unwrap();
    }
}
