//! Helpers shared by the integration tests: the `yichuang` binary, temporary
//! folders, and running commands with JSON output.

pub mod net;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod web;

/// The `yichuang` binary of this build, built on first use. Tests run as separate
/// processes under nextest, so each one asks cargo once; when the binary is
/// current that is a no-op.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Invariant: a test executable lives in target/<profile>/deps/.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "yichuang-node",
            "--bin",
            "yichuang",
        ]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("running cargo build for the yichuang binary");
        assert!(status.success(), "building the yichuang binary failed");
        let path = profile_dir.join("yichuang");
        assert!(path.exists(), "{} missing after build", path.display());
        path
    })
}

/// A folder removed when dropped, unless the test failed (then kept for a look).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "yichuang-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("creating a temporary folder");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `yichuang` with arguments; returns the raw output.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("YICHUANG_DIR")
        .output()
        .expect("running yichuang")
}

/// Runs `yichuang` and expects success; returns standard output.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "yichuang {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `yichuang` and expects failure; returns standard error.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "yichuang {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 output")
}

/// Runs `yichuang … --json` and parses the output.
pub fn json(args: &[&str]) -> serde_json::Value {
    let text = ok(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("yichuang {args:?} printed no JSON ({e}): {text}"))
}

/// Initialises a node in `dir` and returns `dir` as a string.
pub fn init_node(dir: &Path, role: &str, center: Option<&str>) -> String {
    let d = dir.to_str().expect("utf-8 path").to_owned();
    let mut args = vec!["init", "--dir", &d, "--role", role, "--district", "440399"];
    if let Some(c) = center {
        args.extend(["--center", c]);
    }
    if role == "laptop" {
        args.extend(["--staff", "S01"]);
    }
    ok(&args);
    d
}

/// The first catalog item's code, read from the node's own catalog.
pub fn first_item(dir: &str) -> String {
    let items = json(&["catalog", "list", "--dir", dir, "--json"]);
    items[0]["code"]
        .as_str()
        .expect("catalog item code")
        .to_owned()
}

/// Runs `yichuang` with extra environment variables, such as a fixed clock
/// (`YICHUANG_NOW`) or a skewed one (`YICHUANG_CLOCK_OFFSET_MS`).
pub fn run_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("YICHUANG_DIR");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("running yichuang")
}

/// [`ok`] with extra environment variables.
pub fn ok_with(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run_with(env, args);
    assert!(
        out.status.success(),
        "yichuang {args:?} ({env:?}) failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// [`json`] with extra environment variables.
pub fn json_with(env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let text = ok_with(env, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("yichuang {args:?} printed no JSON ({e}): {text}"))
}

/// [`fails`] with extra environment variables; returns standard error.
pub fn fails_with(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run_with(env, args);
    assert!(
        !out.status.success(),
        "yichuang {args:?} ({env:?}) should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 output")
}

/// Carries every change of one document from node `from` to node `to`, as sync would,
/// received at `now_ms` by `to`'s clock. Returns how many changes were new to `to`.
pub fn carry(from: &str, to: &str, doc_id: &str, now_ms: i64) -> usize {
    let id: yichuang_shared::ids::DocId = doc_id.parse().expect("a document id");
    let source = yichuang_node::store::Store::open(Path::new(from)).expect("opening the source");
    let changes: Vec<automerge::Change> = source
        .raw_changes(&id)
        .expect("reading changes")
        .into_iter()
        .map(|(_, bytes)| automerge::Change::from_bytes(bytes).expect("a stored change"))
        .collect();
    drop(source);
    let mut target = yichuang_node::store::Store::open(Path::new(to)).expect("opening the target");
    target
        .apply_remote_at(&id, changes, Some("test"), now_ms)
        .expect("applying changes")
        .stored
}
