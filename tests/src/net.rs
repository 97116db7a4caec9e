//! Helpers for network tests: `yichuang serve` child processes, a district enrolled
//! through the CLI on loopback ports, and waiting for a condition with a deadline.
//!
//! Waiting never polls on a timer: every line a `serve` child logs (it logs each
//! session event, each batch it stores and each rewrite of its status file) wakes
//! the waiters, which then look again.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::{bin, json, ok};

/// Most wake-ups one wait looks at; a bound on the loop besides the deadline.
const WAKEUPS_MAX: usize = 1_000_000;
/// What the children log: their sessions, stored batches and status-file writes.
const CHILD_LOG: &str = "info,yichuang_node::serve=debug,yichuang_node::net::sync=debug";

/// Lines logged by the `serve` children of this test process, counted.
static LOGGED: (Mutex<u64>, Condvar) = (Mutex::new(0), Condvar::new());

fn logged_count() -> u64 {
    *LOGGED.0.lock().unwrap_or_else(|e| e.into_inner())
}

fn note_logged() {
    *LOGGED.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    LOGGED.1.notify_all();
}

/// Waits until `check` returns `Ok`, or fails with the last reason after `timeout`.
/// Between looks it sleeps until a `serve` child logs something.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    for _ in 0..WAKEUPS_MAX {
        let seen = logged_count();
        match check() {
            Ok(v) => return v,
            Err(reason) => last = reason,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let guard = LOGGED.0.lock().unwrap_or_else(|e| e.into_inner());
        drop(
            LOGGED
                .1
                .wait_timeout_while(guard, left, |n| *n == seen)
                .unwrap_or_else(|e| e.into_inner()),
        );
    }
    panic!("{what}: not reached within {timeout:?}: {last}");
}

/// A free loopback UDP port (bound, read, released).
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
    s.local_addr().expect("local address").port()
}

/// A `yichuang serve` child process, killed when dropped.
#[derive(Debug)]
pub struct Serve {
    child: Option<Child>,
    pub dir: PathBuf,
}

impl Serve {
    pub fn start(dir: &Path) -> Serve {
        let mut log = std::fs::File::create(dir.join("serve.log")).expect("serve log");
        let mut child = Command::new(bin())
            // Several nodes share this machine: each web side takes a free port.
            .args([
                "serve",
                "--dir",
                dir.to_str().expect("utf-8 path"),
                "--http",
                "127.0.0.1:0",
            ])
            .env_remove("YICHUANG_DIR")
            .env("YICHUANG_LOG", CHILD_LOG)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting yichuang serve");
        let stderr = child.stderr.take().expect("piped stderr");
        // Copies the log to serve.log and wakes the waiters at every line; ends when
        // the child's stderr closes (it exited).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                note_logged();
            }
            note_logged();
        });
        Serve {
            child: Some(child),
            dir: dir.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGTERM, then wait for the orderly shutdown to finish.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let pid = child.id();
            let waiter = std::thread::spawn(move || {
                let status = child.wait();
                let _ = done_tx.send(());
                (child, status)
            });
            if done_rx.recv_timeout(Duration::from_secs(15)).is_err() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                let _ = waiter.join();
                panic!("yichuang serve did not stop within 15 s of SIGTERM");
            }
            let _ = waiter.join();
        }
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn dir_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn status(dir: &Path) -> serde_json::Value {
    json(&["status", "--dir", dir_str(dir), "--json"])
}

/// Every peer connected, nothing waiting either way.
pub fn settled(dir: &Path, peers_expected: usize) -> Result<(), String> {
    let st = status(dir);
    let peers = st["peers"].as_array().cloned().unwrap_or_default();
    let connected: Vec<_> = peers.iter().filter(|p| p["connected"] == true).collect();
    if connected.len() < peers_expected {
        return Err(format!(
            "{} of {peers_expected} peers connected: {st}",
            connected.len()
        ));
    }
    for p in connected {
        if p["waiting_out"] != 0 || p["waiting_in"] != 0 {
            return Err(format!("waiting with {}: {p}", p["name"]));
        }
    }
    Ok(())
}

/// Case numbers a node holds.
pub fn case_numbers(dir: &Path) -> std::collections::BTreeSet<String> {
    let list = json(&[
        "case",
        "list",
        "--dir",
        dir_str(dir),
        "--limit",
        "1000",
        "--json",
    ]);
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["case_no"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers a case through the CLI; returns its number.
pub fn new_case(dir: &Path, item: &str) -> String {
    let out = json(&[
        "case",
        "new",
        "--dir",
        dir_str(dir),
        "--item",
        item,
        "--applicant-name",
        "测试",
        "--applicant-id",
        "11010519491231002X",
        "--json",
    ]);
    out["case_no"].as_str().expect("case number").to_owned()
}

/// A hub on `port` and centers enrolled through the CLI, under `root`.
pub fn cli_district(root: &Path, port: u16, centers: &[&str]) -> (PathBuf, Vec<PathBuf>) {
    let hub = root.join("hub");
    let listen = format!("127.0.0.1:{port}");
    ok(&[
        "init",
        "--dir",
        dir_str(&hub),
        "--role",
        "hub",
        "--district",
        "440399",
        "--listen",
        &listen,
    ]);
    let mut dirs = Vec::new();
    for c in centers {
        let dir = root.join(format!("center-{c}"));
        let bundle = root.join(format!("center-{c}.bundle"));
        let name = format!("center-{c}");
        ok(&[
            "issue",
            "--dir",
            dir_str(&hub),
            "--node",
            &name,
            "--role",
            "center",
            "--center",
            c,
            "--out",
            dir_str(&bundle),
        ]);
        ok(&["join", "--dir", dir_str(&dir), "--bundle", dir_str(&bundle)]);
        dirs.push(dir);
    }
    (hub, dirs)
}

/// A runtime for tests that run nodes in this process: two workers, like CI's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    // Invariant: building a runtime fails only without OS resources.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Most board changes a waiting test looks at; a bound on the loop besides the deadline.
const BOARD_CHANGES_MAX: usize = 1_000_000;

/// Waits until `check` returns `Ok`, checking again each time one of the in-process
/// nodes' boards changes (a session stored or acknowledged something), or fails with
/// the last reason after `timeout`. No polling: it sleeps until a node reports.
pub async fn wait_for_boards<T>(
    what: &str,
    timeout: Duration,
    boards: &[&std::sync::Arc<yichuang_node::net::board::Board>],
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut forwarders = tokio::task::JoinSet::new();
    for board in boards {
        let mut changes = board.subscribe();
        let tx = tx.clone();
        forwarders.spawn(async move {
            while changes.changed().await.is_ok() {
                // A full channel already holds a wake-up; one is enough.
                if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) = tx.try_send(()) {
                    break;
                }
            }
        });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + timeout;
    for _ in 0..BOARD_CHANGES_MAX {
        if let Ok(v) = check().await {
            return v;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(())) => {}
            Ok(None) | Err(_) => break,
        }
    }
    // One last look at the deadline, so the report says how things stand then.
    let last = match check().await {
        Err(reason) => reason,
        Ok(_) => {
            panic!("{what}: reached only at the deadline ({timeout:?}), with no wake-up on the way")
        }
    };
    panic!("{what}: not reached within {timeout:?}: {last}");
}
