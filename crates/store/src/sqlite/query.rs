//! NIP-01 filters as SQL. Each filter is split along the field that drives its index
//! (one author, one tag value, one kind per part); each part reads newest-first off an
//! index, selecting only (created_at, id, seq), and the parts are merged in Rust, each
//! stepped only as far as the merge takes from it, up to the filter's `limit`. Filters are
//! merged after that and only the chosen events' JSON is read. Runs on reader connections
//! only.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use starling_proto::filter::effective_limit;
use starling_proto::{Filter, SingleLetterTag};

use crate::EventKey;

/// A filter rendered as a `WHERE` clause with its parameters.
struct Clause {
    sql: String,
    params: Vec<Value>,
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// The filter's conditions on the event table `e`, leaving out the tag `skip_tag` (which a
/// join on the tag index already applies).
fn clause(filter: &Filter, now: i64, skip_tag: Option<SingleLetterTag>) -> Clause {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if let Some(ids) = filter.ids.as_ref().filter(|s| !s.is_empty()) {
        conds.push(format!("e.id IN ({})", placeholders(ids.len())));
        params.extend(ids.iter().map(|id| Value::Blob(id.as_bytes().to_vec())));
    }
    if let Some(authors) = filter.authors.as_ref().filter(|s| !s.is_empty()) {
        conds.push(format!("e.pubkey IN ({})", placeholders(authors.len())));
        params.extend(authors.iter().map(|pk| Value::Blob(pk.as_bytes().to_vec())));
    }
    if let Some(kinds) = filter.kinds.as_ref().filter(|s| !s.is_empty()) {
        conds.push(format!("e.kind IN ({})", placeholders(kinds.len())));
        params.extend(kinds.iter().map(|k| Value::Integer(k.as_u16() as i64)));
    }
    let since = filter.since.map(|t| t.as_secs() as i64);
    let until = filter.until.map(|t| t.as_secs() as i64);
    if let Some(since) = since {
        conds.push("e.created_at >= ?".into());
        params.push(Value::Integer(since));
    }
    if let Some(until) = until {
        conds.push("e.created_at <= ?".into());
        params.push(Value::Integer(until));
    }
    let tags = filter
        .generic_tags
        .iter()
        .filter(|(name, v)| !v.is_empty() && Some(**name) != skip_tag);
    for (name, values) in tags {
        conds.push(format!(
            "e.seq IN (SELECT event_seq FROM tag WHERE name = ? AND value IN ({}))",
            placeholders(values.len())
        ));
        params.push(Value::Text(name.to_string()));
        params.extend(values.iter().map(|v| Value::Text(v.clone())));
    }
    conds.push("(e.expires_at IS NULL OR e.expires_at >= ?)".into());
    params.push(Value::Integer(now));
    Clause {
        sql: conds.join(" AND "),
        params,
    }
}

/// The tag that drives a filter's query, when neither ids nor authors do.
pub(crate) fn driving_tag(filter: &Filter) -> Option<(SingleLetterTag, &BTreeSet<String>)> {
    let unset = |s: Option<usize>| s.is_none_or(|n| n == 0);
    if !unset(filter.ids.as_ref().map(|s| s.len()))
        || !unset(filter.authors.as_ref().map(|s| s.len()))
    {
        return None;
    }
    filter
        .generic_tags
        .iter()
        .find(|(_, v)| !v.is_empty())
        .map(|(name, v)| (*name, v))
}

/// Splits a filter into parts with one value in the field that drives the index (authors,
/// else the driving tag, else kinds), so each part reads newest-first off an index and
/// stops after `limit` rows instead of sorting every match. Ids are direct lookups.
pub(crate) fn split(filter: &Filter) -> Vec<Filter> {
    let with = |f: &dyn Fn(&mut Filter)| {
        let mut part = filter.clone();
        f(&mut part);
        part
    };
    if filter.ids.as_ref().is_some_and(|s| !s.is_empty()) {
        return vec![filter.clone()];
    }
    if let Some(authors) = filter.authors.as_ref().filter(|s| s.len() > 1) {
        return authors
            .iter()
            .map(|a| with(&|p| p.authors = Some(BTreeSet::from([*a]))))
            .collect();
    }
    if let Some((name, values)) = driving_tag(filter) {
        return values
            .iter()
            .map(|v| {
                with(&|p| {
                    p.generic_tags.insert(name, BTreeSet::from([v.clone()]));
                })
            })
            .collect();
    }
    if let Some(kinds) = filter
        .kinds
        .as_ref()
        .filter(|s| s.len() > 1 && filter.authors.is_none())
    {
        return kinds
            .iter()
            .map(|k| with(&|p| p.kinds = Some(BTreeSet::from([*k]))))
            .collect();
    }
    vec![filter.clone()]
}

/// Parts of one filter that each keep a cached statement (see [`select_filter`]).
const CACHED_PARTS: usize = 32;

/// A matching event's position: (created_at, id, seq).
type Hit = (i64, Vec<u8>, i64);

/// The SQL reading the newest `limit` matches of one single-driven part, selecting
/// `columns` of the event table `e`.
///
/// The limit is written into the SQL, not bound: SQLite plans with a bound limit's value,
/// so a statement whose limit changes from one run to the next is compiled again each
/// time. Written in, each limit gets its own cached statement.
fn part_query(part: &Filter, limit: usize, now: i64, columns: &str) -> (String, Vec<Value>) {
    match driving_tag(part) {
        Some((name, values)) => {
            let Clause { sql, params: rest } = clause(part, now, Some(name));
            let mut params = vec![Value::Text(name.to_string())];
            params.extend(values.iter().map(|v| Value::Text(v.clone())));
            params.extend(rest);
            let sql = format!(
                "SELECT {columns} FROM tag t JOIN event e ON e.seq = t.event_seq
                 WHERE t.name = ? AND t.value IN ({}) AND {sql}
                 ORDER BY t.created_at DESC, e.id ASC LIMIT {limit}",
                placeholders(values.len())
            );
            (sql, params)
        }
        None => {
            let Clause { sql, params } = clause(part, now, None);
            let sql = format!(
                "SELECT {columns} FROM event e WHERE {sql}
                 ORDER BY e.created_at DESC, e.id ASC LIMIT {limit}"
            );
            (sql, params)
        }
    }
}

/// The newest `limit` matches of `filter`, as positions: its parts (see [`split`]) are
/// read newest-first side by side and merged, stepping each only as far as the merge
/// needs, so a filter naming 200 authors reads about `limit + 200` index rows rather than
/// `limit` rows of each author.
fn select_filter(
    conn: &Connection,
    filter: &Filter,
    limit: usize,
    now: i64,
) -> rusqlite::Result<Vec<Hit>> {
    let parts = split(filter);
    let mut stmts = Vec::with_capacity(parts.len());
    let mut params = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let (sql, p) = part_query(part, limit, now, &part_columns(i));
        stmts.push(conn.prepare_cached(&sql)?);
        params.push(p);
    }
    let mut streams = Vec::with_capacity(stmts.len());
    for (stmt, p) in stmts.iter_mut().zip(params) {
        streams.push(stmt.query(params_from_iter(p))?);
    }
    let next = |rows: &mut rusqlite::Rows<'_>| -> rusqlite::Result<Option<Hit>> {
        rows.next()?
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .transpose()
    };
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (i, rows) in streams.iter_mut().enumerate() {
        if let Some(hit) = next(rows)? {
            heap.push(Newest(hit, i));
        }
    }
    let mut hits: Vec<Hit> = Vec::with_capacity(limit.min(1024));
    let mut seen = HashSet::new();
    while hits.len() < limit {
        let Some(Newest(hit, i)) = heap.pop() else {
            break;
        };
        if let Some(more) = next(&mut streams[i])? {
            heap.push(Newest(more, i));
        }
        // Parts split on a tag's values can both match one event.
        if seen.insert(hit.2) {
            hits.push(hit);
        }
    }
    Ok(hits)
}

