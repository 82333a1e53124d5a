//! The NIP-77 messages on the wire: parses a client's `NEG-OPEN`, `NEG-MSG` and `NEG-CLOSE`
//! (their negentropy payloads hex-decoded) and writes the relay's `NEG-MSG` and `NEG-ERR`.
//! The session hands these messages here when the NIP-01 parser (`starling_proto`) names
//! them as not its own; what they mean for a connection is [`super::negentropy`]'s part.

use serde::Deserialize as _;
use serde_json::{json, Value};
use starling_proto::message::{check_filter, subscription_id};
use starling_proto::{Filter, Limits, SubscriptionId};

use super::negentropy::NegError;

/// A parsed NIP-77 client message.
#[derive(Debug)]
pub enum NegRequest {
    /// `["NEG-OPEN", <sub id>, <filter>, <initial message hex>]`.
    Open {
        sub_id: SubscriptionId,
        filter: Filter,
        initial: Vec<u8>,
    },
    /// `["NEG-MSG", <sub id>, <message hex>]`.
    Msg {
        sub_id: SubscriptionId,
        message: Vec<u8>,
    },
    /// `["NEG-CLOSE", <sub id>]`.
    Close(SubscriptionId),
}

/// Why a NIP-77 client message could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NegParseError {
    /// Without a usable subscription id: answered with a NOTICE.
    #[error("could not parse message: {0}")]
    Malformed(String),
    /// Names its subscription but is otherwise unusable: answered with a NEG-ERR.
    #[error("{error}")]
    Session {
        sub_id: SubscriptionId,
        #[source]
        error: NegError,
    },
}

/// Parses one `NEG-*` client message, checking the limits that apply to its shape.
pub fn parse(text: &str, limits: &Limits) -> Result<NegRequest, NegParseError> {
    let malformed = |why: &str| NegParseError::Malformed(why.to_owned());
    let parts: Vec<Value> =
        serde_json::from_str(text).map_err(|e| NegParseError::Malformed(e.to_string()))?;
    let Some((Value::String(kind), rest)) = parts.split_first() else {
        return Err(malformed("the first element must be a string"));
    };
    let Some((sub_id, rest)) = rest.split_first() else {
        return Err(malformed("missing subscription id"));
    };
    let sub_id = parse_sub_id(sub_id, limits)?;
    let bad = |error: NegError| NegParseError::Session {
        sub_id: sub_id.clone(),
        error,
    };
    match (kind.as_str(), rest) {
        ("NEG-OPEN", [filter, initial]) => {
            let filter = parse_filter(filter, limits).map_err(bad)?;
            let initial = decode_hex(initial).map_err(bad)?;
            Ok(NegRequest::Open {
                sub_id,
                filter,
                initial,
            })
        }
        ("NEG-OPEN", _) => Err(bad(NegError::Shape(
            "NEG-OPEN takes a subscription id, one filter and a message",
        ))),
        ("NEG-MSG", [message]) => {
            let message = decode_hex(message).map_err(bad)?;
            Ok(NegRequest::Msg { sub_id, message })
        }
        ("NEG-MSG", _) => Err(bad(NegError::Shape(
            "NEG-MSG takes a subscription id and a message",
        ))),
        ("NEG-CLOSE", []) => Ok(NegRequest::Close(sub_id)),
        ("NEG-CLOSE", _) => Err(bad(NegError::Shape(
            "NEG-CLOSE takes only a subscription id",
        ))),
        _ => Err(malformed("not a NIP-77 message")),
    }
}

/// `["NEG-MSG", <sub id>, <message hex>]`.
pub fn msg_json(sub_id: &SubscriptionId, message: &[u8]) -> String {
    json!(["NEG-MSG", sub_id.as_str(), hex::encode(message)]).to_string()
}

/// `["NEG-ERR", <sub id>, <reason>]`; the error's text carries the NIP-01 reason prefix.
pub fn err_json(sub_id: &SubscriptionId, error: &NegError) -> String {
    json!(["NEG-ERR", sub_id.as_str(), error.to_string()]).to_string()
}

/// A subscription id under REQ's rule.
fn parse_sub_id(value: &Value, limits: &Limits) -> Result<SubscriptionId, NegParseError> {
    let Value::String(id) = value else {
        return Err(NegParseError::Malformed(
            "the subscription id must be a string".into(),
        ));
    };
    subscription_id(id.clone(), limits).map_err(NegParseError::Malformed)
}

