//! The two relays under test and how each is started empty or with the big
//! store: starling (`init`, `import`, `run`) and nostr-rs-relay (temp
//! config.toml, pre-filled over its WebSocket).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nostr::prelude::{Keys, ToBech32};
use tokio::process::Command;

use crate::ingest::{self, IngestResult};
use crate::node::{self, Node};

/// Time allowed for `starling init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);

/// How the big store got into a relay, and how long it took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prefill {
    pub method: String,
    pub secs: f64,
    pub events_per_sec: f64,
    pub accepted: Option<usize>,
    pub note: String,
}

pub enum Target {
    Starling { bin: PathBuf, nsec: String },
    Nrr { bin: PathBuf },
}

impl Target {
    pub fn starling(bin: PathBuf, owner: &Keys) -> Result<Self> {
        let nsec = owner.secret_key().to_bech32()?;
        Ok(Target::Starling { bin, nsec })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Target::Starling { .. } => "starling",
            Target::Nrr { .. } => "nostr-rs-relay",
        }
    }

    /// Start with an empty data directory under `tmp`.
    pub async fn start_fresh(&self, tmp: &Path) -> Result<Node> {
        match self {
            Target::Starling { bin, nsec } => {
                starling_init(bin, &tmp.join("data"), nsec).await?;
                starling_run(bin, tmp).await
            }
            Target::Nrr { bin } => nrr_run(bin, tmp).await,
        }
    }

    /// Start with the store pre-filled from `file` / `lines` (same events).
    pub async fn start_with_store(
        &self,
        tmp: &Path,
        file: &Path,
        lines: &[String],
        conns: usize,
        limit: Duration,
    ) -> Result<(Node, Prefill)> {
        match self {
            Target::Starling { bin, nsec } => {
                let data = tmp.join("data");
                starling_init(bin, &data, nsec).await?;
                let prefill = starling_import(bin, &data, file, lines.len(), limit).await?;
                Ok((starling_run(bin, tmp).await?, prefill))
            }
            Target::Nrr { bin } => {
                let node = nrr_run(bin, tmp).await?;
                let r = ingest::run(&node.url, lines, conns, 500, limit, Some(node.pid)).await?;
                let prefill = ws_prefill(&r, conns);
                Ok((node, prefill))
            }
        }
    }
}

fn ws_prefill(r: &IngestResult, conns: usize) -> Prefill {
    let note = if r.accepted == r.sent {
        String::new()
    } else {
        format!(
            "{} rejected, {} unanswered; {}",
            r.rejected,
            r.missing,
            r.errors.join("; ")
        )
    };
    Prefill {
        method: format!("WebSocket publish, {conns} connections"),
        secs: r.secs,
        events_per_sec: r.events_per_sec,
        accepted: Some(r.accepted),
        note,
    }
}

async fn starling_init(bin: &Path, data: &Path, nsec: &str) -> Result<()> {
    let mut cmd = Command::new(bin);
    cmd.arg("init")
        .arg("--data-dir")
        .arg(data)
        .arg("--nsec")
        .arg(nsec)
        .env("RUST_LOG", "warn");
    node::run_command(&mut cmd, INIT_TIMEOUT)
        .await
        .context("`starling init`")?;
    Ok(())
}

async fn starling_import(
    bin: &Path,
    data: &Path,
    file: &Path,
    count: usize,
    limit: Duration,
) -> Result<Prefill> {
    let mut cmd = Command::new(bin);
    cmd.arg("import")
        .arg("--data-dir")
        .arg(data)
        .arg(file)
        .env("RUST_LOG", "warn");
    let started = Instant::now();
    let out = node::run_command(&mut cmd, limit)
        .await
        .context("`starling import`")?;
    let secs = started.elapsed().as_secs_f64();
    Ok(Prefill {
        method: "`starling import` (node stopped)".into(),
        secs,
        events_per_sec: count as f64 / secs.max(1e-9),
        accepted: None,
        note: node::tail(out.trim(), 300).replace('\n', " / "),
    })
}

async fn starling_run(bin: &Path, tmp: &Path) -> Result<Node> {
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--data-dir")
        .arg(tmp.join("data"))
        .arg("--api")
        .arg("127.0.0.1:0")
        .arg("--listen")
        .arg("/ip4/127.0.0.1/tcp/0");
    cmd.env("RUST_LOG", "warn");
    node::start_printing_url(cmd, &tmp.join("starling.log"))
        .await
        .context("`starling run`")
}

/// nostr-rs-relay's binary: `--nrr-bin`, else PATH, else ~/.cargo/bin.
pub fn find_nrr(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_owned());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"));
    on_path
        .chain(home)
        .map(|d| d.join("nostr-rs-relay"))
        .find(|p| p.is_file())
}

/// Config with every rate/size limit lifted; bound to 127.0.0.1 only.
fn nrr_config(port: u16, data: &Path) -> String {
    format!(
        r#"[info]
relay_url = "ws://127.0.0.1:{port}/"
name = "starling-bench"

[database]
data_directory = "{data}"

[network]
address = "127.0.0.1"
port = {port}

[limits]
messages_per_sec = 0
subscriptions_per_min = 0
max_event_bytes = 1048576
max_ws_message_bytes = 4194304
max_ws_frame_bytes = 4194304
"#,
        data = data.display()
    )
}

async fn nrr_run(bin: &Path, tmp: &Path) -> Result<Node> {
    let data = tmp.join("nrr-data");
    std::fs::create_dir_all(&data)?;
    let port = node::free_port()?;
    let config = tmp.join("config.toml");
    std::fs::write(&config, nrr_config(port, &data))?;
    if !data.is_dir() {
        bail!("could not create {}", data.display());
    }
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(&data)
        .current_dir(tmp);
    cmd.env("RUST_LOG", "warn");
    node::start_on_port(cmd, &tmp.join("nrr.log"), port)
        .await
        .context("start nostr-rs-relay")
}
