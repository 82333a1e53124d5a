//! NIP-01 client and relay messages. Client messages are parsed lazily: an `EVENT`'s event
//! stays raw JSON until the ingest path validates it, so the relay can answer a malformed
//! event with an `OK false` naming its id. Relay messages are written straight to JSON,
//! splicing stored event JSON in without re-serializing it.

use nostr::prelude::{EventId, Filter, PublicKey, SubscriptionId};
use serde_json::value::RawValue;

use crate::limits::Limits;

/// A parsed client message.
#[derive(Debug)]
pub enum ClientMessage<'a> {
    /// `["EVENT", <event>]`: the event's raw JSON.
    Event(&'a str),
    /// `["REQ", <sub id>, <filter>...]`.
    Req {
        sub_id: SubscriptionId,
        filters: Vec<Filter>,
    },
    /// `["COUNT", <sub id>, <filter>...]` (NIP-45).
    Count {
        sub_id: SubscriptionId,
        filters: Vec<Filter>,
    },
    /// `["CLOSE", <sub id>]`.
    Close(SubscriptionId),
    /// `["AUTH", <event>]` (NIP-42): the signed kind-22242 event's raw JSON.
    Auth(&'a str),
}

/// Why a client message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("could not parse message: {0}")]
    Malformed(String),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("{0} is not supported by this relay")]
    Unsupported(String),
    /// A REQ or COUNT that names its subscription but is otherwise unusable.
    #[error("{reason}")]
    BadSubscription {
        sub_id: SubscriptionId,
        reason: String,
    },
}

/// Parses one client message, checking the limits that apply to its shape.
pub fn parse_client_message<'a>(
    text: &'a str,
    limits: &Limits,
) -> Result<ClientMessage<'a>, MessageError> {
    let parts: Vec<&'a RawValue> =
        serde_json::from_str(text).map_err(|e| MessageError::Malformed(e.to_string()))?;
    let (head, rest) = parts
        .split_first()
        .ok_or_else(|| MessageError::Malformed("empty array".into()))?;
    let kind: &str = serde_json::from_str(head.get())
        .map_err(|_| MessageError::Malformed("the first element must be a string".into()))?;
    match kind {
        "EVENT" => match rest {
            [event] => Ok(ClientMessage::Event(event.get())),
            _ => Err(MessageError::Malformed(
                "EVENT takes exactly one event".into(),
            )),
        },
        "REQ" => {
            let (sub_id, filters) = parse_subscription(rest, limits)?;
            Ok(ClientMessage::Req { sub_id, filters })
        }
        "COUNT" => {
            let (sub_id, filters) = parse_subscription(rest, limits)?;
            Ok(ClientMessage::Count { sub_id, filters })
        }
        "CLOSE" => match rest {
            [sub_id] => Ok(ClientMessage::Close(parse_sub_id(sub_id, limits)?)),
            _ => Err(MessageError::Malformed(
                "CLOSE takes one subscription id".into(),
            )),
        },
        "AUTH" => match rest {
            [event] => Ok(ClientMessage::Auth(event.get())),
            _ => Err(MessageError::Malformed(
                "AUTH takes exactly one event".into(),
            )),
        },
        "NEG-OPEN" | "NEG-MSG" | "NEG-CLOSE" => Err(MessageError::Unsupported(kind.to_string())),
        other => Err(MessageError::UnknownType(other.chars().take(32).collect())),
    }
}

fn parse_sub_id(raw: &RawValue, limits: &Limits) -> Result<SubscriptionId, MessageError> {
    let id: String = serde_json::from_str(raw.get())
        .map_err(|_| MessageError::Malformed("the subscription id must be a string".into()))?;
    subscription_id(id, limits).map_err(MessageError::Malformed)
}

/// A subscription id within NIP-01's rule (1 to `max_subid_chars` characters); every
/// message that names a subscription (REQ, CLOSE, COUNT, NIP-77's NEG-*) checks it here.
pub fn subscription_id(id: String, limits: &Limits) -> Result<SubscriptionId, String> {
    if id.is_empty() || id.chars().count() > limits.max_subid_chars {
        return Err(format!(
            "the subscription id must have 1 to {} characters",
            limits.max_subid_chars
        ));
    }
    Ok(SubscriptionId::new(id))
}