/// The columns part `i` of a split filter selects. Parts share their SQL but run side by
/// side, so each needs a statement of its own: the comment naming the part makes it a
/// cache entry of its own. Parts past the first [`CACHED_PARTS`] share one entry; of
/// those, all but one are compiled each time.
fn part_columns(i: usize) -> String {
    format!(
        "/* part {} */ e.created_at, e.id, e.seq",
        i.min(CACHED_PARTS)
    )
}

/// A hit from part `.1`, ordered so that a max-heap pops the newest first.
struct Newest(Hit, usize);

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> Ordering {
        newest_first(&other.0, &self.0)
    }
}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Newest {}

/// Newest first, ties by lowest id (NIP-01).
fn newest_first(a: &Hit, b: &Hit) -> Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1))
}

/// The stored JSON of events matching any of `filters`, newest first, ties by id.
pub fn select_json(
    conn: &Connection,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    // The common case, one filter read off one index: its rows come out in order, so the
    // JSON is read in the same pass.
    if let [filter] = filters {
        let parts = split(filter);
        if let [part] = parts.as_slice() {
            let limit = effective_limit(filter, max_limit);
            if limit == 0 {
                return Ok(Vec::new());
            }
            let (sql, params) = part_query(part, limit, now, "e.json");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(params), |r| r.get(0))?
                .collect();
            return rows;
        }
    }
    let hits = select_hits(conn, filters, max_limit, now)?;
    let mut stmt = conn.prepare_cached("SELECT json FROM event WHERE seq = ?1")?;
    hits.iter()
        .map(|h| stmt.query_row([h.2], |r| r.get(0)))
        .collect()
}

