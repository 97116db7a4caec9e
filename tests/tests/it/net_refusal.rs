//! Hostile and mistaken peers, against a district running in this process over real
//! QUIC: each is refused with a clear reason, and the hub keeps serving the others.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use yichuang_node::district::{self, Layout, Running};
use yichuang_node::net::frame::{read_frame, write_frame};
use yichuang_node::net::tls::{self, CertPair, Credentials, NodeIdentity, Trust};
use yichuang_node::net::transport::{self, ALPN, CloseCode};
use yichuang_node::store::{self, NodeSettings, Store};
use yichuang_shared::ids::{NodeId, Role};
use yichuang_shared::wire::{Ack, ChangeEntry as Entry, Changes, Hello, Message, RejectReason};
use yichuang_tests::TempDir;
use yichuang_tests::net::{runtime, wait_for_boards};

/// Anything the tests wait for happens within this on loopback, or it is a failure.
const DEADLINE: Duration = Duration::from_secs(20);

/// Waits until `check` passes, looking again whenever a node of the district
/// reports a change on its board.
async fn wait_for<T>(
    running: &Running,
    what: &str,
    check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let boards: Vec<_> = std::iter::once(&running.hub)
        .chain(&running.centers)
        .chain(&running.laptops)
        .map(|n| n.board())
        .collect();
    wait_for_boards(what, DEADLINE, &boards, check).await
}

/// A certificate for `role` of center `center` signed by the district's real CA.
fn enrolled_identity(
    hub_dir: &Path,
    role: Role,
    center: &str,
    staff: &str,
) -> (Credentials, Arc<Trust>) {
    let ca_key = std::fs::read_to_string(hub_dir.join("ca.key")).unwrap();
    let who = NodeIdentity {
        node_id: NodeId(store::random_bytes()),
        name: format!("intruder-{center}"),
        role,
        district: "440399".into(),
        center: center.into(),
        staff: staff.into(),
    };
    let pair = tls::issue_node_cert(&ca_key, &who).unwrap();
    (
        Credentials::from_pem(&pair).unwrap(),
        district_trust(hub_dir),
    )
}

fn district_trust(hub_dir: &Path) -> Arc<Trust> {
    let ca = tls::cert_from_pem(&std::fs::read_to_string(hub_dir.join("ca.crt")).unwrap()).unwrap();
    Trust::new("440399".into(), ca)
}

