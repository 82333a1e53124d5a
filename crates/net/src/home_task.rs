//! Keeps the owner's home record published: signs a new record whenever the node's
//! advertised addresses change (after a short settling delay) and republishes it
//! periodically, retrying soon when no DHT node took it (e.g. before any peer is known).

use std::time::Duration;

use starling_proto::Keys;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::handle::Network;
use crate::home::HomeRecord;

/// Wait this long after an address change before publishing (changes come in bursts).
const SETTLE: Duration = Duration::from_millis(500);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Publishes `keys`' home record for this node until shutdown.
pub async fn run(net: Network, keys: Keys, refresh: Duration, shutdown: CancellationToken) {
    let mut addrs = net.advertised();
    let mut retry = FIRST_RETRY;
    let mut next = tokio::time::Instant::now() + SETTLE;
    let mut published_once = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = addrs.changed() => {
                if changed.is_err() {
                    return;
                }
                next = tokio::time::Instant::now() + SETTLE;
                retry = FIRST_RETRY;
                continue;
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let current = addrs.borrow().clone();
        if current.is_empty() {
            next = tokio::time::Instant::now() + FIRST_RETRY;
            continue;
        }
        let record = HomeRecord::sign(&keys, net.peer_id(), &current);
        match net.publish_home(record).await {
            Ok(()) => {
                if !published_once {
                    info!(addrs = current.len(), "home record published");
                    published_once = true;
                } else {
                    debug!(addrs = current.len(), "home record republished");
                }
                retry = FIRST_RETRY;
                next = tokio::time::Instant::now() + refresh;
            }
            Err(e) => {
                debug!(error = %e, retry_in = ?retry, "home record not published yet");
                next = tokio::time::Instant::now() + retry;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}