/// The positions of events matching any of `filters`, newest first, ties by id, each
/// filter's limit (at most `max_limit`) applied to its matches.
fn select_hits(
    conn: &Connection,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> rusqlite::Result<Vec<Hit>> {
    let mut chosen: HashMap<i64, Hit> = HashMap::new();
    for filter in filters {
        let limit = effective_limit(filter, max_limit);
        if limit == 0 {
            continue;
        }
        let hits = select_filter(conn, filter, limit, now)?;
        chosen.extend(hits.into_iter().map(|h| (h.2, h)));
    }
    let mut hits: Vec<Hit> = chosen.into_values().collect();
    hits.sort_unstable_by(newest_first);
    Ok(hits)
}

/// The (created_at, id) of events matching any of `filters`, newest first: what set
/// reconciliation compares, read off the indexes without touching the events' JSON.
pub fn select_keys(
    conn: &Connection,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> rusqlite::Result<Vec<EventKey>> {
    let hits = select_hits(conn, filters, max_limit, now)?;
    Ok(hits
        .into_iter()
        .filter_map(|(created_at, id, _)| {
            Some(EventKey {
                created_at: u64::try_from(created_at).ok()?,
                id: id.try_into().ok()?,
            })
        })
        .collect())
}

/// How many events match any of `filters`.
pub fn count(conn: &Connection, filters: &[Filter], now: i64) -> rusqlite::Result<u64> {
    if filters.is_empty() {
        return Ok(0);
    }
    let mut parts = Vec::with_capacity(filters.len());
    let mut params = Vec::new();
    for filter in filters {
        let c = clause(filter, now, None);
        parts.push(format!("SELECT e.seq FROM event e WHERE {}", c.sql));
        params.extend(c.params);
    }
    let sql = format!("SELECT count(*) FROM ({})", parts.join(" UNION "));
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| r.get(0))?;
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;
    use starling_proto::{Keys, PublicKey};

    use super::*;

    /// A store with 20 kind-1 events by each of `authors`.
    fn store_of(authors: &[PublicKey]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&conn).unwrap();
        for (a, author) in authors.iter().enumerate() {
            for i in 0..20i64 {
                let id = ((a as i64) << 32 | i).to_be_bytes().repeat(4);
                conn.execute(
                    "INSERT INTO event (id, pubkey, created_at, kind, json) VALUES (?1, ?2, ?3, 1, '{}')",
                    rusqlite::params![id, author.as_bytes().as_slice(), i],
                )
                .unwrap();
            }
        }
        conn
    }

    #[test]
    fn a_changed_limit_does_not_compile_a_statement_again() {
        let author = Keys::generate().public_key();
        let conn = store_of(&[author]);
        let filter = |limit| Filter::new().author(author).limit(limit);
        for limit in [5, 7, 5, 7, 5] {
            let found = select_json(&conn, &[filter(limit)], 5000, 0).unwrap();
            assert_eq!(found.len(), limit);
        }
        for limit in [5, 7] {
            let (sql, _) = part_query(&filter(limit), limit, 0, "e.json");
            let stmt = conn.prepare_cached(&sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    #[test]
    fn each_part_of_a_split_filter_keeps_its_statement() {
        let authors: Vec<PublicKey> = (0..3).map(|_| Keys::generate().public_key()).collect();
        let conn = store_of(&authors);
        let filter = Filter::new().authors(authors.clone()).limit(10);
        for _ in 0..2 {
            let found = select_json(&conn, std::slice::from_ref(&filter), 5000, 0).unwrap();
            assert_eq!(found.len(), 10);
        }
        // Every part's statement is the one both queries ran: none was compiled afresh.
        for (i, part) in split(&filter).iter().enumerate() {
            let (sql, _) = part_query(part, 10, 0, &part_columns(i));
            let stmt = conn.prepare_cached(&sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::Run), 2, "{sql}");
        }
    }
}
