//! Helpers for the web tests: a node's HTTP server as a real process, a small JSON
//! client, and clerks' accounts.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use tokio_util::sync::CancellationToken;
use yichuang_node::http::{self, AppState};
use yichuang_node::store::Store;

use crate::bin;

/// How long a server gets to print its address; a debug build starts in well under 1 s.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Every HTTP call of a test finishes within this, or the test fails.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Events a followed stream may hold before its reader waits for the test to take them.
const EVENTS_QUEUE_MAX: usize = 16;

/// The password every test clerk gets.
pub const PASSWORD: &str = "counter-pass-1";

/// Adds a clerk account to a node (password on standard input, as an operator would).
pub fn add_user(dir: &str, name: &str, role: &str, password: &str) {
    let mut child = Command::new(bin())
        .args(["user", "add", "--dir", dir, "--name", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning yichuang user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("writing the password");
    let out = child.wait_with_output().expect("yichuang user add");
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `yichuang` process serving HTTP; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts `yichuang http --dir DIR --http 127.0.0.1:0` and waits for its address.
    pub fn http(dir: &str) -> Server {
        Server::start(&["http", "--dir", dir, "--http", "127.0.0.1:0"])
    }

    /// Starts `yichuang ARGS…` and waits for the line naming its HTTP address.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning yichuang");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("http://") {
                    let _ = tx.send(line[at..].trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(START_DEADLINE) {
            Ok(base) => Server { child, base },
            Err(_) => {
                let _ = child.kill();
                panic!("yichuang {args:?} printed no http address within {START_DEADLINE:?}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client(&self) -> Api {
        Api {
            base: self.base.clone(),
            token: None,
            agent: agent(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node's HTTP side served inside the test process, on its own runtime thread, so a
/// test can reach into its state (a fake clock for the login throttle). Stops on drop.
#[derive(Debug)]
pub struct InProcess {
    pub base: String,
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// Serves the node in `dir` on a free loopback port; `adjust` may change the state first.
    pub fn start(dir: &str, adjust: impl FnOnce(&mut AppState) + Send + 'static) -> InProcess {
        let store = Store::open(std::path::Path::new(dir)).expect("opening the node's store");
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel();
        let stop = cancel.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut state = AppState::start(store, stop.clone())
                    .await
                    .expect("starting the HTTP state");
                adjust(&mut state);
                let listener = http::bind("127.0.0.1:0".parse().expect("address"))
                    .await
                    .expect("binding");
                let addr = listener.local_addr().expect("local address");
                let _ = tx.send(format!("http://{addr}"));
                http::serve_on(listener, state, stop)
                    .await
                    .expect("serving");
            });
        });
        let base = rx
            .recv_timeout(START_DEADLINE)
            .expect("the in-process server did not start");
        InProcess {
            base,
            cancel,
            thread: Some(thread),
        }
    }

    pub fn client(&self) -> Api {
        Api {
            base: self.base.clone(),
            token: None,
            agent: agent(),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(CALL_DEADLINE))
        .max_redirects(0)
        .build()
        .into()
}

/// An answer: status, headers we look at, body text and (when JSON) the parsed body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub content_type: String,
    pub set_cookie: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<String>,
}

impl Reply {
    /// The `field` of a JSON error, or "" when none.
    pub fn field(&self) -> &str {
        self.json["error"]["field"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// Asserts the status and that the body is the JSON error shape when >= 400.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        if status >= 400 {
            assert!(
                self.json["error"]["message"].is_string(),
                "error body is not {{\"error\": {{\"message\": …}}}}: {}",
                self.text
            );
            assert!(
                self.content_type.starts_with("application/json"),
                "error content type {:?}",
                self.content_type
            );
        }
        self
    }
}

/// A JSON API client with an optional bearer token.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub token: Option<String>,
    agent: ureq::Agent,
}

fn reply(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut resp = resp.expect("http call");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let set_cookie = header("set-cookie");
    let location = header("location");
    let retry_after = header("retry-after");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        text,
        json,
        content_type,
        set_cookie,
        location,
        retry_after,
    }
}

impl Api {
    pub fn with_token(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    fn auth<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        reply(
            self.auth(self.agent.get(format!("{}{path}", self.base)))
                .call(),
        )
    }

    /// Sends raw bytes with a content type (for malformed and oversized bodies).
    pub fn send_raw(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Reply {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.agent.post(url),
            "PATCH" => self.agent.patch(url),
            "PUT" => self.agent.put(url),
            other => panic!("method {other} not supported by send_raw"),
        };
        reply(
            self.auth(req)
                .header("Content-Type", content_type)
                .send(body),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.send_raw(
            "POST",
            path,
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send_raw(
            "PATCH",
            path,
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn delete(&self, path: &str) -> Reply {
        reply(
            self.auth(self.agent.delete(format!("{}{path}", self.base)))
                .call(),
        )
    }

    /// Signs in and returns a client carrying the session's bearer token.
    pub fn login(&self, name: &str, password: &str) -> Api {
        let r = self.post(
            "/api/login",
            &serde_json::json!({"name": name, "password": password}),
        );
        r.expect(200);
        let token = r.json["token"].as_str().expect("token").to_owned();
        self.with_token(&token)
    }

    /// Reads a server-sent-event stream until the first event named `name`; returns its data.
    pub fn first_event(&self, path: &str, name: &str) -> Value {
        self.follow_events(path, name, CALL_DEADLINE)
            .blocking_recv()
            .unwrap_or_else(|| panic!("{path} ended (or refused) before a {name} event"))
    }

    /// Follows a server-sent-event stream on a thread of its own: the data of every
    /// event named `name` arrives on the returned channel, as JSON, until `deadline`
    /// ends the call or the receiver is dropped. A test awaits it instead of polling.
    pub fn follow_events(
        &self,
        path: &str,
        name: &str,
        deadline: Duration,
    ) -> tokio::sync::mpsc::Receiver<Value> {
        let (tx, rx) = tokio::sync::mpsc::channel(EVENTS_QUEUE_MAX);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(deadline))
            .build()
            .into();
        let req = self.auth(agent.get(format!("{}{path}", self.base)));
        let name = name.to_owned();
        std::thread::spawn(move || {
            let Ok(resp) = req.call() else { return };
            if resp.status().as_u16() != 200 {
                return;
            }
            let reader = BufReader::new(resp.into_body().into_reader());
            let mut current = String::new();
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if let Some(ev) = line.strip_prefix("event:") {
                    current = ev.trim().to_owned();
                } else if let Some(data) = line.strip_prefix("data:")
                    && current == name
                {
                    let value = serde_json::from_str(data.trim()).expect("event data is JSON");
                    if tx.blocking_send(value).is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }
}
