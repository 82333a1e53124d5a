//! The SQLite schema: an event table with one row per stored event, a tag table that
//! repeats `created_at` so tag queries can run newest-first off its index, and a table of
//! NIP-09 deletion tombstones so a deleted event that arrives again stays deleted.

use rusqlite::Connection;

/// The schema version this code writes, kept in `PRAGMA user_version`.
const VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS event (
    seq        INTEGER PRIMARY KEY,
    id         BLOB    NOT NULL UNIQUE,
    pubkey     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    d_tag      TEXT,
    expires_at INTEGER,
    json       TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS event_created ON event (created_at);
CREATE INDEX IF NOT EXISTS event_pubkey ON event (pubkey, created_at);
CREATE INDEX IF NOT EXISTS event_pubkey_kind ON event (pubkey, kind, created_at);
CREATE INDEX IF NOT EXISTS event_kind ON event (kind, created_at);
CREATE INDEX IF NOT EXISTS event_address ON event (pubkey, kind, d_tag) WHERE d_tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_expires ON event (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS tag (
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    event_seq  INTEGER NOT NULL,
    PRIMARY KEY (name, value, created_at, event_seq)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS deletion (
    target     TEXT    NOT NULL,
    author     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (target, author)
) WITHOUT ROWID;
";

/// Pragmas for every connection: WAL so readers never wait for the writer, NORMAL sync
/// (durable across process crashes; a power cut may lose the last commits).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -4096;
         PRAGMA temp_store = MEMORY;",
    )
}

/// Creates or checks the schema.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the database has schema version {version}, newer than this starling ({VERSION})"
        )));
    }
    conn.execute_batch(SCHEMA)?;
    // Written only when it changes: an unchanged database is opened without a write, so a
    // node whose disk is full still starts and serves reads.
    if version != VERSION {
        conn.execute_batch(&format!("PRAGMA user_version = {VERSION};"))?;
    }
    Ok(())
}
