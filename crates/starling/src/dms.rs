//! `starling dm` and `starling dms`: the CLI side of private messages (the protocol work
//! is in `client::dm`): argument checks, and the conversations printed as text or JSON.

use std::collections::BTreeSet;

use anyhow::bail;
use serde_json::json;
use starling_proto::{PublicKey, ToBech32};

use crate::args::ClientOpts;
use crate::client::dm::{self, Message};
use crate::client::{api_address, NodeClient};
use crate::commands::signing_keys;
use crate::datadir::parse_npub;
use crate::output::{short_npub, utc_minute};

/// `starling dm NPUB... TEXT`.
pub async fn dm(opts: &ClientOpts, args: &[String]) -> anyhow::Result<()> {
    let Some((text, npubs)) = args.split_last() else {
        bail!("usage: starling dm NPUB... TEXT");
    };
    if text.trim().is_empty() {
        bail!("the message is empty");
    }
    let recipients = npubs
        .iter()
        .map(|n| parse_npub(n))
        .collect::<anyhow::Result<Vec<PublicKey>>>()?;
    let keys = signing_keys(opts)?;
    let mut client = NodeClient::connect(&api_address(opts)?).await?;
    let id = dm::send(&mut client, &keys, &recipients, text).await?;
    if opts.json {
        println!("{}", json!({ "sent": id, "recipients": npubs }));
    } else {
        println!(
            "sent privately to {} recipient(s) (message {id})",
            recipients.len()
        );
    }
    Ok(())
}

/// `starling dms [NPUB]`: conversations, or one conversation.
pub async fn dms(opts: &ClientOpts, npub: Option<&str>, limit: usize) -> anyhow::Result<()> {
    let keys = signing_keys(opts)?;
    let me = keys.public_key();
    let mut client = NodeClient::connect(&api_address(opts)?).await?;
    let (messages, unreadable) = dm::inbox(&mut client, &keys).await?;
    if unreadable > 0 && !opts.json {
        eprintln!("{unreadable} gift wrap(s) could not be opened (not NIP-17 messages for you)");
    }
    match npub {
        Some(npub) => {
            let other = parse_npub(npub)?;
            let wanted = BTreeSet::from([me, other]);
            let shown: Vec<&Message> = messages
                .iter()
                .filter(|m| m.participants == wanted)
                .collect();
            let skip = shown.len().saturating_sub(limit);
            for m in &shown[skip..] {
                print_message(opts, m, &me);
            }
            if shown.is_empty() && !opts.json {
                println!("no messages with {}", short_npub(&other));
            }
        }
        None => {
            let convs = dm::conversations(&messages);
            for (people, msgs) in convs.iter().rev().take(limit) {
                print_conversation(opts, people, msgs, &me);
            }
            if convs.is_empty() && !opts.json {
                println!("no private messages yet");
            }
        }
    }
    Ok(())
}

fn npub(pk: &PublicKey) -> String {
    pk.to_bech32().unwrap_or_else(|_| pk.to_hex())
}

fn print_message(opts: &ClientOpts, m: &Message, me: &PublicKey) {
    if opts.json {
        let people: Vec<String> = m.participants.iter().map(npub).collect();
        println!(
            "{}",
            json!({"from": npub(&m.sender), "participants": people,
                   "created_at": m.created_at.as_secs(), "text": m.text})
        );
    } else {
        let who = if m.sender == *me {
            "you".to_string()
        } else {
            short_npub(&m.sender)
        };
        println!("[{}] {who}: {}", utc_minute(m.created_at), m.text);
    }
}

fn print_conversation(
    opts: &ClientOpts,
    people: &BTreeSet<PublicKey>,
    msgs: &[&Message],
    me: &PublicKey,
) {
    let others: Vec<&PublicKey> = people.iter().filter(|p| *p != me).collect();
    let last = msgs.last().expect("a conversation has a message");
    if opts.json {
        let others: Vec<String> = others.iter().map(|p| npub(p)).collect();
        println!(
            "{}",
            json!({"with": others, "messages": msgs.len(),
                   "last_at": last.created_at.as_secs(), "last": last.text})
        );
    } else {
        let names: Vec<String> = others.iter().map(|p| short_npub(p)).collect();
        println!(
            "{} — {} message(s), last [{}]: {}",
            names.join(", "),
            msgs.len(),
            utc_minute(last.created_at),
            last.text
        );
    }
}
