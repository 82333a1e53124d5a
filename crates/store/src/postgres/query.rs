//! NIP-01 filters as PostgreSQL queries, planned as the SQLite backend plans them
//! (`sqlite::query`): each filter is split along the field that drives its index (one
//! author, one tag value, one kind per part), each part reads newest-first off an index and
//! stops at the filter's `limit`, and the parts and filters are merged here. Set-valued
//! fields are passed as one array parameter each, and every query is sent with its
//! parameter types (`query_typed`), so it costs one round trip and no prepare.

use std::collections::{BTreeSet, HashMap};

use starling_proto::filter::effective_limit;
use starling_proto::{Filter, SingleLetterTag};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::schema::escape;
use crate::sqlite::query::{driving_tag, split};
use crate::{EventKey, StoreError};

/// One query parameter, owned so that a query can be built before it is sent.
enum Param {
    Bytes(Vec<Vec<u8>>),
    Ints(Vec<i32>),
    Int(i64),
    Text(String),
    Texts(Vec<String>),
}

impl Param {
    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Param::Bytes(v) => (v, Type::BYTEA_ARRAY),
            Param::Ints(v) => (v, Type::INT4_ARRAY),
            Param::Int(v) => (v, Type::INT8),
            Param::Text(v) => (v, Type::TEXT),
            Param::Texts(v) => (v, Type::TEXT_ARRAY),
        }
    }
}

/// A query being built: its SQL and its parameters, numbered as they are bound.
#[derive(Default)]
struct Sql {
    params: Vec<Param>,
}

impl Sql {
    /// Binds `p` and returns its placeholder.
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    async fn run(
        &self,
        client: &Client,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let params: Vec<_> = self.params.iter().map(Param::typed).collect();
        Ok(client.query_typed(sql, &params).await?)
    }
}

fn tag_values(values: &BTreeSet<String>) -> Param {
    Param::Texts(values.iter().map(|v| escape(v).into_owned()).collect())
}

/// The filter's conditions on the event table `e`, leaving out the tag `skip_tag` (which a
/// join on the tag index already applies).
fn clause(sql: &mut Sql, filter: &Filter, now: i64, skip_tag: Option<SingleLetterTag>) -> String {
    let mut conds: Vec<String> = Vec::new();
    if let Some(ids) = filter.ids.as_ref().filter(|s| !s.is_empty()) {
        let ids = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
        conds.push(format!("e.id = ANY({})", sql.bind(Param::Bytes(ids))));
    }
    if let Some(authors) = filter.authors.as_ref().filter(|s| !s.is_empty()) {
        let authors = authors.iter().map(|pk| pk.as_bytes().to_vec()).collect();
        conds.push(format!(
            "e.pubkey = ANY({})",
            sql.bind(Param::Bytes(authors))
        ));
    }
    if let Some(kinds) = filter.kinds.as_ref().filter(|s| !s.is_empty()) {
        let kinds = kinds.iter().map(|k| k.as_u16() as i32).collect();
        conds.push(format!("e.kind = ANY({})", sql.bind(Param::Ints(kinds))));
    }
    if let Some(since) = filter.since {
        let p = sql.bind(Param::Int(since.as_secs() as i64));
        conds.push(format!("e.created_at >= {p}"));
    }
    if let Some(until) = filter.until {
        let p = sql.bind(Param::Int(until.as_secs() as i64));
        conds.push(format!("e.created_at <= {p}"));
    }
    let tags = filter
        .generic_tags
        .iter()
        .filter(|(name, v)| !v.is_empty() && Some(**name) != skip_tag);
    for (name, values) in tags {
        let name = sql.bind(Param::Text(name.to_string()));
        let values = sql.bind(tag_values(values));
        conds.push(format!(
            "e.seq IN (SELECT event_seq FROM tag WHERE name = {name} AND value = ANY({values}))"
        ));
    }
    let now = sql.bind(Param::Int(now));
    conds.push(format!("(e.expires_at IS NULL OR e.expires_at >= {now})"));
    conds.join(" AND ")
}

