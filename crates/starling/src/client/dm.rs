//! Private messages from the CLI (NIP-17; the sealing and opening is `starling_proto::dm`):
//! `starling dm` publishes the gift wraps of a message, `starling dms` reads and opens
//! those addressed to the owner. The node only ever sees gift wraps; the CLI
//! authenticates to it as the owner (NIP-42), which gift wraps need.

use anyhow::{bail, Context};
use serde_json::{json, Value};
pub use starling_proto::dm::{conversations, Message};
use starling_proto::{dm, EventBuilder, Filter, FinalizeEvent, Keys, Kind, PublicKey, Tag};

use super::NodeClient;

/// Gift wraps read at most by `dms`.
const MAX_WRAPS: usize = 5_000;

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
    let (id, wraps) = dm::wraps_for(keys, recipients, text)?;
    client.authenticate(keys).await?;
    for wrap in &wraps {
        client.publish(wrap).await?;
    }
    Ok(id)
}

/// Opens every gift wrap addressed to the owner that the node holds, oldest first, and
/// counts those that did not open (not NIP-17 messages for the owner).
pub async fn inbox(client: &mut NodeClient, keys: &Keys) -> anyhow::Result<(Vec<Message>, usize)> {
    client.authenticate(keys).await?;
    let filter = Filter::new()
        .kind(Kind::GiftWrap)
        .pubkey(keys.public_key())
        .limit(MAX_WRAPS);
    let wraps = client.query(vec![filter]).await?;
    Ok(dm::open_all(keys, &wraps))
}
