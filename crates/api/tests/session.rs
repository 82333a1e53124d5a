//! The relay session driven directly over channels: NIP-01 message flow, live delivery,
//! COUNT, and every kind of bad input answered clearly with the session still usable.

mod common;

use std::time::Duration;

use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use starling_api::run_session;
use starling_proto::{FinalizeEvent, Keys, Limits, Tag};

use common::{event, node, node_with, note, Node};

/// A client attached to a session over channels.
struct Client {
    tx: mpsc::Sender<String>,
    rx: mpsc::Receiver<String>,
}

impl Client {
    fn attach(node: &Node) -> Self {
        let (tx, incoming) = mpsc::channel(64);
        let (outgoing, rx) = mpsc::channel(1024);
        let slot = node.state.limiter.admit(None).expect("a connection slot");
        tokio::spawn(run_session(incoming, outgoing, node.state.clone(), slot));
        Self { tx, rx }
    }

    async fn send(&mut self, msg: impl ToString) {
        self.tx.send(msg.to_string()).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let text = tokio::time::timeout(Duration::from_secs(5), self.rx.next())
            .await
            .expect("an answer within 5 s")
            .expect("the session is open");
        serde_json::from_str(&text).unwrap()
    }

    async fn nothing_within(&mut self, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), self.rx.next())
            .await
            .is_err()
    }

    /// REQ and collect events until EOSE.
    async fn req(&mut self, sub: &str, filters: Value) -> Vec<Value> {
        let mut msg = vec![json!("REQ"), json!(sub)];
        msg.extend(filters.as_array().unwrap().iter().cloned());
        self.send(Value::Array(msg)).await;
        let mut events = Vec::new();
        loop {
            let m = self.recv().await;
            match m[0].as_str().unwrap() {
                "EVENT" => events.push(m[2].clone()),
                "EOSE" => return events,
                other => panic!("unexpected {other}: {m}"),
            }
        }
    }

    /// Proves the session still works and `id` is not stored.
    async fn still_usable_without(&mut self, id: &str) {
        let found = self.req("check", json!([{ "ids": [id] }])).await;
        assert!(found.is_empty(), "{id} must not be stored");
        self.send(json!(["CLOSE", "check"])).await;
    }
}

#[tokio::test]
async fn publishes_queries_and_streams_live() {
    let node = node();
    let mut c = Client::attach(&node);
    let first = note(&node.owner, "first");
    c.send(json!(["EVENT", first])).await;
    assert_eq!(c.recv().await, json!(["OK", first.id.to_hex(), true, ""]));
    c.send(json!(["EVENT", first])).await;
    assert_eq!(
        c.recv().await,
        json!([
            "OK",
            first.id.to_hex(),
            true,
            "duplicate: already have this event"
        ])
    );

    let stored = c.req("s", json!([{ "kinds": [1] }])).await;
    assert_eq!(stored, vec![serde_json::to_value(&first).unwrap()]);

    let mut other = Client::attach(&node);
    let second = note(&node.owner, "second");
    other.send(json!(["EVENT", second])).await;
    assert_eq!(other.recv().await[2], json!(true));
    assert_eq!(c.recv().await, json!(["EVENT", "s", second]));

    c.send(json!(["CLOSE", "s"])).await;
    c.send(json!(["COUNT", "n", { "kinds": [1] }])).await;
    assert_eq!(c.recv().await, json!(["COUNT", "n", { "count": 2 }]));
    other
        .send(json!(["EVENT", note(&node.owner, "third")]))
        .await;
    other.recv().await;
    assert!(
        c.nothing_within(200).await,
        "a closed subscription gets no live events"
    );
}

