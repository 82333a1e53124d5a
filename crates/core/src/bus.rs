//! The live event bus: a bounded broadcast channel carrying each newly stored (or
//! ephemeral) event, with the JSON rendered once at validation, to every open
//! subscription.
//!
//! Each event gets a sequence number when it is published. An event is published only
//! after it is committed, so a subscription that notes [`EventBus::last_seq`] before it
//! queries the store has every event up to that number in its query result, and takes
//! only later ones live: nothing is delivered twice, nothing is missed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use starling_proto::{Event, RenderedEvent};
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind before it starts missing some.
const CAPACITY: usize = 4096;

/// A newly accepted event and its JSON text.
#[derive(Debug)]
pub struct LiveEvent {
    /// Position on the bus, from 1.
    pub seq: u64,
    pub event: Event,
    pub json: String,
}

/// Sender side of the bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    seq: Arc<AtomicU64>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hands `event` to every current subscriber.
    pub fn publish(&self, event: RenderedEvent) {
        let (event, json) = event.into_parts();
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        // No receivers is fine: nobody is listening.
        let _ = self.tx.send(Arc::new(LiveEvent { seq, event, json }));
    }

    /// The sequence number of the last event published so far.
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// A new receiver that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }
}
