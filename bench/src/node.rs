//! Child relay processes: starting, finding their WebSocket address,
//! stopping with SIGTERM, and reading their memory from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Time a node gets to print its address / open its port.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a node gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running relay process.
pub struct Node {
    child: Child,
    pub pid: u32,
    pub url: String,
    pub log: PathBuf,
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Mem {
    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
    pub fn hwm_mib(&self) -> f64 {
        self.hwm_kib as f64 / 1024.0
    }
}

/// Run a short command to completion with a time limit; stdout is returned,
/// stderr is included in the error on failure.
pub async fn run_command(cmd: &mut Command, limit: Duration) -> Result<String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| anyhow!("command did not finish within {limit:?}"))?
        .context("spawn command")?;
    let stdout = strip_ansi(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        let stderr = strip_ansi(&String::from_utf8_lossy(&out.stderr));
        bail!(
            "exit status {}: {}{}",
            out.status,
            tail(&stdout, 800),
            tail(&stderr, 1_500)
        );
    }
    Ok(stdout)
}

/// Text without ANSI colour sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Last `n` bytes of a text (on a char boundary).
pub fn tail(s: &str, n: usize) -> String {
    let start = s.len().saturating_sub(n);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    s[start..].to_owned()
}

/// Spawn `cmd` with stderr going to `log`; stdout is piped.
fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
    let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file))
        .kill_on_drop(true);
    cmd.spawn().context("spawn relay process")
}

/// Start a process that prints `relay  ws://...` on stdout (starling).
pub async fn start_printing_url(mut cmd: Command, log: &Path) -> Result<Node> {
    let mut child = spawn(&mut cmd, log)?;
    let pid = child.id().context("child has no pid")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = relay_url(&line) {
                return Ok(url);
            }
        }
        bail!("node exited before printing its relay address")
    })
    .await
    .map_err(|_| anyhow!("no `relay ws://...` line within {START_TIMEOUT:?}"))?
    .with_context(|| format!("log tail: {}", log_tail(log)))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Node {
        child,
        pid,
        url,
        log: log.to_owned(),
    })
}

/// `ws://...` from a line of the form `  relay   ws://host:port`.
pub fn relay_url(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("relay"), Some(url)) if url.starts_with("ws://") => Some(url.to_owned()),
        _ => None,
    }
}

/// Start a process that listens on a known port (nostr-rs-relay).
pub async fn start_on_port(mut cmd: Command, log: &Path, port: u16) -> Result<Node> {
    let mut child = spawn(&mut cmd, log)?;
    let pid = child.id().context("child has no pid")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "relay exited ({status}) during start; log tail: {}",
                log_tail(log)
            );
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            let url = format!("ws://127.0.0.1:{port}/");
            return Ok(Node {
                child,
                pid,
                url,
                log: log.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("relay did not open port {port} within {START_TIMEOUT:?}")
}

/// Last part of a log file, for error messages.
pub fn log_tail(log: &Path) -> String {
    std::fs::read_to_string(log)
        .map(|s| tail(&s, 1_500))
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Node {
    /// VmRSS and VmHWM of the node process.
    pub fn memory(&self) -> Result<Mem> {
        memory(self.pid)
    }

    /// The end of the node's stderr log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// SIGTERM, wait for exit, SIGKILL if it does not exit in time.
    pub async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!(
                    "node {} ignored SIGTERM for {STOP_TIMEOUT:?}; killed; log tail: {}",
                    self.pid,
                    self.log_tail()
                )
            }
        }
    }
}

/// CPU seconds (user + system) process `pid` (this process for `None`) has
/// used so far; /proc counts in USER_HZ ticks, which are 1/100 s on Linux.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, i.e. the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// VmRSS and VmHWM of process `pid`, from /proc/PID/status.
pub fn memory(pid: u32) -> Result<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing"))?;
        let kib = line.split_whitespace().nth(1).context("no value")?;
        Ok(kib.parse()?)
    };
    Ok(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}