/// The SQL reading the newest `limit` matches of one single-driven part, selecting
/// `columns` of the event table `e`.
fn part_query(sql: &mut Sql, part: &Filter, limit: usize, now: i64, columns: &str) -> String {
    let query = match driving_tag(part) {
        Some((name, values)) => {
            let name_p = sql.bind(Param::Text(name.to_string()));
            let values_p = sql.bind(tag_values(values));
            let conds = clause(sql, part, now, Some(name));
            format!(
                "SELECT {columns} FROM tag t JOIN event e ON e.seq = t.event_seq
                 WHERE t.name = {name_p} AND t.value = ANY({values_p}) AND {conds}
                 ORDER BY t.created_at DESC, e.id ASC"
            )
        }
        None => {
            let conds = clause(sql, part, now, None);
            format!(
                "SELECT {columns} FROM event e WHERE {conds} ORDER BY e.created_at DESC, e.id ASC"
            )
        }
    };
    let limit = sql.bind(Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    format!("{query} LIMIT {limit}")
}

/// A matching event's position: (created_at, id, seq).
type Hit = (i64, Vec<u8>, i64);

/// Newest first, ties by lowest id (NIP-01).
fn newest_first(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1))
}

/// The stored JSON of events matching any of `filters`, newest first, ties by id.
pub async fn select_json(
    client: &Client,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> Result<Vec<String>, StoreError> {
    // The common case, one filter read off one index: its rows come out in order, so the
    // JSON is read in the same query.
    if let [filter] = filters {
        let parts = split(filter);
        if let [part] = parts.as_slice() {
            let limit = effective_limit(filter, max_limit);
            if limit == 0 {
                return Ok(Vec::new());
            }
            let mut sql = Sql::default();
            let query = part_query(&mut sql, part, limit, now, "e.json");
            let rows = sql.run(client, &query).await?;
            return Ok(rows.iter().map(|r| r.get(0)).collect());
        }
    }
    let hits = select_hits(client, filters, max_limit, now).await?;
    if hits.is_empty() {
        return Ok(Vec::new());
    }
    let seqs: Vec<i64> = hits.iter().map(|h| h.2).collect();
    let rows = client
        .query_typed(
            "SELECT seq, json FROM event WHERE seq = ANY($1)",
            &[(&seqs, Type::INT8_ARRAY)],
        )
        .await?;
    let mut json: HashMap<i64, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // An event deleted between the two queries is left out.
    Ok(hits.iter().filter_map(|h| json.remove(&h.2)).collect())
}

/// The positions of events matching any of `filters`, newest first, ties by id, each
/// filter's limit (at most `max_limit`) applied to its matches.
async fn select_hits(
    client: &Client,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> Result<Vec<Hit>, StoreError> {
    let mut chosen: HashMap<i64, Hit> = HashMap::new();
    for filter in filters {
        let limit = effective_limit(filter, max_limit);
        if limit == 0 {
            continue;
        }
        let mut hits: Vec<Hit> = Vec::new();
        for part in split(filter) {
            let mut sql = Sql::default();
            let query = part_query(&mut sql, &part, limit, now, "e.created_at, e.id, e.seq");
            let rows = sql.run(client, &query).await?;
            hits.extend(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))));
        }
        hits.sort_unstable_by(newest_first);
        hits.dedup_by_key(|h| h.2);
        hits.truncate(limit);
        chosen.extend(hits.into_iter().map(|h| (h.2, h)));
    }
    let mut hits: Vec<Hit> = chosen.into_values().collect();
    hits.sort_unstable_by(newest_first);
    Ok(hits)
}

/// The (created_at, id) of events matching any of `filters`, newest first: what set
/// reconciliation compares, read off the indexes without touching the events' JSON.
pub async fn select_keys(
    client: &Client,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> Result<Vec<EventKey>, StoreError> {
    let hits = select_hits(client, filters, max_limit, now).await?;
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
pub async fn count(client: &Client, filters: &[Filter], now: i64) -> Result<u64, StoreError> {
    if filters.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::default();
    let parts: Vec<String> = filters
        .iter()
        .map(|f| {
            format!(
                "SELECT e.seq FROM event e WHERE {}",
                clause(&mut sql, f, now, None)
            )
        })
        .collect();
    let query = format!(
        "SELECT count(*) FROM ({}) AS matches",
        parts.join(" UNION ")
    );
    let rows = sql.run(client, &query).await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
}
