//! The outbox task's cursor state: how far the owner's events are known to be queued in
//! `outbox.db`. The task moves the stored cursor every few seconds; when `outbox.db`
//! refused to queue an event (a full disk), the cursor stays before it and the task queues
//! it again from the store until that works.

/// The outbox task's view of its cursor (the newest owner event scanned into the outbox).
#[derive(Debug, Default)]
pub(super) struct CursorState {
    /// The newest owner event seen on the bus since the cursor last moved.
    pub seen_max: u64,
    /// The oldest owner event `outbox.db` refused to queue (a full disk, say): it is
    /// queued again from the store on the next tick, and the cursor stays before it so a
    /// restart rescans it too.
    pub unqueued: Option<u64>,
}

impl CursorState {
    pub fn seen(&mut self, created_at: u64, queued: bool) {
        self.seen_max = self.seen_max.max(created_at);
        if !queued {
            self.refused(created_at);
        }
    }

    pub fn refused(&mut self, created_at: u64) {
        self.unqueued = Some(self.unqueued.map_or(created_at, |u| u.min(created_at)));
    }

    /// Where the cursor may move: up to the newest event seen, never past one not queued.
    pub fn upto(&self) -> u64 {
        match self.unqueued {
            Some(u) => self.seen_max.min(u.saturating_sub(1)),
            None => self.seen_max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_never_passes_an_event_that_is_not_queued() {
        let mut c = CursorState::default();
        c.seen(100, true);
        assert_eq!(c.upto(), 100);
        c.seen(120, false);
        c.seen(110, false);
        c.seen(130, true);
        assert_eq!((c.seen_max, c.unqueued), (130, Some(110)));
        assert_eq!(c.upto(), 109);
        c.unqueued = None;
        assert_eq!(c.upto(), 130);
    }
}
