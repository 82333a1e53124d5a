//! JSONL cache of generated event sets, keyed by name, count and seed, so
//! reruns do not re-sign a million events. Also the light per-event summary
//! (`Meta`) the query mix is built from.

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// What the query builder needs to know about one stored event.
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: String,
    pub pubkey: String,
    pub kind: u16,
    /// Values of `e` tags.
    pub e: Vec<String>,
    /// Values of `p` tags.
    pub p: Vec<String>,
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    pubkey: String,
    kind: u16,
    tags: Vec<Vec<String>>,
}

impl Meta {
    /// Summarise one NIP-01 event JSON.
    pub fn parse(json: &str) -> Result<Self> {
        let raw: RawEvent = serde_json::from_str(json).context("event JSON")?;
        let mut meta = Meta {
            id: raw.id,
            pubkey: raw.pubkey,
            kind: raw.kind,
            e: Vec::new(),
            p: Vec::new(),
        };
        for tag in raw.tags {
            match (tag.first().map(String::as_str), tag.get(1)) {
                (Some("e"), Some(v)) => meta.e.push(v.clone()),
                (Some("p"), Some(v)) => meta.p.push(v.clone()),
                _ => {}
            }
        }
        Ok(meta)
    }
}

/// Path of the cache file for this event set.
pub fn path(dir: &Path, name: &str, count: usize, seed: u64) -> PathBuf {
    dir.join(format!("{name}-{count}-seed{seed}.jsonl"))
}

/// Load the event set from the cache, or generate it with `make` and cache it.
pub fn load_or_generate<F>(
    dir: &Path,
    name: &str,
    count: usize,
    seed: u64,
    make: F,
) -> Result<(Vec<String>, PathBuf)>
where
    F: FnOnce() -> Result<Vec<String>>,
{
    let file = path(dir, name, count, seed);
    if file.exists() {
        let started = Instant::now();
        match read_lines(&file, count) {
            Ok(lines) => {
                eprintln!(
                    "  loaded {} cached events from {} in {:.1} s",
                    lines.len(),
                    file.display(),
                    started.elapsed().as_secs_f64()
                );
                return Ok((lines, file));
            }
            Err(e) => eprintln!("  cache {} unusable ({e:#}); regenerating", file.display()),
        }
    }
    let lines = make()?;
    write_lines(&file, &lines)?;
    Ok((lines, file))
}

fn read_lines(file: &Path, expected: usize) -> Result<Vec<String>> {
    let reader = BufReader::new(fs::File::open(file)?);
    let mut lines = Vec::with_capacity(expected);
    for line in reader.lines().take(expected + 1) {
        let line = line?;
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    if lines.len() != expected {
        bail!("expected {expected} events, found {}", lines.len());
    }
    Ok(lines)
}

fn write_lines(file: &Path, lines: &[String]) -> Result<()> {
    let dir = file.parent().context("cache file has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = file.with_extension("jsonl.tmp");
    {
        let mut w = BufWriter::new(fs::File::create(&tmp)?);
        for line in lines {
            w.write_all(line.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
    }
    fs::rename(&tmp, file)?;
    Ok(())
}

/// Summaries of all events, in order.
pub fn summarise(lines: &[String]) -> Result<Vec<Meta>> {
    lines.iter().map(|l| Meta::parse(l)).collect()
}
