//! Applying one validated event inside the writer's transaction: duplicates, NIP-09
//! tombstones, replaceable and addressable versions, the tag index, and the deletions a
//! kind-5 event requests. Only the writer thread calls this.

use rusqlite::{params, Connection, OptionalExtension};
use starling_proto::{Event, KindClass, PublicKey, RenderedEvent};

use crate::SaveOutcome;

/// Longest tag value that is indexed; longer values cannot be matched by `#x` filters.
pub const MAX_INDEXED_TAG_VALUE: usize = 256;

pub(crate) const KIND_DELETION: u16 = 5;

/// What applying one event changed.
#[derive(Debug, Clone, Copy)]
pub struct Applied {
    pub outcome: SaveOutcome,
    /// Change in the number of stored events.
    pub events: i64,
    /// Change in the stored events' bytes.
    pub bytes: i64,
}

impl Applied {
    pub(crate) fn only(outcome: SaveOutcome) -> Self {
        Self {
            outcome,
            events: 0,
            bytes: 0,
        }
    }
}

/// The `(name, value)` pairs of `event` that go into the tag index.
pub fn indexed_tags(event: &Event) -> impl Iterator<Item = (&str, &str)> {
    event.tags.iter().filter_map(|tag| {
        let parts = tag.as_slice();
        let name = parts.first()?;
        let value = parts.get(1)?;
        let single_letter = name.len() == 1 && name.as_bytes()[0].is_ascii_alphabetic();
        (single_letter && value.len() <= MAX_INDEXED_TAG_VALUE)
            .then_some((name.as_str(), value.as_str()))
    })
}

/// The `d` tag of an addressable event ("" when it has none).
pub(crate) fn d_tag(event: &Event) -> Option<String> {
    match KindClass::of(event.kind) {
        KindClass::Addressable => Some(event.tags.identifier().unwrap_or_default()),
        _ => None,
    }
}

/// The NIP-09 `a` coordinate of a replaceable or addressable event.
pub(crate) fn coordinate(event: &Event, d: Option<&str>) -> String {
    format!(
        "{}:{}:{}",
        event.kind.as_u16(),
        event.pubkey.to_hex(),
        d.unwrap_or("")
    )
}

/// Applies `rendered` (an event and the JSON to store for it) to the store.
pub fn apply(tx: &Connection, rendered: &RenderedEvent) -> rusqlite::Result<Applied> {
    let event = rendered.event();
    let class = KindClass::of(event.kind);
    if class == KindClass::Ephemeral {
        return Ok(Applied::only(SaveOutcome::Ephemeral));
    }
    let id = event.id.as_bytes();
    let exists = tx
        .prepare_cached("SELECT 1 FROM event WHERE id = ?1")?
        .exists([id.as_slice()])?;
    if exists {
        return Ok(Applied::only(SaveOutcome::Duplicate));
    }
    let d = d_tag(event);
    if is_tombstoned(tx, event, class, d.as_deref())? {
        return Ok(Applied::only(SaveOutcome::Deleted));
    }
    let mut applied = Applied::only(SaveOutcome::Stored);
    if matches!(class, KindClass::Replaceable | KindClass::Addressable) {
        match replace_older(tx, event, d.as_deref())? {
            Some(removed) => applied = removed,
            None => return Ok(Applied::only(SaveOutcome::Superseded)),
        }
    }
    let json = insert_row(tx, rendered, d.as_deref())?;
    applied.events += 1;
    applied.bytes += json as i64;
    if event.kind.as_u16() == KIND_DELETION {
        let removed = apply_deletion(tx, event)?;
        applied.events += removed.events;
        applied.bytes += removed.bytes;
    }
    Ok(applied)
}

fn is_tombstoned(
    tx: &Connection,
    event: &Event,
    class: KindClass,
    d: Option<&str>,
) -> rusqlite::Result<bool> {
    let author = event.pubkey.as_bytes().as_slice();
    let mut stmt =
        tx.prepare_cached("SELECT created_at FROM deletion WHERE target = ?1 AND author = ?2")?;
    if stmt.exists(params![event.id.to_hex(), author])? {
        return Ok(true);
    }
    if matches!(class, KindClass::Replaceable | KindClass::Addressable) {
        let deleted_at: Option<i64> = stmt
            .query_row(params![coordinate(event, d), author], |r| r.get(0))
            .optional()?;
        return Ok(deleted_at.is_some_and(|t| t >= event.created_at.as_secs() as i64));
    }
    Ok(false)
}

