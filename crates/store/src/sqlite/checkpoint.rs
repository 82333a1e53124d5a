//! WAL checkpoints off the writer's thread.
//!
//! A checkpoint copies the WAL's pages into the database file and syncs both files; on a
//! virtual disk those syncs take tens of milliseconds. SQLite's automatic checkpoint runs
//! them inside the commit that crosses its threshold, so the writer, the one thread every
//! write waits for, sat in `fsync` for a good part of a burst of ingest. Here the writer's
//! commits only report the WAL's size (through SQLite's WAL hook, which also turns the
//! automatic checkpoint off). Once [`CHECKPOINT_PAGES`] pages are waiting, a thread of its
//! own (`store-checkpoint`) runs a passive checkpoint on a connection of its own while the
//! writer goes on committing.
//!
//! A passive checkpoint never waits for the writer, but the WAL starts over from its
//! beginning only when every frame has been copied at the moment a write begins, which a
//! writer that never pauses does not allow. So past [`WAL_BOUND`] pages the writer's
//! commit checkpoints itself (after the thread's checkpoint in progress, as SQLite runs
//! one at a time), copying what the thread has not, and its next commit starts the WAL
//! over; `journal_size_limit` then gives the file's space back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;
use tracing::{debug, warn};

use super::schema;

/// WAL pages (frames) not yet copied after which the checkpoint thread is woken. A page
/// written many times between checkpoints is copied once, so a larger step copies less
/// per event during ingest; 16 MiB of 4 KiB pages.
pub const CHECKPOINT_PAGES: i32 = 4 * 1024;
/// WAL pages after which the writer checkpoints itself: 64 MiB of 4 KiB pages.
pub const WAL_BOUND: i32 = 16 * 1024;
/// What the WAL file is cut back to when it starts over, in bytes.
pub const WAL_KEEP_BYTES: i64 = CHECKPOINT_PAGES as i64 * 4096;

/// The checkpoint thread, as the writer holds it.
pub struct WalWatch {
    thread: JoinHandle<()>,
}

impl WalWatch {
    /// Starts the checkpoint thread on a connection of its own to `path` and registers the
    /// WAL hook on `conn`, the writer's connection.
    pub fn start(conn: &mut Connection, path: &Path) -> std::io::Result<Self> {
        conn.execute_batch(&format!("PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"))
            .map_err(std::io::Error::other)?;
        let (wake, wake_rx) = sync_channel(1);
        let copied = Arc::new(AtomicI32::new(0));
        let turn = Arc::new(Mutex::new(()));
        let checkpointer = Checkpointer {
            path: path.to_path_buf(),
            wake: wake_rx,
            copied: copied.clone(),
            turn: turn.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || checkpointer.run())?;
        let hooked = conn.wal_hook(Some(move |wal: &mut Wal, frames: i32| {
            if frames >= WAL_BOUND {
                // SQLite refuses a second checkpoint while one runs, so wait for the
                // thread's turn to end; the thread starts none while this one runs.
                let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
                match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
                    Ok((_, copied_now)) => copied.store(copied_now.max(0), Ordering::Relaxed),
                    Err(e) => warn!(error = %e, "WAL checkpoint failed"),
                }
                return Ok(());
            }
            // Pages not copied yet; after the WAL started over, all of them.
            let done = copied.load(Ordering::Relaxed);
            let fresh = if frames >= done {
                frames - done
            } else {
                frames
            };
            if fresh >= CHECKPOINT_PAGES {
                // A full channel means a wake-up is pending already.
                let _ = wake.try_send(());
            }
            Ok(())
        }));
        // On failure the hook, and with it the wake-up sender, is dropped: the thread ends.
        hooked.map_err(std::io::Error::other)?;
        Ok(Self { thread })
    }

    /// Unregisters the hook from `conn` (which ends the thread) and waits for the thread.
    pub fn stop(self, conn: &mut Connection) {
        let _ = conn.wal_hook(None::<fn(&mut Wal, i32) -> rusqlite::Result<()>>);
        let _ = self.thread.join();
    }
}

