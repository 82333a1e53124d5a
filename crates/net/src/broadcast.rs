//! Broadcast mode (opt-in; NostrP2P's behaviour for small communities): every public
//! post of the owner also goes out on the gossipsub topic, and what arrives there is
//! ingested by the request service (see `service`).

use starling_core::EventBus;
use starling_proto::{Kind, PublicKey};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::handle::Network;

/// The kinds broadcast: profiles, follow lists, notes, reposts and reactions.
pub fn is_public_post(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Metadata | Kind::TextNote | Kind::ContactList | Kind::Repost | Kind::Reaction
    )
}

/// Publishes the owner's public posts on the broadcast topic until shutdown.
pub async fn run(net: Network, bus: EventBus, owner: PublicKey, shutdown: CancellationToken) {
    let mut rx = bus.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            item = rx.recv() => match item {
                Ok(live) if live.event.pubkey == owner && is_public_post(live.event.kind) => {
                    if net.broadcast(live.json.clone()).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => warn!(missed = n, "broadcast fell behind"),
                Err(RecvError::Closed) => return,
            },
        }
    }
}