async fn dial(
    addr: SocketAddr,
    creds: &Credentials,
    trust: &Arc<Trust>,
    alpn: &[u8],
) -> Result<quinn::Connection, String> {
    let mut tls = tls::client_config(creds, trust, alpn).unwrap();
    if alpn.is_empty() {
        tls.alpn_protocols.clear();
    }
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = endpoint
        .connect_with(config, addr, tls::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(DEADLINE, connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| transport::describe_close(&e))
}

/// Why the connection ended; it must end within the deadline.
async fn close_reason(conn: &quinn::Connection) -> (Option<CloseCode>, String) {
    let e = tokio::time::timeout(DEADLINE, conn.closed())
        .await
        .expect("the peer should close the connection");
    let code = match &e {
        quinn::ConnectionError::ApplicationClosed(c) => {
            CloseCode::from_code(c.error_code.into_inner())
        }
        _ => None,
    };
    (code, transport::describe_close(&e))
}

/// A case registered at the first center reaches the hub: the district still works.
async fn still_serving(layout: &Layout, running: &Running) {
    let dir = layout.centers[0].dir.clone();
    let doc = tokio::task::spawn_blocking(move || {
        let mut s = Store::open(&dir).unwrap();
        let items: Vec<String> = s.catalog().unwrap().keys().take(1).cloned().collect();
        let mut rng = yichuang_node::bench::fake::Rng::new(7);
        s.create_case(&yichuang_node::bench::fake::case_request(
            &mut rng, &items, "clerk",
        ))
        .unwrap()
        .doc_id
        .to_string()
    })
    .await
    .unwrap();
    let hub = layout.hub.dir.clone();
    wait_for(running, "a new case reaches the hub", async || {
        let (hub, doc) = (hub.clone(), doc.clone());
        let has = tokio::task::spawn_blocking(move || {
            district::case_digest(&hub).unwrap().contains_key(&doc)
        })
        .await
        .unwrap();
        if has { Ok(()) } else { Err("not yet".into()) }
    })
    .await;
}

async fn up(root: &Path, centers: usize, laptops: usize) -> (Layout, Running, SocketAddr) {
    let layout = district::enroll_district(root, centers, laptops).unwrap();
    let running = district::start(&layout, false).await.unwrap();
    let hub = running.hub.listen_addr().unwrap();
    (layout, running, hub)
}

#[test]
fn foreign_certificates_wrong_versions_and_garbage_are_refused_while_the_hub_serves_on() {
    let root = TempDir::new("net-refuse");
    runtime().block_on(async {
        let (layout, running, hub) = up(root.path(), 1, 0).await;
        let trust = district_trust(&layout.hub.dir);

        // A certificate from another CA.
        let other_ca = tls::make_ca("440399").unwrap();
        let who = NodeIdentity {
            node_id: NodeId([9; 8]),
            name: "stranger".into(),
            role: Role::Center,
            district: "440399".into(),
            center: "001".into(),
            staff: String::new(),
        };
        let foreign =
            Credentials::from_pem(&tls::issue_node_cert(&other_ca.key_pem, &who).unwrap()).unwrap();
        let reason = match dial(hub, &foreign, &trust, ALPN).await {
            Err(e) => e,
            Ok(conn) => {
                let _ = conn.open_bi().await;
                close_reason(&conn).await.1
            }
        };
        // Same CA name, other key: the signature check fails (another name: unknown issuer).
        assert!(reason.contains("invalid peer certificate"), "{reason}");

        let (creds, trust) = enrolled_identity(&layout.hub.dir, Role::Center, "001", "");
        // A wrong ALPN (another protocol version) fails the handshake.
        let e = dial(hub, &creds, &trust, b"yichuang/99")
            .await
            .expect_err("wrong ALPN must fail");
        assert!(
            e.to_lowercase().contains("application protocol")
                || e.contains("NoApplicationProtocol")
                || e.contains("120"),
            "{e}"
        );
        // No ALPN at all: closed with the version code and the protocol we speak.
        if let Ok(conn) = dial(hub, &creds, &trust, b"").await {
            let (code, reason) = close_reason(&conn).await;
            assert_eq!(code, Some(CloseCode::Version), "{reason}");
            assert!(reason.contains("yichuang/1"), "{reason}");
        }

        // A frame of another protocol version.
        let conn = dial(hub, &creds, &trust, ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        write_frame(&mut send, &[9, 1, 0, 0]).await.unwrap();
        let (code, reason) = close_reason(&conn).await;
        assert_eq!(code, Some(CloseCode::Version), "{reason}");
        assert!(
            reason.contains("unsupported protocol version 9"),
            "{reason}"
        );

        // An oversized frame: refused from its header, before any allocation.
        let conn = dial(hub, &creds, &trust, ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let (code, reason) = close_reason(&conn).await;
        assert_eq!(code, Some(CloseCode::FrameTooLarge), "{reason}");

        // A malformed frame.
        let conn = dial(hub, &creds, &trust, ALPN).await.unwrap();
        let (mut send, _recv) = conn.open_bi().await.unwrap();
        write_frame(&mut send, &[1, 77, 1, 2, 3]).await.unwrap();
        let (code, reason) = close_reason(&conn).await;
        assert_eq!(code, Some(CloseCode::Protocol), "{reason}");
        assert!(reason.contains("unknown message type 77"), "{reason}");

        // A peer that opens more streams than the protocol uses.
        let conn = dial(hub, &creds, &trust, ALPN).await.unwrap();
        let (mut first, _r1) = conn.open_bi().await.unwrap();
        first.write_all(&[0]).await.unwrap();
        let (mut second, _r2) = conn.open_bi().await.unwrap();
        second.write_all(&[0, 0, 0, 1, 1]).await.unwrap();
        let (code, reason) = close_reason(&conn).await;
        assert_eq!(code, Some(CloseCode::TooManyStreams), "{reason}");

        // Random bytes at the UDP port.
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rng = yichuang_node::bench::fake::Rng::new(99);
        for i in 0..200usize {
            let len = 1 + (rng.below(1400) as usize);
            let junk: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            let _ = udp.send_to(&junk[..len.min(junk.len())], hub).await;
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }

        still_serving(&layout, &running).await;
        running.shutdown().await;
    });
}

#[test]
fn revoked_nodes_are_refused_at_the_hub_at_once_and_at_their_center_after_the_list_syncs() {
    let root = TempDir::new("net-revoke");
    runtime().block_on(async {
        let (layout, running, _hub) = up(root.path(), 2, 1).await;
        let laptop = &layout.laptops[0];
        let revoked_center = &layout.centers[1];
        // Wait until the laptop is talking to its center.
        wait_for(&running, "laptop connected", async || {
            if running.laptops[0]
                .board()
                .snapshot()
                .iter()
                .any(|p| p.connected)
            {
                Ok(())
            } else {
                Err("no".into())
            }
        })
        .await;
        let hub_dir = layout.hub.dir.clone();
        let (lid, cid) = (
            laptop.settings.node_id.to_string(),
            revoked_center.settings.node_id.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            let mut hub = Store::open(&hub_dir).unwrap();
            yichuang_node::net::enroll::revoke(&mut hub, &cid).unwrap();
            yichuang_node::net::enroll::revoke(&mut hub, &lid).unwrap();
        })
        .await
        .unwrap();

        // The hub drops the revoked center at once and refuses it from then on.
        wait_for(&running, "revoked center cut off", async || {
            let board = running.centers[1].board().snapshot();
            let hub_peer = board
                .iter()
                .find(|p| p.role == Role::Hub)
                .ok_or("no hub peer")?;
            let err = hub_peer.last_error.clone().unwrap_or_default();
            if !hub_peer.connected && err.to_lowercase().contains("revoked") {
                Ok(())
            } else {
                Err(format!("{hub_peer:?}"))
            }
        })
        .await;
        // The list reaches the first center, which then refuses the revoked laptop.
        let center_dir = layout.centers[0].dir.clone();
        let laptop_id = laptop.settings.node_id;
        wait_for(&running, "revocation list at the center", async || {
            let d = center_dir.clone();
            let revoked = tokio::task::spawn_blocking(move || {
                Store::open(&d).unwrap().registry().unwrap().revoked_ids()
            })
            .await
            .unwrap();
            if revoked.contains(&laptop_id) {
                Ok(())
            } else {
                Err(format!("{revoked:?}"))
            }
        })
        .await;
        wait_for(&running, "laptop refused everywhere", async || {
            let board = running.laptops[0].board().snapshot();
            let connected = board.iter().any(|p| p.connected);
            let errs: Vec<String> = board.iter().filter_map(|p| p.last_error.clone()).collect();
            if !connected && errs.iter().any(|e| e.to_lowercase().contains("revoked")) {
                Ok(())
            } else {
                Err(format!("{board:?}"))
            }
        })
        .await;
        // A revoked node cannot be enrolled again under its id.
        let (hub_dir, center_id) = (layout.hub.dir.clone(), revoked_center.settings.node_id);
        let again = tokio::task::spawn_blocking(move || {
            let mut hub = Store::open(&hub_dir).unwrap();
            let req = yichuang_node::net::enroll::IssueRequest {
                name: "again".into(),
                role: Role::Center,
                center: Some("002".into()),
                staff: None,
                node_id: Some(center_id),
                center_addr: None,
            };
            yichuang_node::net::enroll::issue(&mut hub, &req)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
        assert!(again.unwrap_err().contains("revoked"));
        still_serving(&layout, &running).await;
        running.shutdown().await;
    });
}

/// A case of center 002 written under `author`'s node id, as raw changes.
fn foreign_case_changes(root: &Path, author: NodeId) -> (String, Vec<Entry>) {
    let settings = NodeSettings {
        node_id: author,
        name: "scratch".into(),
        role: Role::Center,
        district: "440399".into(),
        center: "002".into(),
        staff: String::new(),
        created_ms: store::now_ms(),
    };
    let mut s = Store::init(&root.join("scratch"), settings).unwrap();
    let items: Vec<String> = s.catalog().unwrap().keys().take(1).cloned().collect();
    let mut rng = yichuang_node::bench::fake::Rng::new(3);
    let created = s
        .create_case(&yichuang_node::bench::fake::case_request(
            &mut rng, &items, "clerk",
        ))
        .unwrap();
    let entries = s
        .raw_changes(&created.doc_id)
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| Entry {
            doc: created.doc_id.clone(),
            bytes,
        })
        .collect();
    (created.doc_id.to_string(), entries)
}

#[test]
fn out_of_scope_changes_are_refused_and_reported_while_the_session_goes_on() {
    let root = TempDir::new("net-scope");
    runtime().block_on(async {
        let (layout, running, hub) = up(root.path(), 1, 0).await;
        // An enrolled center 001 sends a case it wrote as if it were center 002's.
        let (creds, trust) = enrolled_identity(&layout.hub.dir, Role::Center, "001", "");
        let (doc, entries) = foreign_case_changes(root.path(), creds.identity.node_id);
        let conn = dial(hub, &creds, &trust, ALPN).await.unwrap();
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        let hello = Hello {
            node: creds.identity.node_id,
            role: Role::Center,
            epoch: 1,
            // An empty feed at first contact, so the batch below is the feed's start.
            last_seq: 0,
            your_feed: None,
            want_reconcile: false,
        };
        write_frame(&mut send, &Message::Hello(hello).encode())
            .await
            .unwrap();
        let changes = Message::Changes(Changes {
            from_seq: 0,
            up_to_seq: 1,
            caught_up: true,
            entries,
        });
        write_frame(&mut send, &changes.encode()).await.unwrap();
        let (mut rejected, mut acked) = (None, false);
        for _ in 0..64 {
            let frame = tokio::time::timeout(DEADLINE, read_frame(&mut recv))
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match Message::decode(&frame).unwrap() {
                Message::Rejected(list) => rejected = Some(list),
                Message::Ack(Ack { up_to_seq: 1 }) => acked = true,
                _ => {}
            }
            if rejected.is_some() && acked {
                break;
            }
        }
        let list = rejected.expect("a rejection report");
        assert!(!list.is_empty(), "one entry per refused change");
        for r in &list {
            assert_eq!(r.reason, RejectReason::NotPermitted, "{r:?}");
            assert!(r.detail.contains("may not create"), "{r:?}");
        }
        assert!(
            acked,
            "the batch is acknowledged: refused changes are filed as refused, the session goes on"
        );
        assert!(conn.close_reason().is_none(), "the session stays open");
        let hub_dir = layout.hub.dir.clone();
        let (has, refused) = tokio::task::spawn_blocking(move || {
            let s = Store::open(&hub_dir).unwrap();
            let refused: i64 = s
                .connection()
                .query_row("SELECT COUNT(*) FROM rejections", [], |r| r.get(0))
                .unwrap();
            (
                district::case_digest(&hub_dir).unwrap().contains_key(&doc),
                refused,
            )
        })
        .await
        .unwrap();
        assert!(!has, "the out-of-scope case must not be stored at the hub");
        assert!(refused >= 1);
        still_serving(&layout, &running).await;
        conn.close(0u32.into(), b"done");
        running.shutdown().await;
    });
}

#[test]
fn bundles_bind_to_node_ids_and_certificates_name_their_node() {
    let root = TempDir::new("net-enroll");
    let layout = district::enroll_district(root.path(), 1, 0).unwrap();
    // A node initialised offline keeps its id: a bundle for another id is refused.
    let offline = root.join("offline");
    let settings = NodeSettings {
        node_id: NodeId(store::random_bytes()),
        name: "offline".into(),
        role: Role::Center,
        district: "440399".into(),
        center: "003".into(),
        staff: String::new(),
        created_ms: store::now_ms(),
    };
    Store::init(&offline, settings.clone()).unwrap();
    let mut hub = Store::open(&layout.hub.dir).unwrap();
    let mut req = yichuang_node::net::enroll::IssueRequest {
        name: "center-003".into(),
        role: Role::Center,
        center: Some("003".into()),
        staff: None,
        node_id: None,
        center_addr: None,
    };
    let wrong = yichuang_node::net::enroll::issue(&mut hub, &req).unwrap();
    let opts = yichuang_node::net::enroll::JoinOptions {
        hub: Some("127.0.0.1:7400".parse().unwrap()),
        ..Default::default()
    };
    let e = yichuang_node::net::enroll::join(&offline, &wrong, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--node-id") && e.contains(&settings.node_id.to_string()),
        "{e}"
    );
    req.name = "center-003b".into();
    req.node_id = Some(settings.node_id);
    let right = yichuang_node::net::enroll::issue(&mut hub, &req).unwrap();
    let joined = yichuang_node::net::enroll::join(&offline, &right, &opts).unwrap();
    assert_eq!(joined.node_id, settings.node_id);
    let pem = std::fs::read_to_string(offline.join("node.crt")).unwrap();
    let creds = Credentials::from_pem(&CertPair {
        cert_pem: pem,
        key_pem: std::fs::read_to_string(offline.join("node.key")).unwrap(),
    })
    .unwrap();
    assert_eq!(creds.identity.node_id, settings.node_id);
    assert_eq!(creds.identity.role, Role::Center);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        {
            let f = "node.key";
            let mode = std::fs::metadata(offline.join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let mode = std::fs::metadata(layout.hub.dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
