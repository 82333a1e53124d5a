//! The PostgreSQL schema, the same shape as SQLite's: an event table with one row per
//! stored event, a tag table that repeats `created_at` so tag queries read newest-first off
//! its primary key, a table of NIP-09 deletion tombstones, and the running totals.
//!
//! PostgreSQL's `text` cannot hold a NUL character, which a Nostr string may contain; the
//! text columns that hold values taken from events (`d_tag`, `tag.value`, `deletion.target`)
//! therefore store them through [`escape`], and filters escape their values the same way.

use std::borrow::Cow;

use tokio_postgres::Client;

use crate::StoreError;

/// The schema version this code writes, kept in `starling_meta`.
const VERSION: i64 = 1;

/// Advisory lock key that serializes schema changes and write transactions of every
/// starling process on the same database: one writer at a time, as with SQLite.
pub const WRITE_LOCK: i64 = 0x5354_4152_4c49_4e47; // "STARLING"

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS starling_meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS event (
    seq        bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         bytea   NOT NULL UNIQUE,
    pubkey     bytea   NOT NULL,
    created_at bigint  NOT NULL,
    kind       integer NOT NULL,
    d_tag      text,
    expires_at bigint,
    json       text    NOT NULL
);
CREATE INDEX IF NOT EXISTS event_created ON event (created_at, seq);
CREATE INDEX IF NOT EXISTS event_pubkey ON event (pubkey, created_at);
CREATE INDEX IF NOT EXISTS event_pubkey_kind ON event (pubkey, kind, created_at);
CREATE INDEX IF NOT EXISTS event_kind ON event (kind, created_at);
CREATE INDEX IF NOT EXISTS event_address ON event (pubkey, kind, d_tag) WHERE d_tag IS NOT NULL;
CREATE INDEX IF NOT EXISTS event_expires ON event (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS tag (
    name       text   NOT NULL,
    value      text   NOT NULL,
    created_at bigint NOT NULL,
    event_seq  bigint NOT NULL,
    PRIMARY KEY (name, value, created_at, event_seq)
);

CREATE TABLE IF NOT EXISTS deletion (
    target     text   NOT NULL,
    author     bytea  NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (target, author)
);

CREATE TABLE IF NOT EXISTS stats (
    id     integer PRIMARY KEY CHECK (id = 0),
    events bigint  NOT NULL,
    bytes  bigint  NOT NULL
);
INSERT INTO stats (id, events, bytes) VALUES (0, 0, 0) ON CONFLICT (id) DO NOTHING;
";

/// Creates or checks the schema, under the write lock so that two processes opening the
/// same database at once do not race.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await?;
    // Quiet the "already exists, skipping" notices of every start after the first.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    tx.batch_execute(SCHEMA).await?;
    let version: Option<i64> = tx
        .query_opt(
            "SELECT value FROM starling_meta WHERE key = 'schema_version'",
            &[],
        )
        .await?
        .map(|row| row.get(0));
    if let Some(version) = version.filter(|v| *v > VERSION) {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, newer than this starling ({VERSION})"
        )));
    }
    tx.execute(
        "INSERT INTO starling_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `s` as stored in a text column: backslashes doubled and NUL written as `\0`, so any
/// string fits and distinct strings stay distinct. Most strings are returned as they are.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['\0', '\\']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('\\', "\\\\").replace('\0', "\\0"))
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escaping_keeps_strings_apart_and_drops_nul() {
        let inputs = ["plain", "a\0b", "a\\0b", "a\\\0b", "\\", ""];
        let escaped: Vec<String> = inputs.iter().map(|s| escape(s).into_owned()).collect();
        for (i, e) in escaped.iter().enumerate() {
            assert!(!e.contains('\0'), "{e:?} holds a NUL");
            for other in &escaped[i + 1..] {
                assert_ne!(e, other);
            }
        }
        assert_eq!(escape("plain"), "plain");
    }
}
