//! NIP-01 filters as SQL: one indexed `SELECT` per filter, newest first, tag conditions as
//! sub-selects on the tag index. Results of several filters are merged and de-duplicated
//! in Rust. Runs on reader connections only.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use starling_proto::filter::effective_limit;
use starling_proto::Filter;

/// A filter rendered as a `WHERE` clause with its parameters.
struct Clause {
    sql: String,
    params: Vec<Value>,
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn clause(filter: &Filter, now: i64) -> Clause {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if let Some(ids) = filter.ids.as_ref().filter(|s| !s.is_empty()) {
        conds.push(format!("id IN ({})", placeholders(ids.len())));
        params.extend(ids.iter().map(|id| Value::Blob(id.as_bytes().to_vec())));
    }
    if let Some(authors) = filter.authors.as_ref().filter(|s| !s.is_empty()) {
        conds.push(format!("pubkey IN ({})", placeholders(authors.len())));
        params.extend(authors.iter().map(|pk| Value::Blob(pk.as_bytes().to_vec())));
    }
    if let Some(kinds) = filter.kinds.as_ref().filter(|s| !s.is_empty()) {
        conds.push(format!("kind IN ({})", placeholders(kinds.len())));
        params.extend(kinds.iter().map(|k| Value::Integer(k.as_u16() as i64)));
    }
    let since = filter.since.map(|t| t.as_secs() as i64);
    let until = filter.until.map(|t| t.as_secs() as i64);
    if let Some(since) = since {
        conds.push("created_at >= ?".into());
        params.push(Value::Integer(since));
    }
    if let Some(until) = until {
        conds.push("created_at <= ?".into());
        params.push(Value::Integer(until));
    }
    for (name, values) in filter.generic_tags.iter().filter(|(_, v)| !v.is_empty()) {
        let mut sub = format!(
            "seq IN (SELECT event_seq FROM tag WHERE name = ? AND value IN ({})",
            placeholders(values.len())
        );
        params.push(Value::Text(name.to_string()));
        params.extend(values.iter().map(|v| Value::Text(v.clone())));
        if let Some(since) = since {
            sub.push_str(" AND created_at >= ?");
            params.push(Value::Integer(since));
        }
        if let Some(until) = until {
            sub.push_str(" AND created_at <= ?");
            params.push(Value::Integer(until));
        }
        sub.push(')');
        conds.push(sub);
    }
    conds.push("(expires_at IS NULL OR expires_at >= ?)".into());
    params.push(Value::Integer(now));
    Clause {
        sql: conds.join(" AND "),
        params,
    }
}

/// The stored JSON of events matching any of `filters`, newest first, ties by id.
pub fn select_json(
    conn: &Connection,
    filters: &[Filter],
    max_limit: usize,
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    // seq -> (created_at, id, json)
    let mut found: HashMap<i64, (i64, Vec<u8>, String)> = HashMap::new();
    for filter in filters {
        let limit = effective_limit(filter, max_limit);
        if limit == 0 {
            continue;
        }
        let Clause { sql, mut params } = clause(filter, now);
        let sql = format!(
            "SELECT seq, created_at, id, json FROM event WHERE {sql}
             ORDER BY created_at DESC, id ASC LIMIT ?"
        );
        params.push(Value::Integer(limit as i64));
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if let std::collections::hash_map::Entry::Vacant(slot) = found.entry(seq) {
                slot.insert((row.get(1)?, row.get(2)?, row.get(3)?));
            }
        }
    }
    let mut events: Vec<_> = found.into_values().collect();
    events.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(events.into_iter().map(|(_, _, json)| json).collect())
}

/// How many events match any of `filters`.
pub fn count(conn: &Connection, filters: &[Filter], now: i64) -> rusqlite::Result<u64> {
    if filters.is_empty() {
        return Ok(0);
    }
    let mut parts = Vec::with_capacity(filters.len());
    let mut params = Vec::new();
    for filter in filters {
        let c = clause(filter, now);
        parts.push(format!("SELECT seq FROM event WHERE {}", c.sql));
        params.extend(c.params);
    }
    let sql = format!("SELECT count(*) FROM ({})", parts.join(" UNION "));
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params), |r| r.get(0))?;
    Ok(n as u64)
}
