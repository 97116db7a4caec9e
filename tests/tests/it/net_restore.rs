//! A center restored from a backup, with real `serve` processes: a backup taken while
//! it serves, cases made after it, the center's disk lost (SIGKILL, restore). Its
//! peers see the new feed epoch and reconcile: the cases made after the backup come
//! back from the hub, new ones reach it, and no case number is given twice.

use std::collections::BTreeSet;
use std::time::Duration;

use yichuang_tests::net::{
    Serve, case_numbers, cli_district, dir_str, free_udp_port, new_case, settled, wait_until,
};
use yichuang_tests::{TempDir, fails, first_item, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn all_at(dir: &std::path::Path, cases: &[String]) -> Result<(), String> {
    let have = case_numbers(dir);
    let missing: Vec<_> = cases.iter().filter(|c| !have.contains(*c)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {missing:?}"))
    }
}

#[test]
fn a_center_restored_from_a_backup_gets_back_what_it_made_after_and_reuses_no_number() {
    let root = TempDir::new("net-restore");
    let (hub, centers) = cli_district(root.path(), free_udp_port(), &["001"]);
    let center = &centers[0];
    let item = first_item(dir_str(center));
    let _hub = Serve::start(&hub);
    let mut serving = Serve::start(center);

    let before: Vec<String> = (0..3).map(|_| new_case(center, &item)).collect();
    wait_until("the first cases at the hub", CONVERGE, || {
        all_at(&hub, &before)
    });
    let backup = root.join("center-001.backup");
    let b = json(&[
        "backup",
        "--dir",
        dir_str(center),
        "--out",
        dir_str(&backup),
        "--json",
    ]);
    assert_eq!(b["cases"], 3, "{b}");
    let again = fails(&[
        "backup",
        "--dir",
        dir_str(center),
        "--out",
        dir_str(&backup),
    ]);
    assert!(again.contains("already exists"), "{again}");

    let after: Vec<String> = (0..2).map(|_| new_case(center, &item)).collect();
    wait_until("the later cases at the hub", CONVERGE, || {
        all_at(&hub, &after)
    });
    let refused = fails(&[
        "restore",
        "--dir",
        dir_str(center),
        "--from",
        dir_str(&backup),
    ]);
    assert!(refused.contains("running"), "{refused}");

    // The disk is lost: no orderly shutdown, then the backup goes back in.
    serving.kill();
    let epoch_before = json(&["info", "--dir", dir_str(center), "--json"])["feed_epoch"].clone();
    let r = json(&[
        "restore",
        "--dir",
        dir_str(center),
        "--from",
        dir_str(&backup),
        "--json",
    ]);
    assert_eq!(r["cases"], 3, "{r}");
    assert_ne!(
        r["feed_epoch"], epoch_before,
        "a restored node starts a new feed epoch"
    );
    assert!(
        std::path::Path::new(r["kept"].as_str().expect("the replaced file is kept")).exists(),
        "{r}"
    );
    assert_eq!(
        case_numbers(center),
        before.iter().cloned().collect::<BTreeSet<_>>()
    );

    // Clerks work on before it serves again: more changes than were lost, so its
    // feed reuses sequence numbers the hub acknowledged under the old epoch.
    let newer: Vec<String> = (0..3).map(|_| new_case(center, &item)).collect();
    for n in &newer {
        assert!(
            !after.contains(n),
            "{n} was already given to a case made after the backup"
        );
    }
    let _serving = Serve::start(center);
    let every: Vec<String> = before.iter().chain(&after).chain(&newer).cloned().collect();
    wait_until("everything everywhere, nothing waiting", CONVERGE, || {
        all_at(center, &every)?;
        all_at(&hub, &every)?;
        settled(&hub, 1)?;
        settled(center, 1)
    });
    assert_eq!(case_numbers(&hub).len(), 8);
    assert_eq!(case_numbers(center).len(), 8);
}
