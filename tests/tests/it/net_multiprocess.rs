//! A hub and two centers as separate `yichuang serve` processes on loopback: cases
//! made at both centers while the hub is down reach it once it is back, and
//! `status --json` ends with nothing waiting in either direction.

use std::time::Duration;

use yichuang_tests::net::{
    Serve, case_numbers, cli_district, free_udp_port, new_case, settled, status, wait_until,
};
use yichuang_tests::{TempDir, first_item};

const CONVERGE: Duration = Duration::from_secs(30);

#[test]
fn centers_work_while_the_hub_is_down_and_everything_converges_after() {
    let root = TempDir::new("net-multi");
    let (hub, centers) = cli_district(root.path(), free_udp_port(), &["001", "002"]);
    let item = first_item(centers[0].to_str().unwrap());

    let mut hub_proc = Serve::start(&hub);
    let _c1 = Serve::start(&centers[0]);
    let _c2 = Serve::start(&centers[1]);
    let first = [new_case(&centers[0], &item), new_case(&centers[1], &item)];
    wait_until("first cases at the hub", CONVERGE, || {
        let at_hub = case_numbers(&hub);
        if first.iter().all(|c| at_hub.contains(c)) {
            Ok(())
        } else {
            Err(format!("hub has {at_hub:?}"))
        }
    });

    hub_proc.stop();
    let mut offline = Vec::new();
    for _ in 0..3 {
        offline.push(new_case(&centers[0], &item));
        offline.push(new_case(&centers[1], &item));
    }
    // The centers keep working and know the hub has not seen these.
    wait_until("centers see the hub gone", CONVERGE, || {
        let st = status(&centers[0]);
        if st["peers"][0]["connected"] == false {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });

    let _hub_again = Serve::start(&hub);
    wait_until(
        "every case at the hub, nothing waiting anywhere",
        CONVERGE,
        || {
            let at_hub = case_numbers(&hub);
            let missing: Vec<_> = first
                .iter()
                .chain(&offline)
                .filter(|c| !at_hub.contains(*c))
                .collect();
            if !missing.is_empty() {
                return Err(format!("missing at the hub: {missing:?}"));
            }
            settled(&hub, 2)?;
            settled(&centers[0], 1)?;
            settled(&centers[1], 1)
        },
    );
    assert_eq!(case_numbers(&hub).len(), 8);
    // Each center holds its own cases only.
    assert_eq!(case_numbers(&centers[0]).len(), 4);
    assert_eq!(case_numbers(&centers[1]).len(), 4);
    let st = status(&hub);
    assert_eq!(st["rejected"], 0, "{st}");
    assert_eq!(st["node"]["role"], "hub");
}

#[test]
fn revoke_from_the_cli_cuts_a_serving_center_off_and_status_says_why() {
    let root = TempDir::new("net-revoke-cli");
    let (hub, centers) = cli_district(root.path(), free_udp_port(), &["001"]);
    let _hub = Serve::start(&hub);
    let _center = Serve::start(&centers[0]);
    wait_until("center connected", CONVERGE, || settled(&centers[0], 1));
    let out = yichuang_tests::ok(&[
        "revoke",
        "--dir",
        hub.to_str().unwrap(),
        "--node",
        "center-001",
    ]);
    assert!(out.contains("revoked node \"center-001\""), "{out}");
    wait_until("the center is refused and says so", CONVERGE, || {
        let st = status(&centers[0]);
        let peer = &st["peers"][0];
        let why = format!("{} {}", peer["last_error"], st["dial_error"]).to_lowercase();
        if peer["connected"] == false && why.contains("revoked") {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });
    // Revoking again, or revoking the hub itself, is refused clearly.
    let err = yichuang_tests::fails(&[
        "revoke",
        "--dir",
        hub.to_str().unwrap(),
        "--node",
        "hub-000",
    ]);
    assert!(err.contains("cannot revoke itself"), "{err}");
}
