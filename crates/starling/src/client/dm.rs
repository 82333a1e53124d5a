//! Private messages from the CLI (NIP-17): `starling dm` seals a kind-14 message for each
//! participant and wraps it (NIP-59, one gift wrap per recipient plus one for the sender,
//! each signed by a one-time key); `starling dms` opens the gift wraps addressed to the
//! owner and groups them into conversations. The node only ever sees gift wraps; the CLI
//! authenticates to it as the owner (NIP-42), which gift wraps need.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use starling_proto::nip59::{GiftWrapBuilder, UnwrappedGift};
use starling_proto::{
    Event, EventBuilder, Filter, FinalizeEvent, FinalizeUnsignedEvent, Keys, Kind, PublicKey, Tag,
    Timestamp,
};

use super::NodeClient;

/// Gift wraps read at most by `dms`.
const MAX_WRAPS: usize = 5_000;
/// People in one conversation at most (NIP-17 suggests small groups).
pub const MAX_PARTICIPANTS: usize = 50;

/// One opened message.
#[derive(Debug, Clone)]
pub struct Message {
    pub sender: PublicKey,
    /// Everyone in the conversation (sender and recipients), the owner included.
    pub participants: BTreeSet<PublicKey>,
    pub created_at: Timestamp,
    pub text: String,
}

impl NodeClient {
    /// Authenticates the connection as `keys` (NIP-42): asks for gift wraps to get the
    /// node's challenge, then answers it.
    pub async fn authenticate(&mut self, keys: &Keys) -> anyhow::Result<()> {
        self.send(json!(["REQ", "auth", {"kinds": [1059], "limit": 0}]))
            .await?;
        let mut challenge = None;
        let mut ended = false;
        while challenge.is_none() || !ended {
            let msg = self
                .recv(Some(super::TIMEOUT))
                .await?
                .context("the node closed the connection during authentication")?;
            match msg.first().and_then(Value::as_str) {
                Some("AUTH") => challenge = msg.get(1).and_then(Value::as_str).map(String::from),
                Some("CLOSED" | "EOSE") if msg.get(1).and_then(Value::as_str) == Some("auth") => {
                    ended = true;
                    if challenge.is_none() {
                        return Ok(()); // already authenticated on this connection
                    }
                }
                _ => {}
            }
        }
        let challenge = challenge.expect("loop ends with a challenge");
        let auth = EventBuilder::new(Kind::Authentication, "")
            .tags([
                Tag::parse(["relay", &self.url])?,
                Tag::parse(["challenge", &challenge])?,
            ])
            .finalize(keys)
            .context("signing the AUTH event")?;
        self.send(json!(["AUTH", auth])).await?;
        let id = auth.id.to_hex();
        while let Some(msg) = self.recv(Some(super::TIMEOUT)).await? {
            if msg.first().and_then(Value::as_str) == Some("OK")
                && msg.get(1).and_then(Value::as_str) == Some(id.as_str())
            {
                if msg.get(2).and_then(Value::as_bool) == Some(true) {
                    return Ok(());
                }
                bail!(
                    "the node refused the authentication: {}",
                    msg.get(3).and_then(Value::as_str).unwrap_or("")
                );
            }
        }
        bail!("the node closed the connection during authentication")
    }
}

/// Sends `text` to `recipients` (one-to-one, or a group): one gift wrap per recipient and
/// one for the sender's own history. Returns the message's (rumor's) id.
pub async fn send(
    client: &mut NodeClient,
    keys: &Keys,
    recipients: &[PublicKey],
    text: &str,
) -> anyhow::Result<String> {
    let me = keys.public_key();
    let others: BTreeSet<PublicKey> = recipients.iter().copied().filter(|p| *p != me).collect();
    if others.is_empty() {
        bail!("name at least one recipient other than yourself");
    }
    if others.len() + 1 > MAX_PARTICIPANTS {
        bail!("a conversation has at most {MAX_PARTICIPANTS} participants");
    }
    let rumor = EventBuilder::new(Kind::PrivateDirectMessage, text)
        .tags(others.iter().map(|p| Tag::public_key(*p)))
        .finalize_unsigned(me);
    let rumor_id = rumor.id.map(|id| id.to_hex()).unwrap_or_default();
    client.authenticate(keys).await?;
    for to in others.iter().copied().chain([me]) {
        let wrap: Event = GiftWrapBuilder::new(to, rumor.clone())
            .finalize(keys)
            .context("sealing and wrapping the message")?;
        client.publish(&wrap).await?;
    }
    Ok(rumor_id)
}

/// Opens every gift wrap addressed to the owner that the node holds, oldest first.
/// Wraps that do not open (not NIP-17, or corrupt) are counted, not fatal.
pub async fn inbox(client: &mut NodeClient, keys: &Keys) -> anyhow::Result<(Vec<Message>, usize)> {
    client.authenticate(keys).await?;
    let filter = Filter::new()
        .kind(Kind::GiftWrap)
        .pubkey(keys.public_key())
        .limit(MAX_WRAPS);
    let wraps = client.query(vec![filter]).await?;
    let mut messages = Vec::new();
    let mut unreadable = 0;
    for wrap in &wraps {
        match open(keys, wrap) {
            Some(m) => messages.push(m),
            None => unreadable += 1,
        }
    }
    messages.sort_by_key(|m| m.created_at);
    // The same message reaches us once per device copy at most; keep one.
    messages
        .dedup_by(|a, b| a.sender == b.sender && a.created_at == b.created_at && a.text == b.text);
    Ok((messages, unreadable))
}

fn open(keys: &Keys, wrap: &Event) -> Option<Message> {
    let gift = UnwrappedGift::from_gift_wrap(keys, wrap).ok()?;
    if gift.rumor.kind != Kind::PrivateDirectMessage || gift.rumor.pubkey != gift.sender {
        return None;
    }
    let mut participants: BTreeSet<PublicKey> = gift
        .rumor
        .tags
        .iter()
        .filter_map(|t| {
            let s = t.as_slice();
            (s.len() >= 2 && s[0] == "p")
                .then(|| PublicKey::from_hex(&s[1]).ok())
                .flatten()
        })
        .take(MAX_PARTICIPANTS)
        .collect();
    participants.insert(gift.sender);
    participants.insert(keys.public_key());
    Some(Message {
        sender: gift.sender,
        participants,
        created_at: gift.rumor.created_at,
        text: gift.rumor.content,
    })
}

/// Messages grouped by conversation (its set of participants), each oldest first.
pub fn conversations(messages: &[Message]) -> BTreeMap<BTreeSet<PublicKey>, Vec<&Message>> {
    let mut by: BTreeMap<BTreeSet<PublicKey>, Vec<&Message>> = BTreeMap::new();
    for m in messages {
        by.entry(m.participants.clone()).or_default().push(m);
    }
    by
}
