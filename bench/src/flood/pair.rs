//! Two starling nodes on loopback, A and B, each with its own owner; B's owner follows
//! A's, so A's posts reach B's subscribers over the peer-to-peer network. Both nodes hold
//! every client to the rate limits (`exempt_loopback = false`), since all the benchmark's
//! clients are on loopback; `limits_on = false` turns the buckets off instead.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp, ToBech32};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::node::{self, Node};
use crate::ws;

/// One node and its owner.
pub struct Member {
    pub node: Node,
    pub keys: Keys,
}

/// A and B, B following A.
pub struct Pair {
    pub a: Member,
    pub b: Member,
}

const RATE_OFF: &str = r#"
[rate]
exempt_loopback = false
connection_events = { per_sec = 0, burst = 0 }
connection_reqs = { per_sec = 0, burst = 0 }
ip_events = { per_sec = 0, burst = 0 }
ip_reqs = { per_sec = 0, burst = 0 }
pubkey_events = { per_sec = 0, burst = 0 }
"#;

const RATE_ON: &str = "\n[rate]\nexempt_loopback = false\n";

/// Writes `count` notes of `keys` from the last day to a JSONL file and imports them.
async fn prefill(bin: &Path, data: &Path, keys: &Keys, count: usize) -> Result<()> {
    let now = Timestamp::now().as_secs();
    let mut lines = String::new();
    for i in 0..count {
        let at = Timestamp::from_secs(now - 86_400 + (i as u64 * 86_400) / count.max(1) as u64);
        let note = EventBuilder::new(
            Kind::TextNote,
            format!("earlier note {i}: {}", "words ".repeat(20)),
        )
        .custom_created_at(at)
        .finalize(keys)?;
        lines += &serde_json::to_string(&note)?;
        lines.push('\n');
    }
    let file = data.with_extension("jsonl");
    std::fs::write(&file, lines)?;
    let mut import = Command::new(bin);
    import.arg("import").arg("--data-dir").arg(data).arg(&file);
    node::run_command(&mut import, Duration::from_secs(120))
        .await
        .context("starling import")?;
    Ok(())
}

async fn start(
    bin: &Path,
    dir: &Path,
    name: &str,
    limits_on: bool,
    boot: Option<u16>,
    notes: usize,
) -> Result<(Member, u16)> {
    let keys = Keys::generate();
    let data = dir.join(name);
    let mut init = Command::new(bin);
    init.arg("init")
        .arg("--data-dir")
        .arg(&data)
        .arg("--nsec")
        .arg(keys.secret_key().to_bech32()?);
    node::run_command(&mut init, Duration::from_secs(30))
        .await
        .context("starling init")?;
    let config = data.join("config.toml");
    let mut text = std::fs::read_to_string(&config)?;
    // The template's [rate] section is replaced by ours (TOML forbids a table twice).
    if let Some(at) = text.find("\n[rate]") {
        let end = text[at + 1..]
            .find("\n[")
            .map(|e| at + 1 + e)
            .unwrap_or(text.len());
        text.replace_range(at..end, "");
    }
    text.push_str(if limits_on { RATE_ON } else { RATE_OFF });
    std::fs::write(&config, text)?;
    if notes > 0 {
        prefill(bin, &data, &keys, notes).await?;
    }
    let p2p = node::free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("run")
        .arg("--data-dir")
        .arg(&data)
        .arg("--api")
        .arg("127.0.0.1:0")
        .arg("--listen")
        .arg(format!("/ip4/127.0.0.1/tcp/{p2p}"))
        .env("RUST_LOG", "warn");
    if let Some(port) = boot {
        cmd.arg("--bootstrap").arg(format!("127.0.0.1:{port}"));
    }
    let node = node::start_printing_url(cmd, &dir.join(format!("{name}.log"))).await?;
    Ok((Member { node, keys }, p2p))
}

/// Publishes `event` on `url` and waits for its OK.
pub async fn publish(url: &str, json: String) -> Result<()> {
    let mut conn = ws::connect(url).await?;
    conn.send(Message::Text(format!(r#"["EVENT",{json}]"#).into()))
        .await?;
    loop {
        let text = ws::next_text(&mut conn, Duration::from_secs(10)).await?;
        if let ws::Reply::Ok {
            accepted, message, ..
        } = ws::parse_reply(&text)
        {
            if !accepted {
                bail!("refused: {message}");
            }
            return Ok(());
        }
    }
}

impl Pair {
    /// Starts A and B in `dir`, makes B follow A, and waits until a post of A reaches B.
    /// A holds `notes` earlier notes of its owner (what the flooder's REQs find).
    pub async fn start(bin: &Path, dir: &Path, limits_on: bool, notes: usize) -> Result<Pair> {
        let (a, a_port) = start(bin, dir, "a", limits_on, None, notes).await?;
        let (b, _) = start(bin, dir, "b", limits_on, Some(a_port), 0).await?;
        let follow = EventBuilder::new(Kind::ContactList, "")
            .tag(Tag::public_key(a.keys.public_key()))
            .finalize(&b.keys)?;
        publish(&b.node.url, serde_json::to_string(&follow)?).await?;
        let pair = Pair { a, b };
        pair.wait_connected().await?;
        Ok(pair)
    }

    /// Posts probes on A until one arrives at B (at most 90 s).
    async fn wait_connected(&self) -> Result<()> {
        let mut sub = ws::connect(&self.b.node.url).await?;
        let filter = format!(
            r#"["REQ","probe",{{"kinds":[1],"authors":["{}"],"limit":0}}]"#,
            self.a.keys.public_key().to_hex()
        );
        sub.send(Message::Text(filter.into())).await?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(90) {
            let probe = EventBuilder::new(Kind::TextNote, "probe").finalize(&self.a.keys)?;
            publish(&self.a.node.url, serde_json::to_string(&probe)?).await?;
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                let Ok(Some(Ok(Message::Text(t)))) =
                    tokio::time::timeout(Duration::from_millis(500), sub.next()).await
                else {
                    continue;
                };
                if ws::event_sub(&t) == Some("probe") {
                    return Ok(());
                }
            }
        }
        bail!(
            "no post of A reached B within 90 s; B's log: {}",
            self.b.node.log_tail()
        )
    }

    pub async fn stop(self) -> Result<()> {
        self.a.node.stop().await?;
        self.b.node.stop().await
    }
}