fn parse_subscription(
    rest: &[&RawValue],
    limits: &Limits,
) -> Result<(SubscriptionId, Vec<Filter>), MessageError> {
    let (sub_id, raw_filters) = rest
        .split_first()
        .ok_or_else(|| MessageError::Malformed("missing subscription id".into()))?;
    let sub_id = parse_sub_id(sub_id, limits)?;
    let bad = |reason: String| MessageError::BadSubscription {
        sub_id: sub_id.clone(),
        reason,
    };
    if raw_filters.is_empty() {
        return Err(bad("invalid: at least one filter is required".into()));
    }
    if raw_filters.len() > limits.max_filters {
        return Err(bad(format!(
            "error: too many filters ({}, the limit is {})",
            raw_filters.len(),
            limits.max_filters
        )));
    }
    let mut filters = Vec::with_capacity(raw_filters.len());
    for raw in raw_filters {
        let filter =
            Filter::from_json(raw.get()).map_err(|e| bad(format!("invalid: bad filter: {e}")))?;
        check_filter(&filter, limits).map_err(|e| bad(format!("error: {e}")))?;
        filters.push(filter);
    }
    Ok((sub_id, filters))
}

/// Checks that no field of `filter` lists more than `max_filter_values` values (REQ,
/// COUNT and NIP-77's NEG-OPEN take filters under the same bound).
pub fn check_filter(filter: &Filter, limits: &Limits) -> Result<(), String> {
    let sizes = [
        filter.ids.as_ref().map_or(0, |s| s.len()),
        filter.authors.as_ref().map_or(0, |s| s.len()),
        filter.kinds.as_ref().map_or(0, |s| s.len()),
        filter.generic_tags.values().map(|s| s.len()).sum(),
    ];
    if sizes.iter().any(|&n| n > limits.max_filter_values) {
        return Err(format!(
            "a filter lists too many values (the limit is {})",
            limits.max_filter_values
        ));
    }
    Ok(())
}

/// A message from the relay to a client.
#[derive(Debug, Clone)]
pub enum RelayMessage<'a> {
    /// `["EVENT", <sub id>, <event JSON>]`.
    Event {
        sub_id: &'a SubscriptionId,
        event_json: &'a str,
    },
    /// `["OK", <id>, <accepted>, <message>]`.
    Ok {
        id: &'a str,
        accepted: bool,
        message: &'a str,
    },
    /// `["EOSE", <sub id>]`.
    Eose(&'a SubscriptionId),
    /// `["CLOSED", <sub id>, <message>]`.
    Closed(&'a SubscriptionId, &'a str),
    /// `["NOTICE", <message>]`.
    Notice(&'a str),
    /// `["COUNT", <sub id>, {"count": n}]` (NIP-45).
    Count(&'a SubscriptionId, u64),
    /// `["AUTH", <challenge>]` (NIP-42).
    Auth(&'a str),
}

impl RelayMessage<'_> {
    /// The message's JSON text.
    pub fn to_json(&self) -> String {
        let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        match self {
            Self::Event { sub_id, event_json } => {
                format!("[\"EVENT\",{},{}]", s(sub_id.as_str()), event_json)
            }
            Self::Ok {
                id,
                accepted,
                message,
            } => format!("[\"OK\",{},{},{}]", s(id), accepted, s(message)),
            Self::Eose(sub_id) => format!("[\"EOSE\",{}]", s(sub_id.as_str())),
            Self::Closed(sub_id, msg) => format!("[\"CLOSED\",{},{}]", s(sub_id.as_str()), s(msg)),
            Self::Notice(msg) => format!("[\"NOTICE\",{}]", s(msg)),
            Self::Count(sub_id, n) => {
                format!("[\"COUNT\",{},{{\"count\":{n}}}]", s(sub_id.as_str()))
            }
            Self::Auth(challenge) => format!("[\"AUTH\",{}]", s(challenge)),
        }
    }
}

/// Best-effort id of a raw event that failed to parse, for the `OK` reply: the `id` field
/// when it is a 64-character hex string, else the empty string.
pub fn raw_event_id(event_json: &str) -> String {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: String,
    }
    serde_json::from_str::<IdOnly>(event_json)
        .ok()
        .map(|v| v.id)
        .filter(|id| id.len() == 64 && EventId::from_hex(id).is_ok())
        .unwrap_or_default()
}

/// The `pubkey` of an event given as JSON, read without validating the event (for rate
/// limits per author, before the signature is checked); `None` if there is none.
pub fn raw_event_pubkey(event_json: &str) -> Option<PublicKey> {
    #[derive(serde::Deserialize)]
    struct PubkeyOnly<'a> {
        #[serde(borrow)]
        pubkey: &'a str,
    }
    serde_json::from_str::<PubkeyOnly>(event_json)
        .ok()
        .and_then(|v| PublicKey::from_hex(v.pubkey).ok())
}

