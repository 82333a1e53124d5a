//! `starling import` then `starling export` on one data directory: the exported lines are
//! exactly the imported events' JSON, and export's filters select what they say.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind, Tag, Timestamp, ToBech32};

const BIN: &str = env!("CARGO_BIN_EXE_starling");

fn starling(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("starling runs");
    assert!(
        out.status.success(),
        "starling {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Notes and reactions by two authors, with awkward content, as canonical JSON lines.
fn sample(alice: &Keys, bob: &Keys) -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..60u64 {
        let keys = if i % 2 == 0 { alice } else { bob };
        let content = format!("note {i} \"quoted\" \u{e9}\u{1F426} \\ </script>\n");
        let builder = if i % 3 == 0 {
            EventBuilder::new(Kind::Reaction, "+").tag(Tag::hashtag("t"))
        } else {
            EventBuilder::new(Kind::TextNote, content)
        };
        let event = builder
            .custom_created_at(Timestamp::from(1_700_000_000 + i / 4))
            .finalize(keys)
            .expect("signs");
        lines.push(serde_json::to_string(&event).expect("serializes"));
    }
    lines
}

fn lines(text: &[u8]) -> BTreeSet<String> {
    String::from_utf8(text.to_vec())
        .expect("utf-8")
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn import_then_export_gives_back_the_same_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    starling(&dir, &["init"]);
    let before = starling(&dir, &["export"]);
    assert!(before.stdout.is_empty(), "a new node exports nothing");
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let events = sample(&alice, &bob);
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, events.join("\n") + "\n").unwrap();
    let imported = starling(&dir, &["import", input.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&imported.stdout).contains("60 stored"));

    let to_stdout = starling(&dir, &["export"]);
    let expected: BTreeSet<String> = events.iter().cloned().collect();
    assert_eq!(lines(&to_stdout.stdout), expected);

    let file = tmp.path().join("out.jsonl");
    starling(&dir, &["export", "--out", file.to_str().unwrap()]);
    let written = std::fs::read(&file).unwrap();
    assert_eq!(lines(&written), expected);
    let created: Vec<u64> = String::from_utf8(written)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["created_at"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
}

#[test]
fn export_filters_by_author_kind_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    starling(&dir, &["init"]);
    let (alice, bob) = (Keys::generate(), Keys::generate());
    let events = sample(&alice, &bob);
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, events.join("\n")).unwrap();
    starling(&dir, &["import", input.to_str().unwrap()]);

    let npub = alice.public_key().to_bech32().unwrap();
    let out = starling(
        &dir,
        &[
            "export",
            "--author",
            &npub,
            "--kinds",
            "1",
            "--since",
            "1700000004",
            "--until",
            "1700000010",
        ],
    );
    let expected: BTreeSet<String> = events
        .iter()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let t = v["created_at"].as_u64().unwrap();
            v["pubkey"] == alice.public_key().to_hex()
                && v["kind"] == 1
                && (1_700_000_004..=1_700_000_010).contains(&t)
        })
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(lines(&out.stdout), expected);
}
