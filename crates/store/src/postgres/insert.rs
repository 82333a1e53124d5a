//! Applying one validated event inside the writer's transaction, with the rules of the
//! SQLite backend (`sqlite::insert`): duplicates, NIP-09 tombstones, replaceable and
//! addressable versions, the tag index, and the deletions a kind-5 event requests. Every
//! statement is prepared once per connection ([`Statements`]); a plain event costs two
//! round trips (a check, then the event row and its tag rows in one statement).

use starling_proto::{Event, KindClass, PublicKey, RenderedEvent};
use tokio_postgres::{Client, Error, Statement, Transaction};

use super::schema::escape;
use crate::sqlite::insert::{coordinate, d_tag, indexed_tags, Applied, KIND_DELETION};
use crate::SaveOutcome;

/// The writer's statements, prepared on its connection.
pub struct Statements {
    /// (is it stored, is its id tombstoned, when was its coordinate deleted).
    check: Statement,
    /// The stored versions of a replaceable event (`d_tag IS NULL`).
    versions: Statement,
    /// The stored versions of an addressable event (by `d_tag`).
    versions_addressed: Statement,
    /// The event row and its tag rows.
    insert: Statement,
    own_event: Statement,
    address_up_to: Statement,
    tombstone: Statement,
    delete_events: Statement,
    delete_tags: Statement,
}

impl Statements {
    pub async fn prepare(client: &Client) -> Result<Self, Error> {
        Ok(Self {
            check: client
                .prepare(
                    "SELECT EXISTS (SELECT 1 FROM event WHERE id = $1),
                            EXISTS (SELECT 1 FROM deletion WHERE target = $2 AND author = $3),
                            (SELECT created_at FROM deletion WHERE target = $4 AND author = $3)",
                )
                .await?,
            versions: client
                .prepare(
                    "SELECT seq, created_at, id FROM event
                     WHERE pubkey = $1 AND kind = $2 AND d_tag IS NULL",
                )
                .await?,
            versions_addressed: client
                .prepare(
                    "SELECT seq, created_at, id FROM event
                     WHERE pubkey = $1 AND kind = $2 AND d_tag = $3",
                )
                .await?,
            insert: client
                .prepare(
                    "WITH row AS (
                         INSERT INTO event (id, pubkey, created_at, kind, d_tag, expires_at, json)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq)
                     INSERT INTO tag (name, value, created_at, event_seq)
                     SELECT t.name, t.value, $3, row.seq
                     FROM row CROSS JOIN unnest($8::text[], $9::text[]) AS t (name, value)
                     ON CONFLICT DO NOTHING",
                )
                .await?,
            own_event: client
                .prepare("SELECT seq FROM event WHERE id = $1 AND pubkey = $2 AND kind <> $3")
                .await?,
            address_up_to: client
                .prepare(
                    "SELECT seq FROM event WHERE pubkey = $1 AND kind = $2
                     AND d_tag IS NOT DISTINCT FROM $3 AND created_at <= $4",
                )
                .await?,
            tombstone: client
                .prepare(
                    "INSERT INTO deletion (target, author, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (target, author)
                     DO UPDATE SET created_at = greatest(deletion.created_at, excluded.created_at)",
                )
                .await?,
            delete_events: client
                .prepare("DELETE FROM event WHERE seq = ANY($1) RETURNING seq, created_at, json")
                .await?,
            delete_tags: client
                .prepare(
                    "DELETE FROM tag USING unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
                         AS gone (name, value, created_at, event_seq)
                     WHERE tag.name = gone.name AND tag.value = gone.value
                       AND tag.created_at = gone.created_at AND tag.event_seq = gone.event_seq",
                )
                .await?,
        })
    }
}

/// The indexed tags of `event` as two parallel arrays (names, escaped values).
fn tag_arrays(event: &Event) -> (Vec<&str>, Vec<String>) {
    indexed_tags(event)
        .map(|(name, value)| (name, escape(value).into_owned()))
        .unzip()
}

/// Applies `rendered` (an event and the JSON to store for it) to the store.
pub async fn apply(
    tx: &Transaction<'_>,
    st: &Statements,
    rendered: &RenderedEvent,
) -> Result<Applied, Error> {
    let event = rendered.event();
    let class = KindClass::of(event.kind);
    if class == KindClass::Ephemeral {
        return Ok(Applied::only(SaveOutcome::Ephemeral));
    }
    let versioned = matches!(class, KindClass::Replaceable | KindClass::Addressable);
    let d = d_tag(event);
    let coord = versioned.then(|| escape(&coordinate(event, d.as_deref())).into_owned());
    let author = event.pubkey.as_bytes().as_slice();
    let row = tx
        .query_one(
            &st.check,
            &[
                &event.id.as_bytes().as_slice(),
                &event.id.to_hex(),
                &author,
                &coord,
            ],
        )
        .await?;
    let (stored, id_deleted, address_deleted_at): (bool, bool, Option<i64>) =
        (row.get(0), row.get(1), row.get(2));
    if stored {
        return Ok(Applied::only(SaveOutcome::Duplicate));
    }
    let created_at = event.created_at.as_secs() as i64;
    if id_deleted || address_deleted_at.is_some_and(|t| t >= created_at) {
        return Ok(Applied::only(SaveOutcome::Deleted));
    }
    let mut applied = Applied::only(SaveOutcome::Stored);
    if versioned {
        match replace_older(tx, st, event, d.as_deref()).await? {
            Some(removed) => applied = removed,
            None => return Ok(Applied::only(SaveOutcome::Superseded)),
        }
    }
    let json = rendered.json();
    let (names, values) = tag_arrays(event);
    let expires_at = event.tags.expiration().map(|t| t.as_secs() as i64);
    let d_stored = d.as_deref().map(escape);
    tx.execute(
        &st.insert,
        &[
            &event.id.as_bytes().as_slice(),
            &author,
            &created_at,
            &(event.kind.as_u16() as i32),
            &d_stored.as_deref(),
            &expires_at,
            &json,
            &names,
            &values,
        ],
    )
    .await?;
    applied.events += 1;
    applied.bytes += json.len() as i64;
    if event.kind.as_u16() == KIND_DELETION {
        let removed = apply_deletion(tx, st, event).await?;
        applied.events += removed.events;
        applied.bytes += removed.bytes;
    }
    Ok(applied)
}

