//! NIP-77 over a real WebSocket: a client holding a negentropy set of its own (the
//! `negentropy` crate as initiator) reconciles with the relay's stored events and learns
//! exactly the difference; bad requests get NEG-ERR or NOTICE and the connection stays
//! usable.

mod common;

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use negentropy::{Id, Negentropy};
use serde_json::{json, Value};
use starling_proto::{Event, Limits, Tag};
use starling_store::{negentropy_storage, EventKey};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::{event, node, node_with, note, Node};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw NIP-01 client over TCP.
struct Client {
    tx: SplitSink<Socket, Message>,
    rx: SplitStream<Socket>,
}

impl Client {
    async fn connect(node: &Node) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(starling_api::serve(listener, node.state.clone()));
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .unwrap();
        let (tx, rx) = ws.split();
        Self { tx, rx }
    }

    async fn send(&mut self, msg: Value) {
        self.tx.send(Message::text(msg.to_string())).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.rx.next())
                .await
                .expect("an answer within 10 s")
                .expect("the connection is open")
                .unwrap();
            if let Message::Text(text) = msg {
                return serde_json::from_str(&text).unwrap();
            }
        }
    }

    async fn publish(&mut self, e: &Event) {
        self.send(json!(["EVENT", e])).await;
        let ok = self.recv().await;
        assert_eq!(ok, json!(["OK", e.id.to_hex(), true, ""]));
    }

    /// Runs a whole reconciliation of `filter` from a client holding `mine`; returns the
    /// client's (have, need) ids as hex, sorted, and how many NEG-MSGs the relay sent.
    async fn sync(
        &mut self,
        sub: &str,
        filter: Value,
        mine: &[EventKey],
    ) -> (Vec<String>, Vec<String>, usize) {
        // The smallest frame the protocol allows, so a large set takes several rounds.
        let mut neg = Negentropy::owned(negentropy_storage(mine).unwrap(), 4096).unwrap();
        let initial = neg.initiate().unwrap();
        self.send(json!(["NEG-OPEN", sub, filter, hex::encode(initial)]))
            .await;
        let (mut have, mut need) = (Vec::<Id>::new(), Vec::<Id>::new());
        let mut rounds = 0;
        loop {
            let m = self.recv().await;
            assert_eq!((&m[0], &m[1]), (&json!("NEG-MSG"), &json!(sub)), "{m}");
            rounds += 1;
            let msg = hex::decode(m[2].as_str().unwrap()).unwrap();
            match neg.reconcile_with_ids(&msg, &mut have, &mut need).unwrap() {
                Some(next) => self.send(json!(["NEG-MSG", sub, hex::encode(next)])).await,
                None => break,
            }
        }
        self.send(json!(["NEG-CLOSE", sub])).await;
        let hex_sorted = |ids: Vec<Id>| {
            let mut v: Vec<String> = ids.iter().map(|id| hex::encode(id.as_bytes())).collect();
            v.sort();
            // Ids may come more than once when the relay cuts a frame: compare sets.
            v.dedup();
            v
        };
        (hex_sorted(have), hex_sorted(need), rounds)
    }

    /// The next message, which must be a NEG-ERR for `sub`; returns its reason.
    async fn neg_err(&mut self, sub: &str) -> String {
        let m = self.recv().await;
        assert_eq!((&m[0], &m[1]), (&json!("NEG-ERR"), &json!(sub)), "{m}");
        m[2].as_str().unwrap().to_owned()
    }

    /// Proves the connection still answers: a REQ for nothing ends with EOSE.
    async fn still_usable(&mut self) {
        self.send(json!(["REQ", "probe", { "limit": 0 }])).await;
        assert_eq!(self.recv().await, json!(["EOSE", "probe"]));
        self.send(json!(["CLOSE", "probe"])).await;
    }
}

fn key(e: &Event) -> EventKey {
    EventKey {
        created_at: e.created_at.as_secs(),
        id: e.id.to_bytes(),
    }
}