/// Removes older versions of a replaceable or addressable event. `None` when a newer
/// version is stored (NIP-01: the lower id wins a tie of `created_at`).
fn replace_older(
    tx: &Connection,
    event: &Event,
    d: Option<&str>,
) -> rusqlite::Result<Option<Applied>> {
    let pubkey = event.pubkey.as_bytes().as_slice();
    let kind = event.kind.as_u16() as i64;
    let mut stmt = tx.prepare_cached(
        "SELECT seq, created_at, id FROM event
         WHERE pubkey = ?1 AND kind = ?2 AND d_tag IS ?3",
    )?;
    let current: Vec<(i64, i64, Vec<u8>)> = stmt
        .query_map(params![pubkey, kind, d], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let created_at = event.created_at.as_secs() as i64;
    let newer_exists = current.iter().any(|(_, t, id)| {
        *t > created_at || (*t == created_at && id.as_slice() < event.id.as_bytes().as_slice())
    });
    if newer_exists {
        return Ok(None);
    }
    let mut removed = Applied::only(SaveOutcome::Stored);
    for (seq, _, _) in current {
        let (events, bytes) = delete_by_seq(tx, seq)?;
        removed.events -= events;
        removed.bytes -= bytes;
    }
    Ok(Some(removed))
}

/// Inserts the event row and its tag index rows; returns the stored JSON's length.
fn insert_row(
    tx: &Connection,
    rendered: &RenderedEvent,
    d: Option<&str>,
) -> rusqlite::Result<usize> {
    let (event, json) = (rendered.event(), rendered.json());
    let expires_at = event.tags.expiration().map(|t| t.as_secs() as i64);
    let created_at = event.created_at.as_secs() as i64;
    tx.prepare_cached(
        "INSERT INTO event (id, pubkey, created_at, kind, d_tag, expires_at, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event.id.as_bytes().as_slice(),
        event.pubkey.as_bytes().as_slice(),
        created_at,
        event.kind.as_u16() as i64,
        d,
        expires_at,
        json,
    ])?;
    let seq = tx.last_insert_rowid();
    let mut tag_stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO tag (name, value, created_at, event_seq) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (name, value) in indexed_tags(event) {
        tag_stmt.execute(params![name, value, created_at, seq])?;
    }
    Ok(json.len())
}

/// Deletes the event with row `seq` and its tag rows; returns (events, bytes) removed.
pub fn delete_by_seq(tx: &Connection, seq: i64) -> rusqlite::Result<(i64, i64)> {
    let json: Option<String> = tx
        .prepare_cached("DELETE FROM event WHERE seq = ?1 RETURNING json")?
        .query_row([seq], |r| r.get(0))
        .optional()?;
    let Some(json) = json else { return Ok((0, 0)) };
    if let Ok(event) = serde_json::from_str::<Event>(&json) {
        let created_at = event.created_at.as_secs() as i64;
        let mut stmt = tx.prepare_cached(
            "DELETE FROM tag WHERE name = ?1 AND value = ?2 AND created_at = ?3 AND event_seq = ?4",
        )?;
        for (name, value) in indexed_tags(&event) {
            stmt.execute(params![name, value, created_at, seq])?;
        }
    }
    Ok((1, json.len() as i64))
}

/// Carries out a NIP-09 deletion request: removes the author's own events it names by id
/// (`e`) or coordinate (`a`) and records tombstones for them.
fn apply_deletion(tx: &Connection, deletion: &Event) -> rusqlite::Result<Applied> {
    let author = deletion.pubkey;
    let deleted_at = deletion.created_at.as_secs() as i64;
    let mut removed = Applied::only(SaveOutcome::Stored);
    for target in deletion.tags.event_ids() {
        tombstone(tx, &target.to_hex(), &author, deleted_at)?;
        let seq: Option<i64> = tx
            .prepare_cached("SELECT seq FROM event WHERE id = ?1 AND pubkey = ?2 AND kind != ?3")?
            .query_row(
                params![
                    target.as_bytes().as_slice(),
                    author.as_bytes().as_slice(),
                    KIND_DELETION
                ],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(seq) = seq {
            let (events, bytes) = delete_by_seq(tx, seq)?;
            removed.events -= events;
            removed.bytes -= bytes;
        }
    }
    for coord in deletion.tags.coordinates() {
        if coord.public_key != author {
            continue;
        }
        let d = if coord.kind.is_addressable() {
            Some(coord.identifier.as_str())
        } else {
            None
        };
        let target = format!(
            "{}:{}:{}",
            coord.kind.as_u16(),
            author.to_hex(),
            coord.identifier
        );
        tombstone(tx, &target, &author, deleted_at)?;
        let seqs: Vec<i64> = tx
            .prepare_cached(
                "SELECT seq FROM event WHERE pubkey = ?1 AND kind = ?2 AND d_tag IS ?3 AND created_at <= ?4",
            )?
            .query_map(
                params![author.as_bytes().as_slice(), coord.kind.as_u16() as i64, d, deleted_at],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?;
        for seq in seqs {
            let (events, bytes) = delete_by_seq(tx, seq)?;
            removed.events -= events;
            removed.bytes -= bytes;
        }
    }
    Ok(removed)
}

fn tombstone(tx: &Connection, target: &str, author: &PublicKey, at: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO deletion (target, author, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (target, author) DO UPDATE SET created_at = max(created_at, excluded.created_at)",
    )?
    .execute(params![target, author.as_bytes().as_slice(), at])?;
    Ok(())
}
