//! The clerks' pages in a real browser: headless Chromium driven over WebDriver
//! (chromedriver on a loopback port, both killed on drop). A clerk logs in at a
//! center, registers a case through the form, sees it marked as not yet at the hub,
//! sees the mark clear live once the hub has it; the center's supervisor settles a
//! conflict the clerk may only look at and reveals the ID; the case shows on the hub's
//! dashboard. Every wait is on something that notifies (the driver's wait for an
//! element, the node's status stream) and has a deadline. Screenshots of the main pages go to `<target>/screenshots/`.
//!
//! The nodes are real `yichuang serve` processes enrolled by the hub and syncing over
//! QUIC on loopback; the hub is started only after the case was registered.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use yichuang_node::store::Store;
use yichuang_tests::TempDir;
use yichuang_tests::net::{cli_district, free_udp_port};
use yichuang_tests::web::{Api, PASSWORD, Server, add_user};

const ID: &str = "11010519491231002X";
/// The whole browser scenario must finish within this, or the test fails.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(240);
/// One element or condition must appear within this.
const STEP_DEADLINE: Duration = Duration::from_secs(20);
/// Sync over loopback must deliver within this (reconnect backoff included).
const SYNC_DEADLINE: Duration = Duration::from_secs(60);
/// chromedriver must accept connections within this.
const DRIVER_START_DEADLINE: Duration = Duration::from_secs(20);

/// The folder the screenshots go to: `screenshots/` in the cargo target folder.
fn screenshot_dir() -> PathBuf {
    // Invariant: the test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps")
        .to_path_buf();
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshots folder");
    dir
}

