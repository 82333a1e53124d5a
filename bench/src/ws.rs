//! WebSocket client helpers: connecting with Nagle off, bounded receives, and
//! cheap inspection of relay messages (`EVENT`, `EOSE`, `OK`, ...).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// Time allowed for TCP connect plus WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connect to a `ws://host:port[/path]` URL with TCP_NODELAY set.
pub async fn connect(url: &str) -> Result<Ws> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("not a ws:// URL: {url}"))?;
    let addr = rest.split('/').next().unwrap_or(rest);
    let tcp = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("TCP connect to {addr} timed out"))?
        .with_context(|| format!("TCP connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (ws, _) = timeout(CONNECT_TIMEOUT, tokio_tungstenite::client_async(url, tcp))
        .await
        .map_err(|_| anyhow!("WebSocket handshake with {url} timed out"))?
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}

/// Ask the kernel to acknowledge incoming data at once instead of delaying
/// the ACK (Linux `TCP_QUICKACK`; not sticky, so set before every read).
/// Without it, a relay that leaves Nagle on stalls ~40 ms on each multi-frame
/// answer waiting for the client's delayed ACK.
pub fn quickack(ws: &Ws) {
    let _ = socket2::SockRef::from(ws.get_ref()).set_tcp_quickack(true);
}

/// Next text frame from the relay, waiting at most `wait`. Pings are answered
/// by tungstenite itself; binary frames are skipped.
pub async fn next_text<S>(stream: &mut S, wait: Duration) -> Result<String>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + wait;
    for _ in 0..1_000 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = timeout(left, stream.next())
            .await
            .map_err(|_| anyhow!("no message from relay within {wait:?}"))?;
        match msg {
            None => bail!("relay closed the connection"),
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(f))) => bail!("relay sent close: {f:?}"),
            Some(Ok(_)) => continue,
        }
    }
    bail!("too many non-text frames from relay")
}

/// Subscription id of an `["EVENT", "<sub>", {...}]` message, found without
/// parsing the event itself; `None` for any other message.
pub fn event_sub(text: &str) -> Option<&str> {
    let rest = text
        .strip_prefix('[')?
        .trim_start()
        .strip_prefix("\"EVENT\"")?;
    let rest = rest
        .trim_start()
        .strip_prefix(',')?
        .trim_start()
        .strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(&rest[..end])
}

/// A relay message other than `EVENT`, parsed.
#[derive(Debug)]
pub enum Reply {
    Ok {
        id: String,
        accepted: bool,
        message: String,
    },
    Eose {
        sub: String,
    },
    Closed {
        sub: String,
        message: String,
    },
    Notice(String),
    Other(String),
}

/// Parse a relay message (NIP-01 array form).
pub fn parse_reply(text: &str) -> Reply {
    let Ok(Value::Array(items)) = serde_json::from_str::<Value>(text) else {
        return Reply::Other(text.chars().take(200).collect());
    };
    let s = |i: usize| {
        items
            .get(i)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match items.first().and_then(Value::as_str) {
        Some("OK") => Reply::Ok {
            id: s(1),
            accepted: items.get(2).and_then(Value::as_bool).unwrap_or(false),
            message: s(3),
        },
        Some("EOSE") => Reply::Eose { sub: s(1) },
        Some("CLOSED") => Reply::Closed {
            sub: s(1),
            message: s(2),
        },
        Some("NOTICE") => Reply::Notice(s(1)),
        _ => Reply::Other(text.chars().take(200).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_sub_finds_the_subscription() {
        assert_eq!(event_sub(r#"["EVENT","q7",{"id":"x"}]"#), Some("q7"));
        assert_eq!(event_sub(r#"[ "EVENT" , "q7", {}]"#), Some("q7"));
        assert_eq!(event_sub(r#"["EOSE","q7"]"#), None);
    }

    #[test]
    fn parse_reply_reads_ok_and_eose() {
        match parse_reply(r#"["OK","ab",true,""]"#) {
            Reply::Ok { id, accepted, .. } => assert!(id == "ab" && accepted),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_reply(r#"["EOSE","q1"]"#),
            Reply::Eose { .. }
        ));
    }
}
