//! How the CLI shows things to people: short keys, local times, one-line notes. With
//! `--json` the commands print raw JSON instead and never call these.

use starling_proto::{Event, Kind, PublicKey, Timestamp, ToBech32};

/// `npub1abcd…wxyz`.
pub fn short_npub(pk: &PublicKey) -> String {
    let npub = pk.to_bech32().unwrap_or_else(|_| pk.to_hex());
    format!("{}…{}", &npub[..10], &npub[npub.len() - 4..])
}

/// A UTC time like `2026-11-21 20:15`.
pub fn time(event: &Event) -> String {
    utc_minute(event.created_at)
}

/// `at` as a UTC time like `2026-11-21 20:15`.
pub fn utc_minute(at: Timestamp) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(at.as_secs() as i64)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| at.to_string())
}

/// One note for the timeline: time, author, what it is, text, id.
pub fn note_line(event: &Event, author_name: &str) -> String {
    let body = match event.kind {
        Kind::Repost => {
            let inner = serde_json::from_str::<Event>(&event.content)
                .map(|e| format!("{}: {}", short_npub(&e.pubkey), e.content))
                .unwrap_or_else(|_| "(a note)".into());
            format!("reposted {inner}")
        }
        _ => event.content.replace('\n', "\n    "),
    };
    format!(
        "{}  {}\n    {}\n    id {}",
        time(event),
        author_name,
        body,
        event.id.to_hex()
    )
}
