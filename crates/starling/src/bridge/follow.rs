//! `starling bridge --follow`: after the first pass, keeps the node and the relays in step
//! live. It subscribes to the owner's new events on the node (pushed to every relay) and on
//! each relay (published to the node), until Ctrl-C. One reader task per subscription feeds
//! a bounded channel; this loop owns the publishing connections. Ids already forwarded are
//! skipped, so an event that comes back from where it went is not sent again.

use std::collections::HashSet;

use anyhow::Context;
use starling_proto::{Event, EventId, Filter, PublicKey, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::client::NodeClient;

/// Live events waiting to be forwarded.
const QUEUE: usize = 256;

/// Where a live event came from.
#[derive(Clone)]
enum Source {
    Node,
    Relay(String),
}

/// Which ways to copy, and between what.
pub struct Live<'a> {
    pub node_addr: &'a str,
    pub relays: &'a [String],
    pub owner: PublicKey,
    pub push: bool,
    pub pull: bool,
    /// When the bridge started: live subscriptions reach back to it, so nothing made
    /// during the first pass is missed.
    pub started: Timestamp,
}

/// Forwards the owner's new events until Ctrl-C or until a connection fails.
pub async fn run(live: Live<'_>) -> anyhow::Result<()> {
    let filter = Filter::new()
        .author(live.owner)
        .since(live.started)
        .limit(0);
    let (tx, mut rx) = mpsc::channel(QUEUE);
    let mut readers = JoinSet::new();
    if live.push {
        let client = NodeClient::connect(live.node_addr).await?;
        readers.spawn(read(client, filter.clone(), Source::Node, tx.clone()));
    }
    if live.pull {
        for relay in live.relays {
            let client = NodeClient::connect_url(relay).await?;
            readers.spawn(read(
                client,
                filter.clone(),
                Source::Relay(relay.clone()),
                tx.clone(),
            ));
        }
    }
    drop(tx);
    let mut node = NodeClient::connect(live.node_addr).await?;
    let mut relays = Vec::new();
    for relay in live.relays.iter().filter(|_| live.push) {
        relays.push((relay.clone(), NodeClient::connect_url(relay).await?));
    }
    eprintln!("following the owner's new events; Ctrl-C to stop");
    let mut forwarded: HashSet<EventId> = HashSet::new();
    loop {
        let (source, event) = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            next = rx.recv() => match next {
                Some(next) => next,
                None => break,
            },
        };
        if event.pubkey != live.owner || !forwarded.insert(event.id) {
            continue;
        }
        match source {
            Source::Node => {
                for (url, relay) in &mut relays {
                    let (accepted, message) = relay.publish_answer(&event).await?;
                    eprintln!("{} → {url}: {}", event.id, answer(accepted, &message));
                }
            }
            Source::Relay(url) => {
                let (accepted, message) = node.publish_answer(&event).await?;
                eprintln!("{} {url} → node: {}", event.id, answer(accepted, &message));
            }
        }
    }
    // Every reader ended: a connection closed or failed.
    while let Some(result) = readers.join_next().await {
        result.context("a bridge reader failed")??;
    }
    anyhow::bail!("every live subscription ended")
}

fn answer(accepted: bool, message: &str) -> String {
    match (accepted, message) {
        (true, "") => "accepted".to_string(),
        (true, m) => format!("accepted ({m})"),
        (false, m) => format!("refused ({m})"),
    }
}

/// Reads live events of `filter` from `client` into `tx` until the connection ends.
async fn read(
    mut client: NodeClient,
    filter: Filter,
    source: Source,
    tx: mpsc::Sender<(Source, Event)>,
) -> anyhow::Result<()> {
    let sub = client.subscribe(vec![filter]).await?;
    // `next_event` answers `None` once at EOSE, and again when the connection closes.
    let mut past_eose = false;
    loop {
        match client.next_event(&sub, None).await? {
            Some(event) => {
                if tx.send((source.clone(), event)).await.is_err() {
                    return Ok(());
                }
            }
            None if !past_eose => past_eose = true,
            None => return Ok(()),
        }
    }
}
