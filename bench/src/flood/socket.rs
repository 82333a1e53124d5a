//! A WebSocket to a node's relay from a chosen source address on loopback (the flooder
//! uses 127.0.0.2 so the node sees it as another IP than the honest clients).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::net::TcpSocket;

use crate::ws::Ws;

/// Connects to `url` (`ws://127.0.0.1:PORT/`) from `source`.
pub async fn connect_from(url: &str, source: IpAddr) -> Result<Ws> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("not a ws:// URL: {url}"))?;
    let addr: SocketAddr = rest.trim_end_matches('/').parse()?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.set_nodelay(true)?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
        .await
        .map_err(|_| anyhow!("connect to {addr} timed out"))??;
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .with_context(|| format!("WebSocket handshake with {url}"))?;
    Ok(ws)
}
