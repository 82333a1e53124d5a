//! The honest user: posts on A at a steady pace, and two live subscriptions (one on A,
//! one on B) note when each post arrives. The delay from sending the EVENT to its arrival
//! is what a flood must not stretch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use starling_proto::{EventBuilder, FinalizeEvent, Keys, Kind};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::ws;

/// Send times of the posts, by id.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

/// Arrival delays seen by one subscriber, in milliseconds; and posts refused.
#[derive(Debug, Default, Clone)]
pub struct Delays {
    pub ms: Vec<f64>,
    pub refused: usize,
}

/// A live subscription for `author`'s notes on `url`, recording delays into `out`.
async fn receiver(url: String, author: String, sent: Sent, out: Arc<Mutex<Delays>>) -> Result<()> {
    let mut conn = ws::connect(&url).await?;
    let req = format!(r#"["REQ","live",{{"kinds":[1],"authors":["{author}"],"limit":0}}]"#);
    conn.send(Message::Text(req.into())).await?;
    while let Some(Ok(msg)) = conn.next().await {
        let Message::Text(text) = msg else { continue };
        if ws::event_sub(&text) != Some("live") {
            continue;
        }
        let now = Instant::now();
        let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let Some(id) = items
            .get(2)
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        if let Some(at) = sent.lock().expect("lock").get(id) {
            out.lock()
                .expect("lock")
                .ms
                .push(now.duration_since(*at).as_secs_f64() * 1e3);
        }
    }
    Ok(())
}

/// Posts `count` notes on `url` at `per_sec`, signed by `keys`, noting each send time.
async fn poster(url: &str, keys: &Keys, count: usize, per_sec: f64, sent: &Sent) -> Result<usize> {
    let mut conn = ws::connect(url).await?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_sec));
    let mut refused = 0;
    for i in 0..count {
        tick.tick().await;
        let note = EventBuilder::new(Kind::TextNote, format!("honest note {i}")).finalize(keys)?;
        sent.lock()
            .expect("lock")
            .insert(note.id.to_hex(), Instant::now());
        conn.send(Message::Text(
            format!(r#"["EVENT",{}]"#, serde_json::to_string(&note)?).into(),
        ))
        .await?;
        // Read the OK (and anything else) without holding up the pace.
        while let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(1), conn.next()).await
        {
            if let ws::Reply::Ok {
                accepted: false, ..
            } = ws::parse_reply(&t)
            {
                refused += 1;
            }
        }
    }
    Ok(refused)
}

/// One phase: `count` posts at `per_sec` on A; delays seen on A and on B.
pub async fn phase(
    a_url: &str,
    b_url: &str,
    keys: &Keys,
    count: usize,
    per_sec: f64,
) -> Result<(Delays, Delays)> {
    let sent: Sent = Arc::default();
    let author = keys.public_key().to_hex();
    let on_a = Arc::new(Mutex::new(Delays::default()));
    let on_b = Arc::new(Mutex::new(Delays::default()));
    let tasks: Vec<JoinHandle<Result<()>>> = vec![
        tokio::spawn(receiver(
            a_url.into(),
            author.clone(),
            sent.clone(),
            on_a.clone(),
        )),
        tokio::spawn(receiver(b_url.into(), author, sent.clone(), on_b.clone())),
    ];
    // Let both subscriptions open before the first post.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = poster(a_url, keys, count, per_sec, &sent).await?;
    // Stragglers get five seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && on_b.lock().expect("lock").ms.len() < count {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tasks.iter().for_each(JoinHandle::abort);
    let mut a = on_a.lock().expect("lock").clone();
    let b = on_b.lock().expect("lock").clone();
    a.refused = refused;
    Ok((a, b))
}