/// A chromedriver process on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn start_driver() -> Driver {
    let program = find_program(&["chromedriver"]).unwrap_or_else(|| {
        panic!(
            "chromedriver is not installed; run `apt-get install -y chromium chromium-driver` (README: browser tests)"
        )
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(program)
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning chromedriver");
    // chromedriver says so on standard output once it listens.
    let stdout = child.stdout.take().expect("chromedriver stdout");
    let driver = Driver { child, port };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("started successfully") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(DRIVER_START_DEADLINE).unwrap_or_else(|_| {
        panic!("chromedriver did not start on {port} within {DRIVER_START_DEADLINE:?}")
    });
    driver
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--window-size=1366,1000".into(),
        "--lang=zh-CN".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.sort();
    let mut options = json!({ "args": args });
    if let Some(bin) = find_program(&["chromium", "chromium-browser"]) {
        options["binary"] = json!(bin);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("starting a Chromium session")
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("writing a screenshot");
}

async fn el(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(STEP_DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

async fn text(c: &Client, css: &str) -> String {
    el(c, css).await.text().await.expect("element text")
}

async fn hidden(c: &Client, css: &str) -> bool {
    let class = el(c, css).await.attr("class").await.expect("class");
    class
        .unwrap_or_default()
        .split_whitespace()
        .any(|c| c == "hidden")
}

/// Waits, with the driver's own wait, until `locator` finds an element.
async fn wait_for(c: &Client, locator: Locator<'_>, deadline: Duration, what: &str) {
    if let Err(e) = c.wait().at_most(deadline).for_element(locator).await {
        panic!("{what} within {deadline:?}: {e}");
    }
}

/// Waits until `css`'s visibility is `want_hidden`, without reloading the page.
async fn wait_hidden(c: &Client, css: &str, want_hidden: bool) {
    let (selector, state) = if want_hidden {
        (format!("{css}.hidden"), "hidden")
    } else {
        (format!("{css}:not(.hidden)"), "visible")
    };
    let what = format!("{css} became {state}");
    wait_for(c, Locator::Css(&selector), STEP_DEADLINE, &what).await;
}

/// Waits until the element with id `#id` says `needle`.
async fn wait_text(c: &Client, css: &str, needle: &str) {
    let id = css.strip_prefix('#').expect("wait_text takes an #id");
    let xpath = format!("//*[@id='{id}'][contains(string(.), '{needle}')]");
    let what = format!("{css} said {needle:?}");
    wait_for(c, Locator::XPath(&xpath), STEP_DEADLINE, &what).await;
}

/// Waits until `done` holds: checks it now, then again after each `sync` event of
/// the node's status stream. A change that arrives by sync moves the status
/// (`head_seq`), so every arrival wakes the check; nothing polls on a timer.
async fn wait_synced(api: &Api, what: &str, mut done: impl FnMut() -> bool) {
    let mut events = api.follow_events("/api/sync/stream", "sync", SYNC_DEADLINE);
    let until = tokio::time::Instant::now() + SYNC_DEADLINE;
    while !done() {
        match tokio::time::timeout_at(until, events.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the status stream ended before {what}"),
            Err(_) => panic!("{what}: not within {SYNC_DEADLINE:?}"),
        }
    }
}

async fn login(c: &Client, base: &str, name: &str, screenshot: Option<&str>) {
    c.goto(&format!("{base}/")).await.expect("open");
    el(c, "#login-form").await;
    el(c, "#name").await.send_keys(name).await.expect("type");
    el(c, "#password")
        .await
        .send_keys(PASSWORD)
        .await
        .expect("type");
    if let Some(name) = screenshot {
        shot(c, name).await;
    }
    el(c, "#login-submit").await.click().await.expect("click");
    el(c, "#sync-banner").await;
}

/// Starts `yichuang serve` on a node with its web side on a free loopback port.
fn serve(dir: &Path) -> Server {
    Server::start(&[
        "serve",
        "--dir",
        dir.to_str().expect("utf-8 path"),
        "--http",
        "127.0.0.1:0",
    ])
}

#[test]
fn clerk_registers_a_case_and_sees_it_reach_the_hub() {
    let root = TempDir::new("web-b");
    let (hub_dir, centers) = cli_district(root.path(), free_udp_port(), &["003", "005"]);
    let hub = hub_dir.to_str().expect("utf-8 path").to_owned();
    let center = centers[0].to_str().expect("utf-8 path").to_owned();
    let other = centers[1].to_str().expect("utf-8 path").to_owned();
    add_user(&center, "C007", "clerk", PASSWORD);
    add_user(&center, "S003", "supervisor", PASSWORD);
    add_user(&hub, "D001", "supervisor", PASSWORD);
    // The center runs; the hub is stopped.
    let center_srv = serve(&centers[0]);
    let driver = start_driver();
    let profile = TempDir::new("web-b-chromium");
    let shots = screenshot_dir();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(SCENARIO_DEADLINE, async {
            let c = browser(&driver, profile.path()).await;

            // Log in at the center.
            login(&c, &center_srv.base, "C007", Some("01-login")).await;
            assert!(c.current_url().await.unwrap().path().starts_with("/cases"));

            // Register a case through the form: find the item by typing.
            el(&c, "#new-case").await.click().await.unwrap();
            el(&c, "#item-search")
                .await
                .send_keys("电梯")
                .await
                .unwrap();
            let first = el(&c, "#item-suggest li").await;
            shot(&c, "02-register-typeahead").await;
            first.click().await.unwrap();
            wait_hidden(&c, "#step2", false).await;
            el(&c, "#applicant-name")
                .await
                .send_keys("王小明")
                .await
                .unwrap();
            el(&c, "#applicant-id").await.send_keys(ID).await.unwrap();
            el(&c, "#applicant-phone")
                .await
                .send_keys("13800138000")
                .await
                .unwrap();
            for m in c
                .find_all(Locator::Css("input[name=material][data-required]"))
                .await
                .unwrap()
            {
                m.click().await.unwrap();
            }
            shot(&c, "03-register-filled").await;
            el(&c, "#submit").await.click().await.unwrap();

            // The detail page: masked ID, legal steps only, marked not at the hub.
            let case_no = text(&c, "#case-no").await;
            assert!(case_no.starts_with("440399-003-"), "{case_no}");
            assert_eq!(text(&c, "#applicant-id").await, "110105********002X");
            assert!(!hidden(&c, "#case-pending").await, "not yet at the hub");
            assert!(hidden(&c, "#case-hub").await);
            el(&c, "#step-accepted").await;
            assert!(
                c.find(Locator::Css("#step-approved")).await.is_err(),
                "only legal next steps are offered"
            );
            wait_text(&c, "#sync-banner", "未到达区中心").await;
            shot(&c, "04-case-detail-not-at-hub").await;

            // Advance it one step with a button.
            el(&c, "#step-accepted").await.click().await.unwrap();
            wait_text(&c, "#case-status", "已受理").await;

            // A clerk is not offered the reveal: it is a supervisor's.
            assert!(
                c.find(Locator::Css("#reveal")).await.is_err(),
                "a clerk has no reveal button"
            );
            assert!(text(&c, "#reveal-note").await.contains("主管"));

            // The list marks it too, while the hub does not have it.
            c.goto(&format!("{}/cases", center_srv.base)).await.unwrap();
            let row_mark = format!("#row-{case_no}-pending");
            assert!(!hidden(&c, &row_mark).await);
            shot(&c, "05-case-list-not-at-hub").await;

            // The hub starts; sync delivers the case; the mark clears live, without a reload.
            let hub_srv = serve(&hub_dir);
            wait_for(
                &c,
                Locator::Css(&format!("{row_mark}.hidden")),
                SYNC_DEADLINE,
                "the case reached the hub",
            )
            .await;
            wait_hidden(&c, &format!("#row-{case_no}-hub"), false).await;
            wait_text(&c, "#sync-banner", "所有变更均已到达区中心").await;
            wait_text(&c, "#sync-state", "已连接区中心").await;
            shot(&c, "06-case-list-at-hub").await;

            // A conflict: the hub stops, and both sides change the phone while apart.
            drop(hub_srv);
            Store::open(Path::new(&hub))
                .unwrap()
                .case_edit(
                    &case_no,
                    "D001",
                    &[("applicant.phone".into(), "13700137000".into())],
                )
                .unwrap();
            Store::open(Path::new(&center))
                .unwrap()
                .case_edit(
                    &case_no,
                    "C007",
                    &[("applicant.phone".into(), "13900139000".into())],
                )
                .unwrap();
            let hub_srv = serve(&hub_dir);
            let center_api = center_srv.client().login("C007", PASSWORD);
            wait_synced(&center_api, "the hub's edit reached the center", || {
                center_api
                    .get("/api/conflicts")
                    .json
                    .as_array()
                    .is_some_and(|q| q.iter().any(|c| c["case_no"] == case_no.as_str()))
            })
            .await;
            c.goto(&format!("{}/conflicts", center_srv.base))
                .await
                .unwrap();
            wait_text(&c, &format!("#c-{case_no}"), "申请人电话").await;
            let card = text(&c, &format!("#c-{case_no}")).await;
            assert!(card.contains("C007") && card.contains("D001"), "{card}");
            assert!(
                card.contains("137****7000") && card.contains("139****9000"),
                "{card}"
            );
            // The clerk sees the conflict but no button to settle it.
            el(&c, "#resolve-needs-supervisor").await;
            assert!(c.find(Locator::Css("button[data-resolve]")).await.is_err());

            // The center's supervisor settles it, then reveals the ID (audited).
            el(&c, "header .who button").await.click().await.unwrap();
            login(&c, &center_srv.base, "S003", None).await;
            c.goto(&format!("{}/conflicts", center_srv.base))
                .await
                .unwrap();
            shot(&c, "07-conflict-queue").await;
            el(&c, "button[data-resolve]").await.click().await.unwrap();
            el(&c, "#no-conflicts").await;
            c.goto(&format!("{}/cases/{case_no}", center_srv.base))
                .await
                .unwrap();
            el(&c, "#reveal").await.click().await.unwrap();
            c.accept_alert().await.expect("the reveal asks first");
            wait_text(&c, "#applicant-id", ID).await;
            c.refresh().await.unwrap();
            wait_text(&c, "#events", "查看完整证件号").await;
            assert_eq!(text(&c, "#applicant-id").await, "110105********002X");

            // More cases from two centers, so the dashboard has a hall to show.
            {
                let mut cs = Store::open(Path::new(&center)).unwrap();
                let mut os = Store::open(Path::new(&other)).unwrap();
                let items: Vec<String> = cs.catalog().unwrap().keys().take(4).cloned().collect();
                for (n, item) in items.iter().cycle().take(9).enumerate() {
                    let store = if n % 3 == 0 { &mut os } else { &mut cs };
                    store
                        .create_case(&yichuang_node::store::CreateCase {
                            item: item.clone(),
                            applicant_kind: yichuang_shared::case::ApplicantKind::NaturalPerson,
                            applicant: yichuang_shared::case::Party {
                                name: format!("申请人{n}"),
                                id_no: ID.into(),
                                phone: String::new(),
                                address: String::new(),
                            },
                            agent: None,
                            materials_received: vec![],
                            delivery_method: None,
                            delivery_address: String::new(),
                            clerk: "C007".into(),
                        })
                        .unwrap();
                }
            }
            let _other_srv = serve(&centers[1]);

            // The hub's dashboard shows the case's center and the hall's figures.
            let hub_api = hub_srv.client().login("D001", PASSWORD);
            wait_synced(&hub_api, "both centers' cases reached the hub", || {
                hub_api.get("/api/dashboard").json["total"] == 10
            })
            .await;
            login(&c, &hub_srv.base, "D001", None).await;
            assert_eq!(c.current_url().await.unwrap().path(), "/dashboard");
            assert_eq!(text(&c, "#stat-total").await, "10");
            let by_center = text(&c, "#by-center").await;
            assert!(by_center.contains("桐湾街道公共服务中心"), "{by_center}");
            assert!(by_center.contains("碧澜街道公共服务中心"), "{by_center}");
            el(&c, "#volume-chart rect").await;
            // The whole dashboard in one picture.
            c.set_window_size(1366, 1500).await.expect("resizing");
            shot(&c, "08-hub-dashboard").await;
            c.set_window_size(1366, 1000).await.expect("resizing");
            c.goto(&format!("{}/cases?q={case_no}", hub_srv.base))
                .await
                .unwrap();
            wait_text(&c, "#case-table", &case_no).await;
            shot(&c, "09-hub-case-list").await;
            c.goto(&format!("{}/cases/{case_no}", hub_srv.base))
                .await
                .unwrap();
            wait_text(&c, "#events", "受理").await;
            shot(&c, "10-hub-case-detail").await;

            c.close().await.expect("closing the browser");
        })
        .await
        .expect("the browser scenario took too long");
    });
    for name in [
        "01-login",
        "04-case-detail-not-at-hub",
        "06-case-list-at-hub",
        "08-hub-dashboard",
    ] {
        let p = shots.join(format!("{name}.png"));
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{} is missing or empty", p.display());
    }
}