/// The `kind` of an event given as JSON, read without parsing the rest into an event;
/// `None` if it has none.
pub fn raw_event_kind(event_json: &str) -> Option<u16> {
    #[derive(serde::Deserialize)]
    struct KindOnly {
        kind: u16,
    }
    serde_json::from_str::<KindOnly>(event_json)
        .ok()
        .map(|v| v.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClientMessage<'_>, MessageError> {
        parse_client_message(text, &Limits::default())
    }

    #[test]
    fn parses_each_message_type() {
        assert!(matches!(
            parse(r#"["EVENT",{"id":"x"}]"#),
            Ok(ClientMessage::Event(_))
        ));
        let Ok(ClientMessage::Req { sub_id, filters }) =
            parse(r##"["REQ","s",{"kinds":[1],"#p":["ab"]},{"limit":3}]"##)
        else {
            panic!("REQ")
        };
        assert_eq!(sub_id.as_str(), "s");
        assert_eq!(filters.len(), 2);
        assert!(matches!(
            parse(r#"["COUNT","c",{}]"#),
            Ok(ClientMessage::Count { .. })
        ));
        assert!(matches!(
            parse(r#"["CLOSE","s"]"#),
            Ok(ClientMessage::Close(_))
        ));
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(matches!(parse("not json"), Err(MessageError::Malformed(_))));
        assert!(matches!(parse("[]"), Err(MessageError::Malformed(_))));
        assert!(matches!(parse(r#"["FOO",1]"#), Err(MessageError::UnknownType(t)) if t == "FOO"));
        assert!(matches!(
            parse(r#"["AUTH",{}]"#),
            Ok(ClientMessage::Auth("{}"))
        ));
        assert!(matches!(
            parse(r#"["AUTH"]"#),
            Err(MessageError::Malformed(_))
        ));
        assert!(matches!(
            parse(r#"["NEG-CLOSE","s"]"#),
            Err(MessageError::Unsupported(_))
        ));
        let many = format!(r#"["REQ","s"{}]"#, ",{}".repeat(11));
        assert!(matches!(
            parse(&many),
            Err(MessageError::BadSubscription { reason, .. }) if reason.starts_with("error: too many filters")
        ));
        assert!(matches!(
            parse(r#"["REQ","s",{"kinds":"x"}]"#),
            Err(MessageError::BadSubscription { .. })
        ));
    }

    #[test]
    fn raw_event_id_is_64_hex_characters_or_empty() {
        let id = "5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36";
        assert_eq!(raw_event_id(&format!(r#"{{"id":"{id}","kind":"x"}}"#)), id);
        assert_eq!(raw_event_id(r#"{"id":"zz"}"#), "");
        assert_eq!(raw_event_id(r#"{"kind":1}"#), "");
        // Found by the event_json fuzz target (fuzz/corpus/event_json/long-id.json): a
        // 92-character id came back as the id to name in an OK message.
        let long = "6c192ab6592329c41a29b659a59c29d017cd0c55bc41cdaf8257edf9a2baaf8506a4099103211e6ed7382103ed67";
        assert_eq!(raw_event_id(&format!(r#"{{"id":"{long}"}}"#)), "");
    }

    #[test]
    fn writes_relay_messages() {
        let sub = SubscriptionId::new("a\"b");
        assert_eq!(RelayMessage::Eose(&sub).to_json(), r#"["EOSE","a\"b"]"#);
        let ok = RelayMessage::Ok {
            id: "00",
            accepted: false,
            message: "invalid: x",
        };
        assert_eq!(ok.to_json(), r#"["OK","00",false,"invalid: x"]"#);
        assert_eq!(
            RelayMessage::Count(&sub, 7).to_json(),
            r#"["COUNT","a\"b",{"count":7}]"#
        );
    }
}
