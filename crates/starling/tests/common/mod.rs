//! Helpers for the multi-node tests: real `starling` processes on loopback (API and p2p on
//! port 0, read back from the banner), the CLI run against them, and a minimal NIP-01
//! WebSocket client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// One node process.
pub struct TestNode {
    pub name: String,
    pub dir: PathBuf,
    pub api: String,
    /// Full multiaddr with /p2p/PEER.
    pub p2p: String,
    pub npub: String,
    pub hex: String,
    bootstrap: Option<String>,
    public: bool,
    child: Option<Child>,
    log: PathBuf,
}

impl TestNode {
    /// `init` and `run` a node in `root/name`.
    pub fn start(root: &Path, name: &str, bootstrap: Option<&str>, public: bool) -> TestNode {
        let dir = root.join(name);
        let out = Command::new(BIN)
            .args(["init", "--data-dir"])
            .arg(&dir)
            .output()
            .expect("starling init");
        assert!(out.status.success(), "init failed: {out:?}");
        let npub = std::fs::read_to_string(dir.join("owner.npub"))
            .ok()
            .or_else(|| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .find(|w| w.starts_with("npub1"))
                    .map(String::from)
            })
            .expect("owner npub")
            .trim()
            .to_string();
        let mut node = TestNode {
            name: name.into(),
            log: root.join(format!("{name}.log")),
            dir,
            api: String::new(),
            p2p: String::new(),
            hex: String::new(),
            npub,
            bootstrap: bootstrap.map(String::from),
            public,
            child: None,
        };
        node.run();
        let status = node.status();
        node.hex = status["owner_hex"].as_str().unwrap().to_string();
        node.npub = status["owner_npub"].as_str().unwrap().to_string();
        node
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "run",
            "--api",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .arg("--data-dir")
        .arg(&self.dir)
        .env("RUST_LOG", "info,starling_net=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(log)
        .stdin(Stdio::null());
        if let Some(b) = &self.bootstrap {
            cmd.args(["--bootstrap", b]);
        }
        if self.public {
            cmd.arg("--public");
        }
        let mut child = cmd.spawn().expect("spawn starling run");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut api, mut p2p) = (None, None);
        for line in lines.by_ref() {
            let line = line.expect("banner");
            if let Some(rest) = line.trim().strip_prefix("relay") {
                api = Some(rest.trim().trim_start_matches("ws://").to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("p2p") {
                p2p = rest.split_whitespace().next().map(String::from);
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        // Keep draining stdout so the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.api =
            api.unwrap_or_else(|| panic!("{}: no relay line\n{}", self.name, self.log_tail()));
        self.p2p = p2p.unwrap_or_else(|| panic!("{}: no p2p line", self.name));
        self.child = Some(child);
    }

    /// SIGTERM and wait (clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// Runs a CLI command against this node; returns stdout, panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .args(["--api", &self.api, "--data-dir"])
            .arg(&self.dir)
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "{}: `starling {}` failed: {}\n{}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Like [`cli`](Self::cli) with `--json`, parsed.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.cli(&all);
        serde_json::from_str(text.lines().last().unwrap_or("null")).expect("JSON from the CLI")
    }

    pub fn status(&self) -> Value {
        self.cli_json(&["status"])
    }

    /// Whether `whereis` from this node finds `npub`.
    pub fn finds(&self, npub: &str) -> bool {
        Command::new(BIN)
            .args(["whereis", npub, "--api", &self.api])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 200 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A NIP-01 client on one node's relay.
pub struct RelayClient {
    ws: Ws,
}

impl RelayClient {
    pub async fn connect(api: &str) -> RelayClient {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{api}"))
            .await
            .expect("connect to the relay");
        RelayClient { ws }
    }

    /// Sends a REQ and collects stored events until EOSE.
    pub async fn req(&mut self, sub: &str, filter: Value) -> Vec<Value> {
        let msg = json!(["REQ", sub, filter]).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        let mut events = Vec::new();
        loop {
            let m = self
                .next(Duration::from_secs(20))
                .await
                .expect("EOSE in time");
            match m[0].as_str() {
                Some("EVENT") if m[1] == sub => events.push(m[2].clone()),
                Some("EOSE") if m[1] == sub => return events,
                Some("CLOSED") => panic!("subscription closed: {m}"),
                _ => {}
            }
        }
    }

    /// Publishes `event` and returns the relay's OK message for it.
    pub async fn publish(&mut self, event: &Value) -> Value {
        let msg = json!(["EVENT", event]).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        loop {
            let m = self
                .next(Duration::from_secs(20))
                .await
                .expect("OK in time");
            if m[0] == "OK" && m[1] == event["id"] {
                return m;
            }
        }
    }

    /// Repeats the REQ every 200 ms until it returns at least `n` events or `limit`
    /// passes; returns the last answer.
    pub async fn req_until(
        &mut self,
        sub: &str,
        filter: Value,
        n: usize,
        limit: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.req(sub, filter.clone()).await;
            if events.len() >= n || Instant::now() >= deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The next EVENT on `sub` within `limit`.
    pub async fn next_event(&mut self, sub: &str, limit: Duration) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let m = self.next(left).await?;
            if m[0] == "EVENT" && m[1] == sub {
                return Some(m[2].clone());
            }
        }
    }

    async fn next(&mut self, limit: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(limit, self.ws.next())
                .await
                .ok()??
                .ok()?;
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).ok();
            }
        }
    }
}