/// Removes older versions of a replaceable or addressable event. `None` when a newer
/// version is stored (NIP-01: the lower id wins a tie of `created_at`).
async fn replace_older(
    tx: &Transaction<'_>,
    st: &Statements,
    event: &Event,
    d: Option<&str>,
) -> Result<Option<Applied>, Error> {
    let pubkey = event.pubkey.as_bytes().as_slice();
    let kind = event.kind.as_u16() as i32;
    let rows = match d {
        Some(d) => {
            let d = escape(d);
            tx.query(&st.versions_addressed, &[&pubkey, &kind, &d.as_ref()])
                .await?
        }
        None => tx.query(&st.versions, &[&pubkey, &kind]).await?,
    };
    let created_at = event.created_at.as_secs() as i64;
    let mut older = Vec::with_capacity(rows.len());
    for row in rows {
        let (seq, t, id): (i64, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        if t > created_at || (t == created_at && id.as_slice() < event.id.as_bytes().as_slice()) {
            return Ok(None);
        }
        older.push(seq);
    }
    let (events, bytes) = delete_events(tx, st, &older).await?;
    let mut removed = Applied::only(SaveOutcome::Stored);
    removed.events -= events;
    removed.bytes -= bytes;
    Ok(Some(removed))
}

/// Deletes the events with rows `seqs` and their tag rows; returns (events, bytes) removed.
pub async fn delete_events(
    tx: &Transaction<'_>,
    st: &Statements,
    seqs: &[i64],
) -> Result<(i64, i64), Error> {
    if seqs.is_empty() {
        return Ok((0, 0));
    }
    let rows = tx.query(&st.delete_events, &[&seqs]).await?;
    let (mut names, mut values, mut times, mut rows_of) = (vec![], vec![], vec![], vec![]);
    let mut bytes = 0i64;
    for row in &rows {
        let (seq, created_at, json): (i64, i64, &str) = (row.get(0), row.get(1), row.get(2));
        bytes += json.len() as i64;
        let Ok(event) = serde_json::from_str::<Event>(json) else {
            continue;
        };
        for (name, value) in indexed_tags(&event) {
            names.push(name.to_string());
            values.push(escape(value).into_owned());
            times.push(created_at);
            rows_of.push(seq);
        }
    }
    if !names.is_empty() {
        tx.execute(&st.delete_tags, &[&names, &values, &times, &rows_of])
            .await?;
    }
    Ok((rows.len() as i64, bytes))
}

/// Carries out a NIP-09 deletion request: removes the author's own events it names by id
/// (`e`) or coordinate (`a`) and records tombstones for them.
async fn apply_deletion(
    tx: &Transaction<'_>,
    st: &Statements,
    deletion: &Event,
) -> Result<Applied, Error> {
    let author = deletion.pubkey;
    let author_bytes = author.as_bytes().as_slice();
    let deleted_at = deletion.created_at.as_secs() as i64;
    let mut doomed: Vec<i64> = Vec::new();
    for target in deletion.tags.event_ids() {
        tombstone(tx, st, &target.to_hex(), &author, deleted_at).await?;
        let kind = KIND_DELETION as i32;
        let row = tx
            .query_opt(
                &st.own_event,
                &[&target.as_bytes().as_slice(), &author_bytes, &kind],
            )
            .await?;
        doomed.extend(row.map(|r| r.get::<_, i64>(0)));
    }
    for coord in deletion.tags.coordinates() {
        if coord.public_key != author {
            continue;
        }
        let d = coord
            .kind
            .is_addressable()
            .then(|| escape(&coord.identifier).into_owned());
        let target = format!(
            "{}:{}:{}",
            coord.kind.as_u16(),
            author.to_hex(),
            coord.identifier
        );
        tombstone(tx, st, &escape(&target), &author, deleted_at).await?;
        let kind = coord.kind.as_u16() as i32;
        let rows = tx
            .query(&st.address_up_to, &[&author_bytes, &kind, &d, &deleted_at])
            .await?;
        doomed.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
    }
    doomed.sort_unstable();
    doomed.dedup();
    let (events, bytes) = delete_events(tx, st, &doomed).await?;
    let mut removed = Applied::only(SaveOutcome::Stored);
    removed.events -= events;
    removed.bytes -= bytes;
    Ok(removed)
}

async fn tombstone(
    tx: &Transaction<'_>,
    st: &Statements,
    target: &str,
    author: &PublicKey,
    at: i64,
) -> Result<(), Error> {
    tx.execute(
        &st.tombstone,
        &[&target, &author.as_bytes().as_slice(), &at],
    )
    .await?;
    Ok(())
}
