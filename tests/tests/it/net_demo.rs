//! `yichuang demo`, the README's first command: a district on loopback, a center cut
//! off and healed, every node agreeing at the end, exit 0.

use yichuang_tests::{TempDir, ok};

#[test]
fn the_demo_runs_a_district_cuts_a_center_off_heals_and_agrees() {
    let root = TempDir::new("net-demo");
    let dir = root.join("district");
    let out = ok(&[
        "demo",
        "--centers",
        "2",
        "--laptops",
        "1",
        "--cases",
        "2",
        "--cut-seconds",
        "2",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.contains("round 1: every node agrees"), "{out}");
    assert!(out.contains("after healing: every node agrees"), "{out}");
    assert!(out.contains("done: the hub holds all"), "{out}");
    // The folders stay behind for a look, and status reads them.
    let st = yichuang_tests::json(&[
        "status",
        "--dir",
        dir.join("hub").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(st["node"]["role"], "hub");
    assert_eq!(st["serving"], false);
    // The hub's peers are the two centers; the laptop syncs through its center.
    assert_eq!(st["peers"].as_array().map(Vec::len), Some(2), "{st}");
    let center = yichuang_tests::json(&[
        "status",
        "--dir",
        dir.join("center-001").to_str().unwrap(),
        "--json",
    ]);
    let roles: Vec<_> = center["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].clone())
        .collect();
    assert!(
        roles.contains(&"hub".into()) && roles.contains(&"laptop".into()),
        "{center}"
    );
}