/// The checkpoint thread.
struct Checkpointer {
    path: PathBuf,
    wake: Receiver<()>,
    /// WAL pages the last checkpoint copied.
    copied: Arc<AtomicI32>,
    /// Held by whichever of the thread and the writer checkpoints.
    turn: Arc<Mutex<()>>,
}

impl Checkpointer {
    /// Runs a passive checkpoint at each wake-up; returns when the writer is gone.
    fn run(self) {
        let conn = match Connection::open(&self.path).and_then(|c| {
            schema::configure(&c)?;
            Ok(c)
        }) {
            Ok(conn) => conn,
            Err(e) => {
                return warn!(error = %e, "cannot open a connection for WAL checkpoints; the writer checkpoints alone")
            }
        };
        while self.wake.recv().is_ok() {
            let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
            match conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
                Ok((wal, copied)) => {
                    self.copied.store(copied.max(0), Ordering::Relaxed);
                    debug!(wal, copied, "WAL checkpoint");
                }
                Err(e) => warn!(error = %e, "WAL checkpoint failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use starling_proto::{Keys, RenderedEvent};

    use super::*;
    use crate::test_suite::{event, rendered};
    use crate::{EventStore, SqliteStore, StoreOptions};

    /// `n` events of about `size` bytes each.
    fn big_events(keys: &Keys, n: usize, size: usize) -> Vec<Arc<RenderedEvent>> {
        let filler = "x".repeat(size);
        let events: Vec<_> = (0..n)
            .map(|i| event(keys, 1, &format!("{i} {filler}"), 1_000 + i as u64, vec![]))
            .collect();
        rendered(&events)
    }

    fn len(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    fn wal_of(db: &Path) -> PathBuf {
        db.with_extension("db-wal")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_thread_copies_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        // About eight pages each: half as many pages again as wake the thread.
        let events = big_events(&Keys::generate(), 800, 30_000);
        let mut wal_largest = 0;
        for chunk in events.chunks(16) {
            store.save_many(chunk.to_vec()).await.unwrap();
            wal_largest = wal_largest.max(len(&wal_of(&path)));
        }
        // SQLite's own checkpoint would have started the WAL over at about 1,000 pages.
        let frame = 4096 + 24;
        assert!(
            wal_largest >= 2_000 * frame,
            "the WAL never grew past SQLite's own checkpoint: {wal_largest} bytes"
        );
        // Only a checkpoint makes the database file grow, and the writer's own comes only
        // past the bound, far above these pages: this is the thread's work.
        let deadline = Instant::now() + Duration::from_secs(30);
        while len(&path) < 8 << 20 {
            assert!(
                Instant::now() < deadline,
                "no checkpoint: database {} bytes, WAL {} bytes",
                len(&path),
                len(&wal_of(&path))
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.stats().await.unwrap().events, 800);
        store.shutdown().await;
        assert_eq!(len(&wal_of(&path)), 0, "shutdown empties the WAL");
        let reopened = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(reopened.stats().await.unwrap().events, 800);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_while_writes_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = Arc::new(SqliteStore::open(&path, StoreOptions::default()).unwrap());
        // About eleven pages each, some 25,000 pages in all: well past the bound.
        let events = big_events(&Keys::generate(), 2_400, 40_000);
        let mut writers = Vec::new();
        for part in events.chunks(600) {
            let (store, part) = (store.clone(), part.to_vec());
            writers.push(tokio::spawn(async move {
                for chunk in part.chunks(8) {
                    store.save_many(chunk.to_vec()).await.unwrap();
                }
            }));
        }
        let mut largest = 0;
        while writers.iter().any(|w| !w.is_finished()) {
            largest = largest.max(len(&wal_of(&path)));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for w in writers {
            w.await.unwrap();
        }
        largest = largest.max(len(&wal_of(&path)));
        // Commits here are at most 32 events (4 tasks of 8), under 400 pages; a frame is a
        // page and a 24-byte header.
        let bound = (WAL_BOUND as u64 + 2_000) * (4096 + 24);
        assert!(
            largest <= bound,
            "WAL reached {largest} bytes, bound {bound}"
        );
        assert_eq!(store.stats().await.unwrap().events, 2_400);
        store.shutdown().await;
    }
}