fn sorted_hex<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<String> {
    let mut v: Vec<String> = events.into_iter().map(|e| e.id.to_hex()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn reconciles_to_exactly_the_difference() {
    let node = node();
    let mut c = Client::connect(&node).await;
    let notes: Vec<Event> = (0..40)
        .map(|i| note(&node.owner, &format!("n{i}")))
        .collect();
    let (shared, relay_only) = notes.split_at(25);
    for e in &notes {
        c.publish(e).await;
    }
    // Outside the set REQ would give: a deleted note, and an event of another kind.
    let deleted = note(&node.owner, "deleted");
    c.publish(&deleted).await;
    let deletion = event(&node.owner, 5, "", vec![Tag::event(deleted.id)]);
    c.publish(&deletion).await;
    c.publish(&event(&node.owner, 7, "+", vec![Tag::event(shared[0].id)]))
        .await;
    let client_only: Vec<Event> = (0..15)
        .map(|i| note(&node.owner, &format!("c{i}")))
        .collect();

    let mut mine: Vec<EventKey> = shared.iter().chain(&client_only).map(key).collect();
    mine.push(key(&deleted));
    let filter = json!({ "authors": [node.owner.public_key().to_hex()], "kinds": [1] });
    let (have, need, _) = c.sync("s", filter.clone(), &mine).await;
    let mut expected_have = sorted_hex(&client_only);
    expected_have.push(deleted.id.to_hex());
    expected_have.sort();
    assert_eq!(have, expected_have, "have: what only the client holds");
    assert_eq!(
        need,
        sorted_hex(relay_only),
        "need: what only the relay holds"
    );

    // Once the client has what it needed, and the relay what it lacked, nothing differs.
    for e in &client_only {
        c.publish(e).await;
    }
    let all: Vec<EventKey> = notes.iter().chain(&client_only).map(key).collect();
    let (have, need, _) = c.sync("s", filter.clone(), &all).await;
    assert_eq!((have.len(), need.len()), (0, 0));

    // Thousands of ids only the client holds: more than one frame, so several rounds.
    let unknown: Vec<EventKey> = (0..3_000u32)
        .map(|i| {
            let mut id = [0x5a; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            EventKey {
                created_at: 1_700_000_000 + u64::from(i),
                id,
            }
        })
        .collect();
    let (have, need, rounds) = c
        .sync("big", filter, &[all, unknown.clone()].concat())
        .await;
    let mut expected: Vec<String> = unknown.iter().map(|k| hex::encode(k.id)).collect();
    expected.sort();
    assert_eq!((have, need), (expected, vec![]));
    assert!(rounds > 1, "{rounds} rounds");

    // The filter's limit bounds the set as it bounds a REQ: the newest 5 (of 55).
    let (have, need, _) = c.sync("l", json!({ "kinds": [1], "limit": 5 }), &[]).await;
    assert!(have.is_empty());
    assert_eq!(need.len(), 5);
    c.still_usable().await;
}

#[tokio::test]
async fn bad_requests_get_neg_err_and_the_connection_survives() {
    let node = node_with(Limits {
        max_subscriptions: 2,
        ..Limits::default()
    });
    let mut c = Client::connect(&node).await;
    let stored = note(&node.owner, "stored");
    c.publish(&stored).await;

    c.send(json!(["NEG-MSG", "nope", "61"])).await;
    assert!(c.neg_err("nope").await.starts_with("closed: "));

    c.send(json!(["NEG-OPEN", "x", {}, "zz"])).await;
    assert!(c
        .neg_err("x")
        .await
        .starts_with("error: the message is not valid hex"));
    c.send(json!(["NEG-OPEN", "x", {}, "610140"])).await;
    assert!(c
        .neg_err("x")
        .await
        .starts_with("error: bad negentropy message"));
    c.send(json!(["NEG-OPEN", "x", { "kinds": "one" }, "61"]))
        .await;
    assert!(c.neg_err("x").await.starts_with("invalid: bad filter"));
    c.send(json!(["NEG-OPEN", 5, {}, "61"])).await;
    let m = c.recv().await;
    assert_eq!(m[0], "NOTICE", "{m}");
    c.still_usable().await;

    // A newer protocol version than the relay speaks: it answers with its own (V1).
    c.send(json!(["NEG-OPEN", "v", {}, "62"])).await;
    assert_eq!(c.recv().await, json!(["NEG-MSG", "v", "61"]));

    // A bad message ends an open session; the id is unknown afterwards.
    c.send(json!(["NEG-MSG", "v", "0g"])).await;
    assert!(c.neg_err("v").await.starts_with("error: "));
    c.send(json!(["NEG-MSG", "v", "61"])).await;
    assert!(c.neg_err("v").await.starts_with("closed: "));

    // Sessions are capped per connection like subscriptions; reopening an id replaces it.
    let empty = Negentropy::owned(negentropy_storage(&[]).unwrap(), 0)
        .unwrap()
        .initiate()
        .unwrap();
    for sub in ["a", "b"] {
        c.send(json!(["NEG-OPEN", sub, {}, hex::encode(&empty)]))
            .await;
        assert_eq!(c.recv().await[0], "NEG-MSG");
    }
    c.send(json!(["NEG-OPEN", "c", {}, hex::encode(&empty)]))
        .await;
    assert!(c
        .neg_err("c")
        .await
        .starts_with("blocked: too many negentropy sessions"));
    let (have, need, _) = c.sync("a", json!({}), &[]).await;
    assert_eq!((have, need), (vec![], vec![stored.id.to_hex()]));
    c.still_usable().await;
}