/// A filter as REQ takes it, with the same bound on listed values.
fn parse_filter(value: &Value, limits: &Limits) -> Result<Filter, NegError> {
    let filter: Filter =
        Filter::deserialize(value).map_err(|e| NegError::BadFilter(format!("bad filter: {e}")))?;
    check_filter(&filter, limits).map_err(NegError::BadFilter)?;
    Ok(filter)
}

fn decode_hex(value: &Value) -> Result<Vec<u8>, NegError> {
    let Value::String(text) = value else {
        return Err(NegError::Shape("the message must be a hex string"));
    };
    hex::decode(text).map_err(NegError::BadHex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NegRequest, NegParseError> {
        super::parse(text, &Limits::default())
    }

    fn session_error(text: &str) -> (String, NegError) {
        match parse(text) {
            Err(NegParseError::Session { sub_id, error }) => (sub_id.as_str().to_owned(), error),
            other => panic!("expected a session error for {text}: {other:?}"),
        }
    }

    #[test]
    fn parses_the_three_client_messages() {
        let Ok(NegRequest::Open {
            sub_id,
            filter,
            initial,
        }) = parse(r#"["NEG-OPEN","n",{"kinds":[1]},"61"]"#)
        else {
            panic!("NEG-OPEN")
        };
        assert_eq!(sub_id.as_str(), "n");
        assert_eq!(filter.kinds.map(|k| k.len()), Some(1));
        assert_eq!(initial, vec![0x61]);
        assert!(matches!(
            parse(r#"["NEG-MSG","n","61AB"]"#),
            Ok(NegRequest::Msg { message, .. }) if message == vec![0x61, 0xab]
        ));
        assert!(matches!(
            parse(r#"["NEG-CLOSE","n"]"#),
            Ok(NegRequest::Close(id)) if id.as_str() == "n"
        ));
    }

    #[test]
    fn errors_with_a_sub_id_become_neg_err() {
        let (id, e) = session_error(r#"["NEG-MSG","n","6z"]"#);
        assert_eq!(id, "n");
        assert!(matches!(e, NegError::BadHex(_)));
        assert!(e.to_string().starts_with("error: "));
        assert!(matches!(
            session_error(r#"["NEG-MSG","n","616"]"#).1,
            NegError::BadHex(_)
        ));
        assert!(matches!(
            session_error(r#"["NEG-MSG","n",97]"#).1,
            NegError::Shape(_)
        ));
        let (_, e) = session_error(r#"["NEG-OPEN","n",{"kinds":"x"},"61"]"#);
        assert!(e.to_string().starts_with("invalid: bad filter"), "{e}");
        // The draft's older form with an id size before the message.
        assert!(matches!(
            session_error(r#"["NEG-OPEN","n",{},32,"61"]"#).1,
            NegError::Shape(_)
        ));
        let many: Vec<String> = (0..1001).map(|i| format!("{i:064x}")).collect();
        let text = json!(["NEG-OPEN", "n", { "ids": many }, "61"]).to_string();
        assert!(matches!(
            session_error(&text).1,
            NegError::BadFilter(m) if m.contains("too many values")
        ));
    }

    #[test]
    fn errors_without_a_sub_id_become_notice() {
        for text in [
            "not json",
            "[]",
            r#"["NEG-MSG"]"#,
            r#"["NEG-MSG",7,"61"]"#,
            r#"["NEG-MSG","","61"]"#,
        ] {
            assert!(
                matches!(parse(text), Err(NegParseError::Malformed(_))),
                "{text}"
            );
        }
        let long = "x".repeat(65);
        let text = json!(["NEG-CLOSE", long]).to_string();
        assert!(matches!(parse(&text), Err(NegParseError::Malformed(_))));
    }

    #[test]
    fn writes_relay_messages() {
        let id = SubscriptionId::new("a\"b");
        assert_eq!(msg_json(&id, &[0x61, 0x0f]), r#"["NEG-MSG","a\"b","610f"]"#);
        let err = err_json(&id, &NegError::UnknownSession);
        let v: Value = serde_json::from_str(&err).unwrap();
        assert_eq!(v[0], "NEG-ERR");
        assert!(v[2].as_str().unwrap().starts_with("closed: "));
    }
}