#[tokio::test]
async fn replaceable_and_deleted_events() {
    let node = node();
    let mut c = Client::attach(&node);
    let old = event(&node.owner, 0, r#"{"name":"old"}"#, vec![]);
    c.send(json!(["EVENT", old])).await;
    c.recv().await;
    let mut newer = event(&node.owner, 0, r#"{"name":"new"}"#, vec![]);
    if newer.created_at <= old.created_at {
        newer =
            starling_proto::EventBuilder::new(starling_proto::Kind::Metadata, r#"{"name":"new"}"#)
                .custom_created_at(old.created_at + 1)
                .finalize(&node.owner)
                .unwrap();
    }
    c.send(json!(["EVENT", newer])).await;
    assert_eq!(c.recv().await[2], json!(true));
    let profiles = c.req("p", json!([{ "kinds": [0] }])).await;
    assert_eq!(profiles, vec![serde_json::to_value(&newer).unwrap()]);
    c.send(json!(["EVENT", old])).await;
    let refused = c.recv().await;
    assert_eq!(refused[2], json!(false));
    assert!(refused[3].as_str().unwrap().starts_with("duplicate:"));

    let target = note(&node.owner, "to delete");
    c.send(json!(["EVENT", target])).await;
    c.recv().await;
    let deletion = event(&node.owner, 5, "", vec![Tag::event(target.id)]);
    c.send(json!(["EVENT", deletion])).await;
    assert_eq!(c.recv().await[2], json!(true));
    assert!(c
        .req("d", json!([{ "ids": [target.id.to_hex()] }]))
        .await
        .is_empty());
}

#[tokio::test]
async fn bad_input_is_refused_and_the_session_survives() {
    let limits = Limits {
        max_event_bytes: 4096,
        max_tags: 50,
        max_filters: 3,
        ..Limits::default()
    };
    let node = node_with(limits);
    let mut c = Client::attach(&node);

    // Invalid signature: another event's signature.
    let mut json_ev = serde_json::to_value(note(&node.owner, "a")).unwrap();
    json_ev["sig"] = json!(note(&node.owner, "b").sig.to_string());
    c.send(json!(["EVENT", json_ev])).await;
    let m = c.recv().await;
    assert_eq!(
        (m[1].clone(), m[2].clone()),
        (json_ev["id"].clone(), json!(false))
    );
    assert_eq!(m[3], json!("invalid: bad signature"));
    c.still_usable_without(json_ev["id"].as_str().unwrap())
        .await;

    // Id that is not the hash.
    let mut json_ev = serde_json::to_value(note(&node.owner, "c")).unwrap();
    json_ev["content"] = json!("changed");
    c.send(json!(["EVENT", json_ev])).await;
    assert_eq!(
        c.recv().await[3],
        json!("invalid: event id does not match the hash of the event")
    );
    c.still_usable_without(json_ev["id"].as_str().unwrap())
        .await;

    // Malformed JSON and an unknown message type.
    c.send("[\"EVENT\", {").await;
    assert!(c.recv().await[1]
        .as_str()
        .unwrap()
        .starts_with("error: could not parse message"));
    c.send(json!(["FOO", 1])).await;
    assert_eq!(
        c.recv().await,
        json!(["NOTICE", "error: unknown message type \"FOO\""])
    );

    // Oversized event and too many tags.
    let big = note(&node.owner, &"x".repeat(5000));
    c.send(json!(["EVENT", big])).await;
    assert!(c.recv().await[3]
        .as_str()
        .unwrap()
        .starts_with("invalid: event is"));
    c.still_usable_without(&big.id.to_hex()).await;
    let tagged = event(
        &node.owner,
        1,
        "t",
        (0..60).map(|i| Tag::hashtag(format!("t{i}"))).collect(),
    );
    c.send(json!(["EVENT", tagged])).await;
    assert_eq!(
        c.recv().await[3],
        json!("invalid: event has 60 tags, the limit is 50")
    );
    c.still_usable_without(&tagged.id.to_hex()).await;

    // Too many filters.
    c.send(json!(["REQ", "many", {}, {}, {}, {}])).await;
    let m = c.recv().await;
    assert_eq!(
        (m[0].clone(), m[1].clone()),
        (json!("CLOSED"), json!("many"))
    );
    assert!(m[2]
        .as_str()
        .unwrap()
        .starts_with("error: too many filters"));

    // Someone other than the owner.
    let foreign = note(&Keys::generate(), "not yours");
    c.send(json!(["EVENT", foreign])).await;
    let m = c.recv().await;
    assert_eq!(m[2], json!(false));
    assert!(m[3].as_str().unwrap().starts_with("blocked:"));
    c.still_usable_without(&foreign.id.to_hex()).await;
    assert_eq!(node.state.store.stats().await.unwrap().events, 0);
}

#[tokio::test]
async fn subscriptions_are_capped_per_connection() {
    let node = node_with(Limits {
        max_subscriptions: 2,
        ..Limits::default()
    });
    let mut c = Client::attach(&node);
    c.req("a", json!([{}])).await;
    c.req("b", json!([{}])).await;
    c.send(json!(["REQ", "c", {}])).await;
    let m = c.recv().await;
    assert_eq!((m[0].clone(), m[1].clone()), (json!("CLOSED"), json!("c")));
    c.req("a", json!([{}])).await; // replacing an open subscription is fine
}

/// EVENTs sent back to back (taken in batches) are answered one by one in the order sent,
/// refusals included; a REQ among them sees every EVENT sent before it; and EVENTs a
/// client sends just before it leaves are stored.
#[tokio::test]
async fn a_burst_of_events_is_answered_in_order() {
    let node = node();
    let mut c = Client::attach(&node);
    let stranger = Keys::generate();
    let mut sent = Vec::new();
    for i in 0..150 {
        let mut ev = serde_json::to_value(match i % 10 {
            3 => note(&stranger, &format!("not yours {i}")),
            _ => note(&node.owner, &format!("note {i}")),
        })
        .unwrap();
        if i % 10 == 7 {
            ev["sig"] = json!(note(&node.owner, "other").sig.to_string());
        }
        let accepted = !matches!(i % 10, 3 | 7);
        sent.push((ev["id"].as_str().unwrap().to_owned(), accepted));
        c.send(json!(["EVENT", ev])).await;
        if i == 74 {
            // Every id sent so far: refused ones must not be found, and live events of
            // later EVENTs do not match.
            let ids: Vec<_> = sent.iter().map(|(id, _)| id.clone()).collect();
            c.send(json!(["REQ", "mid", { "ids": ids }])).await;
        }
    }
    let mut stored_before_req = Vec::new();
    for (n, (id, accepted)) in sent.iter().enumerate() {
        let m = c.recv().await;
        assert_eq!(
            (m[0].as_str(), m[1].as_str()),
            (Some("OK"), Some(id.as_str())),
            "answer {n}"
        );
        assert_eq!(m[2], json!(*accepted), "EVENT {n}: {m}");
        if *accepted && n <= 74 {
            stored_before_req.push(id.clone());
        }
        if n == 74 {
            let mut seen = Vec::new();
            loop {
                let m = c.recv().await;
                match m[0].as_str().unwrap() {
                    "EVENT" => seen.push(m[2]["id"].as_str().unwrap().to_owned()),
                    "EOSE" => break,
                    other => panic!("unexpected {other}: {m}"),
                }
            }
            seen.sort();
            stored_before_req.sort();
            assert_eq!(seen, stored_before_req);
        }
    }

    let mut last = Client::attach(&node);
    let parting: Vec<_> = (0..3)
        .map(|i| note(&node.owner, &format!("parting {i}")))
        .collect();
    for ev in &parting {
        last.send(json!(["EVENT", ev])).await;
    }
    drop(last);
    let ids: Vec<_> = parting.iter().map(|e| e.id.to_hex()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let found = c.req("parting", json!([{ "ids": ids }])).await;
        c.send(json!(["CLOSE", "parting"])).await;
        if found.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the parting EVENTs were not stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
