//! `starling bridge`: copies the owner's events between the running node and standard
//! Nostr relays, over NIP-01 on both sides. `--push` sends the owner's events the node
//! stores to each relay (EVENT, waiting for each OK); `--pull` asks each relay for the
//! owner's events (REQ authors=[owner]) and publishes them to the node's own relay
//! WebSocket, where they go through the node's ingest like any client's. Both directions
//! by default; one pass, then exit, or with `--follow` keep copying new events live
//! ([`follow`]). Counts go to stderr as it works, a summary to stdout.

mod follow;

use std::collections::HashSet;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use starling_proto::{Event, EventId, Filter, PublicKey, Timestamp};

use crate::args::{BridgeArgs, ClientOpts};
use crate::client::{api_address, NodeClient};
use crate::datadir::DataDir;

/// Events asked for per query; relays cap `limit` at their own maximum, which may be less.
const PAGE: usize = 500;

/// What became of the events sent to one relay (or to the node).
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    accepted: u64,
    duplicate: u64,
    rejected: u64,
}

impl Tally {
    /// Counts one `OK` answer: NIP-01's `duplicate:` prefix marks events already held,
    /// whether the relay said true or false.
    fn count(&mut self, accepted: bool, message: &str) {
        if message.starts_with("duplicate:") {
            self.duplicate += 1;
        } else if accepted {
            self.accepted += 1;
        } else {
            self.rejected += 1;
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} accepted, {} duplicate, {} rejected",
            self.accepted, self.duplicate, self.rejected
        )
    }
}

pub async fn run(args: BridgeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.relay.is_empty(), "name at least one --relay");
    let started = Timestamp::now();
    let opts = ClientOpts {
        dir: args.dir.clone(),
        api: args.api.clone(),
        nsec: None,
        json: false,
    };
    let owner = DataDir::resolve(args.dir.data_dir.clone())?
        .owner()?
        .public_key();
    let node_addr = api_address(&opts)?;
    let mut base = Filter::new().author(owner);
    if let Some(since) = args.since {
        base = base.since(Timestamp::from(since));
    }
    let (push, pull) = (args.push || !args.pull, args.pull || !args.push);
    if push {
        let mut node = NodeClient::connect(&node_addr).await?;
        let events = fetch_all(&mut node, &base).await?;
        eprintln!("node: {} events of the owner to push", events.len());
        for relay in &args.relay {
            let tally = send_all(relay, &events).await?;
            println!("push {relay}: {tally}");
        }
    }
    if pull {
        let events = pull_relays(&args.relay, &base, owner).await?;
        eprintln!("relays: {} events of the owner to pull", events.len());
        let mut node = NodeClient::connect(&node_addr).await?;
        let tally = publish_all(&mut node, "node", &events).await?;
        println!("pull into the node: {} fetched, {tally}", events.len());
    }
    if args.follow {
        return follow::run(follow::Live {
            node_addr: &node_addr,
            relays: &args.relay,
            owner,
            push,
            pull,
            started,
        })
        .await;
    }
    Ok(())
}

/// Every event matching `base` the relay holds, newest first, a page at a time: each page
/// ends where the last one stopped (`until` its oldest, ids already seen skipped), until a
/// page brings nothing new.
async fn fetch_all(client: &mut NodeClient, base: &Filter) -> anyhow::Result<Vec<Event>> {
    let mut seen: HashSet<EventId> = HashSet::new();
    let mut events = Vec::new();
    let mut until: Option<Timestamp> = None;
    loop {
        let mut filter = base.clone().limit(PAGE);
        if let Some(until) = until {
            filter = filter.until(until);
        }
        let page = client.query(vec![filter]).await?;
        let fresh: Vec<Event> = page.into_iter().filter(|e| seen.insert(e.id)).collect();
        let Some(oldest) = fresh.iter().map(|e| e.created_at).min() else {
            return Ok(events);
        };
        until = Some(oldest);
        events.extend(fresh);
    }
}

/// The owner's events from every relay, each once (relays may send others' events: those
/// are dropped, the node would refuse them anyway).
async fn pull_relays(
    relays: &[String],
    base: &Filter,
    owner: PublicKey,
) -> anyhow::Result<Vec<Event>> {
    let mut seen = HashSet::new();
    let mut events = Vec::new();
    for relay in relays {
        let mut client = NodeClient::connect_url(relay).await?;
        let found = fetch_all(&mut client, base)
            .await
            .with_context(|| format!("reading from {relay}"))?;
        eprintln!("{relay}: {} events of the owner", found.len());
        events.extend(
            found
                .into_iter()
                .filter(|e| e.pubkey == owner && seen.insert(e.id)),
        );
    }
    // Oldest first, so replaceable events arrive in the order they were made.
    events.sort_by_key(|e| e.created_at);
    Ok(events)
}

/// Sends `events` to the relay at `url`, oldest first.
async fn send_all(url: &str, events: &[Event]) -> anyhow::Result<Tally> {
    let mut client = NodeClient::connect_url(url).await?;
    let mut oldest_first = events.to_vec();
    oldest_first.sort_by_key(|e| e.created_at);
    publish_all(&mut client, url, &oldest_first).await
}

/// Publishes `events` one by one, waiting for each `OK`, with counts on stderr.
async fn publish_all(
    client: &mut NodeClient,
    name: &str,
    events: &[Event],
) -> anyhow::Result<Tally> {
    let bar = ProgressBar::new(events.len() as u64).with_style(ProgressStyle::with_template(
        "{prefix} {bar:30} {pos}/{len} {msg}",
    )?);
    bar.set_prefix(name.to_string());
    let mut tally = Tally::default();
    for event in events {
        let (accepted, message) = client
            .publish_answer(event)
            .await
            .with_context(|| format!("sending event {} to {name}", event.id))?;
        if !accepted && !message.starts_with("duplicate:") {
            bar.println(format!("{name} refused {}: {message}", event.id));
        }
        tally.count(accepted, &message);
        bar.inc(1);
        bar.set_message(tally.to_string());
    }
    bar.finish_and_clear();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn ok_answers_are_counted_by_their_nip01_prefix() {
        let mut tally = Tally::default();
        tally.count(true, "");
        tally.count(true, "duplicate: already have this event");
        tally.count(false, "duplicate: already have it");
        tally.count(false, "blocked: not on the allow list");
        tally.count(false, "");
        assert_eq!(tally.to_string(), "1 accepted, 2 duplicate, 2 rejected");
    }
}
