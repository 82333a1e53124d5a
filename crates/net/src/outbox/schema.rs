//! The tables of `outbox.db` and the migration of older files.
//!
//! The outbox table is kept in the order of its events' `created_at` (its key starts
//! with it), so queuing the owner's new events appends at the end of the table instead of
//! inserting all over it: a burst of a hundred thousand events (an import, a benchmark)
//! costs a few pages per commit, not a page per row. Delivery is scheduled per target
//! (`outbox_targets`: when its next round may start, how many failed in a row), so a
//! target that is down holds back its whole backlog without a write to any of its rows. Rows hold no JSON for events the
//! event store has (see `load`). Files made before this layout (key `(event_id, target)`,
//! JSON in every row) are converted when opened.

use rusqlite::Connection;

pub const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS subscribers (
    peer     TEXT PRIMARY KEY,
    authors  TEXT NOT NULL,      -- JSON array of hex public keys
    addrs    TEXT NOT NULL,      -- JSON array of multiaddrs
    expires  INTEGER NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    author   TEXT PRIMARY KEY,   -- hex public key this node keeps events of as a home-set member
    since    INTEGER NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS follow_hints (
    author   TEXT PRIMARY KEY,   -- hex public key of a followed author
    hint     TEXT NOT NULL,      -- JSON: the node that served the subscription, the home set
    updated  INTEGER NOT NULL    -- unix seconds
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox_targets (
    target     TEXT PRIMARY KEY, -- a target with pending rows
    next_at    INTEGER NOT NULL, -- when its next delivery round may start (unix seconds)
    attempts   INTEGER NOT NULL DEFAULT 0,  -- failed rounds in a row
    last_error TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_targets_due ON outbox_targets (next_at);
CREATE TABLE IF NOT EXISTS outbox_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created_at INTEGER NOT NULL
);
";

/// The outbox table, under the name `name`.
fn outbox_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
    at        INTEGER NOT NULL,  -- the event's created_at: the table's order
    event_id  TEXT NOT NULL,
    target    TEXT NOT NULL,
    json      TEXT NOT NULL DEFAULT '',  -- empty when the event store holds the event
    created   INTEGER NOT NULL,  -- when queued (unix seconds)
    state     INTEGER NOT NULL,  -- 0 pending, 1 delivered, 2 given up
    attempts  INTEGER NOT NULL DEFAULT 0,
    next_at   INTEGER NOT NULL,
    last_error TEXT,
    acks      TEXT NOT NULL DEFAULT '',  -- home-set members that took it, space-separated
    PRIMARY KEY (at, event_id, target)
) WITHOUT ROWID;"
    )
}

/// Creates the tables, converting an outbox table of an older layout.
pub fn create(conn: &Connection) -> rusqlite::Result<()> {
    let had_targets: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'outbox_targets')",
        [],
        |r| r.get(0),
    )?;
    conn.execute_batch(SCHEMA)?;
    let tx = conn.unchecked_transaction()?;
    let columns = |table: &str| -> rusqlite::Result<Vec<String>> {
        let mut stmt = tx.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = stmt.query_map([table], |r| r.get(0))?.collect();
        names
    };
    let old = columns("outbox")?;
    if !old.is_empty() && !old.iter().any(|c| c == "at") {
        let acks = if old.iter().any(|c| c == "acks") {
            "acks"
        } else {
            "''"
        };
        tx.execute_batch(&format!(
            "{table}
             INSERT OR IGNORE INTO outbox_new
                 (at, event_id, target, json, created, state, attempts, next_at, last_error, acks)
             SELECT COALESCE(json_extract(json, '$.created_at'), created), event_id, target,
                    json, created, state, attempts, next_at, last_error, {acks}
             FROM outbox;
             DROP TABLE outbox;
             ALTER TABLE outbox_new RENAME TO outbox;",
            table = outbox_table("outbox_new"),
        ))?;
    }
    tx.execute_batch(&outbox_table("outbox"))?;
    tx.execute_batch(
        "DROP INDEX IF EXISTS outbox_due;
         CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (target, state, next_at);",
    )?;
    if !had_targets {
        // Files from before the targets table: each target with pending rows gets one.
        tx.execute(
            "INSERT OR IGNORE INTO outbox_targets (target, next_at)
             SELECT target, MIN(next_at) FROM outbox WHERE state = 0 GROUP BY target",
            [],
        )?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_outbox_is_converted_with_its_rows() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE outbox (
                event_id TEXT NOT NULL, target TEXT NOT NULL, json TEXT NOT NULL,
                created INTEGER NOT NULL, state INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, last_error TEXT,
                PRIMARY KEY (event_id, target)) WITHOUT ROWID;
             CREATE INDEX outbox_due ON outbox (state, next_at);
             INSERT INTO outbox VALUES ('e1', 'home:x', '{\"id\":\"e1\",\"created_at\":77}', 100, 0, 2, 150, 'down');",
        )
        .unwrap();
        create(&conn).unwrap();
        create(&conn).unwrap();
        let row: (i64, String, String, i64, i64, String) = conn
            .query_row(
                "SELECT at, event_id, target, attempts, next_at, acks FROM outbox",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            row,
            (77, "e1".into(), "home:x".into(), 2, 150, String::new())
        );
        let target: (String, i64) = conn
            .query_row("SELECT target, next_at FROM outbox_targets", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(target, ("home:x".into(), 150));
    }
}
