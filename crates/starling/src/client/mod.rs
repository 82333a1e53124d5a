//! The CLI's connection to a running node: NIP-01 over the node's WebSocket (publish and
//! query, like any Nostr client) and `GET /api/status`. Every wait has a timeout.

pub mod actions;
pub mod dm;

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use starling_proto::{Event, Filter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::args::ClientOpts;
use crate::config::Config;
use crate::datadir::DataDir;

/// How long to wait for any one answer from the node.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The API address to talk to: `--api`, else the running node's (`api.addr`), else the
/// config's. A node that serves its API over TLS is refused with a clear message: the CLI
/// speaks plain ws:// and http:// only.
pub fn api_address(opts: &ClientOpts) -> anyhow::Result<String> {
    if let Some(api) = &opts.api {
        return Ok(api.clone());
    }
    let dir = DataDir::resolve(opts.dir.data_dir.clone())?;
    let tls = Config::load(&dir.config()).is_ok_and(|c| c.api.tls_cert.is_some());
    if dir.is_initialized() && tls {
        bail!(
            "the node in {} serves its API over TLS (wss://, [api] tls_cert), which the CLI \
             does not speak yet: use another Nostr client with the node's certificate \
             trusted, or a node on a loopback address",
            dir.path().display()
        );
    }
    if let Ok(addr) = std::fs::read_to_string(dir.api_addr()) {
        return Ok(addr.trim().to_string());
    }
    if dir.is_initialized() {
        return Ok(Config::load(&dir.config())?.api.listen);
    }
    bail!(
        "no node in {}: pass --api or --data-dir",
        dir.path().display()
    )
}

/// A WebSocket session with the node's relay.
pub struct NodeClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_sub: u64,
    /// The relay's URL, named in NIP-42 AUTH events.
    url: String,
}

/// One message from the relay, parsed as a JSON array.
fn parse(text: &str) -> anyhow::Result<Vec<Value>> {
    serde_json::from_str(text)
        .with_context(|| format!("the node sent something that is not NIP-01: {text}"))
}

impl NodeClient {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let url = format!("ws://{addr}");
        Self::connect_url(&url)
            .await
            .with_context(|| format!("cannot reach the node at {url}; is `starling run` running?"))
    }

    /// Connects to any NIP-01 relay at `url` (`ws://` or `wss://`).
    pub async fn connect_url(url: &str) -> anyhow::Result<Self> {
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .map_err(|_| anyhow!("timed out connecting to {url}"))?
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(Self {
            ws,
            next_sub: 0,
            url: url.to_string(),
        })
    }

    async fn send(&mut self, value: Value) -> anyhow::Result<()> {
        self.ws
            .send(Message::text(value.to_string()))
            .await
            .context("sending to the node")
    }

    /// The next text message, or `None` when the node closed the connection.
    pub async fn recv(&mut self, timeout: Option<Duration>) -> anyhow::Result<Option<Vec<Value>>> {
        loop {
            let next = match timeout {
                Some(t) => tokio::time::timeout(t, self.ws.next())
                    .await
                    .map_err(|_| anyhow!("the node did not answer within {t:?}"))?,
                None => self.ws.next().await,
            };
            match next {
                Some(Ok(Message::Text(text))) => return Ok(Some(parse(&text)?)),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading from the node"),
            }
        }
    }

    /// Publishes `event` and waits for the node's `OK`.
    pub async fn publish(&mut self, event: &Event) -> anyhow::Result<()> {
        let (accepted, reason) = self.publish_answer(event).await?;
        if !accepted {
            bail!("the node refused the event: {reason}");
        }
        Ok(())
    }

    /// Publishes `event` and returns the relay's `OK` answer: accepted, and its message.
    pub async fn publish_answer(&mut self, event: &Event) -> anyhow::Result<(bool, String)> {
        self.send(serde_json::json!(["EVENT", event])).await?;
        let id = event.id.to_hex();
        while let Some(msg) = self.recv(Some(TIMEOUT)).await? {
            match msg.first().and_then(Value::as_str) {
                Some("OK") if msg.get(1).and_then(Value::as_str) == Some(id.as_str()) => {
                    let accepted = msg.get(2).and_then(Value::as_bool).unwrap_or(false);
                    let reason = msg.get(3).and_then(Value::as_str).unwrap_or("");
                    return Ok((accepted, reason.to_string()));
                }
                Some("NOTICE") => bail!(
                    "the node said: {}",
                    msg.get(1).and_then(Value::as_str).unwrap_or("")
                ),
                _ => continue,
            }
        }
        bail!("the node closed the connection before answering")
    }

    /// Opens a subscription; returns its id.
    pub async fn subscribe(&mut self, filters: Vec<Filter>) -> anyhow::Result<String> {
        self.next_sub += 1;
        let sub = format!("cli{}", self.next_sub);
        let mut req = vec![Value::from("REQ"), Value::from(sub.clone())];
        req.extend(
            filters
                .iter()
                .map(|f| serde_json::to_value(f).expect("a filter serializes")),
        );
        self.send(Value::Array(req)).await?;
        Ok(sub)
    }

    /// The next event of subscription `sub`; `Ok(None)` at EOSE or when the node closes.
    pub async fn next_event(
        &mut self,
        sub: &str,
        timeout: Option<Duration>,
    ) -> anyhow::Result<Option<Event>> {
        while let Some(msg) = self.recv(timeout).await? {
            if msg.get(1).and_then(Value::as_str) != Some(sub) {
                continue;
            }
            match msg.first().and_then(Value::as_str) {
                Some("EVENT") => {
                    let event = msg.get(2).cloned().context("EVENT without an event")?;
                    return Ok(Some(
                        serde_json::from_value(event).context("the node sent a malformed event")?,
                    ));
                }
                Some("EOSE") => return Ok(None),
                Some("CLOSED") => bail!(
                    "the node closed the query: {}",
                    msg.get(2).and_then(Value::as_str).unwrap_or("")
                ),
                _ => continue,
            }
        }
        Ok(None)
    }

    /// Stored events matching `filters`, newest first.
    pub async fn query(&mut self, filters: Vec<Filter>) -> anyhow::Result<Vec<Event>> {
        let sub = self.subscribe(filters).await?;
        let mut events = Vec::new();
        while let Some(event) = self.next_event(&sub, Some(TIMEOUT)).await? {
            events.push(event);
        }
        self.send(serde_json::json!(["CLOSE", sub])).await?;
        Ok(events)
    }

    /// The newest stored event matching `filter`.
    pub async fn query_one(&mut self, filter: Filter) -> anyhow::Result<Option<Event>> {
        Ok(self.query(vec![filter.limit(1)]).await?.into_iter().next())
    }
}

/// `GET path` on the node's API, as JSON (a minimal HTTP/1.0 request on loopback).
pub async fn get_json(addr: &str, path: &str) -> anyhow::Result<Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("the node at {addr} did not answer"))?
        .with_context(|| format!("cannot reach the node at {addr}; is `starling run` running?"))?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or("");
        let status = status.split_once(' ').map_or(status, |(_, rest)| rest);
        bail!("the node answered {status}: {}", body.trim());
    }
    serde_json::from_str(body).context("the node's answer is not JSON")
}
