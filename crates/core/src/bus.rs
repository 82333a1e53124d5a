//! The live event bus: a bounded broadcast channel carrying each newly stored (or
//! ephemeral) event, with its JSON rendered once, to every open subscription.

use std::sync::Arc;

use starling_proto::Event;
use tokio::sync::broadcast;

/// Events a slow subscriber may fall behind before it starts missing some.
const CAPACITY: usize = 4096;

/// A newly accepted event and its JSON text.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: Event,
    pub json: String,
}

/// Sender side of the bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<LiveEvent>>,
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
        }
    }

    /// Hands `event` to every current subscriber.
    pub fn publish(&self, event: Event) {
        let json = serde_json::to_string(&event).expect("an event always serializes");
        // No receivers is fine: nobody is listening.
        let _ = self.tx.send(Arc::new(LiveEvent { event, json }));
    }

    /// A new receiver that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }
}
