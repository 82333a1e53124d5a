//! The backend-neutral store test suite. Each backend's tests call
//! [`store_test_suite!`](crate::store_test_suite) with a function that opens a fresh,
//! empty store; every check below then runs against that backend.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use starling_proto::{
    Event, EventBuilder, Filter, FinalizeEvent, Keys, Kind, RenderedEvent, Tag, Timestamp,
};

use crate::{EventKey, EventStore, SaveOutcome, StoreOptions};

/// A store opened for one test, with whatever must live as long as it (a temp dir).
pub struct TestStore {
    pub store: Box<dyn EventStore>,
    pub guard: Box<dyn Any + Send>,
}

/// Generates one `#[tokio::test]` per suite check, each opening its store with `$open`,
/// an `async fn(StoreOptions) -> TestStore`.
#[macro_export]
macro_rules! store_test_suite {
    ($open:path) => {
        $crate::store_test_suite!(@tests $open;
            stores_and_finds_by_id, ignores_duplicates, filters_by_each_field,
            orders_newest_first_and_limits, merges_several_filters, replaceable_keeps_newest,
            addressable_keeps_newest_per_d_tag, deletion_hides_targets, deletion_respects_authors,
            expired_events_are_hidden_and_removed, ephemeral_events_are_not_stored,
            counts_matches, keys_match_queries, pruning_keeps_protected_authors);
    };
    (@tests $open:path; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::test_suite::$name($open).await;
            }
        )*
    };
}

/// A signed event of `kind` by `keys` at `at` with `tags`.
pub fn event(keys: &Keys, kind: u16, content: &str, at: u64, tags: Vec<Tag>) -> Event {
    EventBuilder::new(Kind::from_u16(kind), content)
        .tags(tags)
        .custom_created_at(Timestamp::from_secs(at))
        .finalize(keys)
        .expect("sign")
}

/// `events` as a store takes them.
pub fn rendered(events: &[Event]) -> Vec<Arc<RenderedEvent>> {
    events
        .iter()
        .map(|e| Arc::new(RenderedEvent::new(e.clone())))
        .collect()
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.to_hex()).collect()
}

async fn open<F, Fut>(open: F) -> TestStore
where
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
{
    open(StoreOptions::default()).await
}

async fn save(store: &dyn EventStore, e: &Event) -> SaveOutcome {
    store
        .save(Arc::new(RenderedEvent::new(e.clone())))
        .await
        .expect("save")
}

async fn query(store: &dyn EventStore, filter: Filter) -> Vec<Event> {
    store.query(vec![filter]).await.expect("query")
}

pub async fn stores_and_finds_by_id<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(
    f: F,
) {
    let t = open(f).await;
    let keys = Keys::generate();
    let e = event(&keys, 1, "hello", 1_700_000_000, vec![]);
    assert_eq!(save(&*t.store, &e).await, SaveOutcome::Stored);
    assert_eq!(
        query(&*t.store, Filter::new().id(e.id)).await,
        vec![e.clone()]
    );
    let json = t
        .store
        .query_json(vec![Filter::new().id(e.id)])
        .await
        .unwrap();
    assert_eq!(json.len(), 1);
    assert_eq!(serde_json::from_str::<Event>(&json[0]).unwrap(), e);
    let stats = t.store.stats().await.unwrap();
    assert_eq!(stats.events, 1);
    assert_eq!(stats.event_bytes, json[0].len() as u64);
}

pub async fn ignores_duplicates<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(f: F) {
    let t = open(f).await;
    let e = event(&Keys::generate(), 1, "once", 1_700_000_000, vec![]);
    assert_eq!(save(&*t.store, &e).await, SaveOutcome::Stored);
    assert_eq!(save(&*t.store, &e).await, SaveOutcome::Duplicate);
    assert_eq!(query(&*t.store, Filter::new()).await.len(), 1);
    assert_eq!(t.store.stats().await.unwrap().events, 1);
}

pub async fn filters_by_each_field<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(
    f: F,
) {
    let t = open(f).await;
    let (a, b) = (Keys::generate(), Keys::generate());
    let root = event(&a, 1, "root", 100, vec![Tag::hashtag("nostr")]);
    let reply = event(
        &b,
        1,
        "reply",
        200,
        vec![Tag::event(root.id), Tag::public_key(a.public_key())],
    );
    let like = event(&b, 7, "+", 300, vec![Tag::event(root.id)]);
    for e in [&root, &reply, &like] {
        save(&*t.store, e).await;
    }
    let s = &*t.store;
    assert_eq!(
        ids(&query(s, Filter::new().author(a.public_key())).await),
        ids(std::slice::from_ref(&root))
    );
    assert_eq!(
        ids(&query(s, Filter::new().kind(Kind::Reaction)).await),
        ids(std::slice::from_ref(&like))
    );
    assert_eq!(
        ids(&query(s, Filter::new().event(root.id)).await),
        ids(&[like.clone(), reply.clone()])
    );
    assert_eq!(
        ids(&query(s, Filter::new().pubkey(a.public_key())).await),
        ids(std::slice::from_ref(&reply))
    );
    assert_eq!(
        ids(&query(s, Filter::new().hashtag("nostr")).await),
        ids(std::slice::from_ref(&root))
    );
    let window = Filter::new()
        .since(Timestamp::from_secs(150))
        .until(Timestamp::from_secs(250));
    assert_eq!(
        ids(&query(s, window).await),
        ids(std::slice::from_ref(&reply))
    );
    let both = Filter::new()
        .event(root.id)
        .kind(Kind::TextNote)
        .author(b.public_key());
    assert_eq!(ids(&query(s, both).await), ids(&[reply]));
    assert!(
        query(s, Filter::new().author(Keys::generate().public_key()))
            .await
            .is_empty()
    );
}

pub async fn orders_newest_first_and_limits<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let t = open(f).await;
    let keys = Keys::generate();
    let mut events: Vec<Event> = (0..20)
        .map(|i| event(&keys, 1, &format!("n{i}"), 1000 + (i * 7 % 20), vec![]))
        .collect();
    t.store.save_many(rendered(&events)).await.unwrap();
    events.sort();
    assert_eq!(query(&*t.store, Filter::new()).await, events);
    assert_eq!(
        query(&*t.store, Filter::new().limit(5)).await,
        events[..5].to_vec()
    );
    assert!(query(&*t.store, Filter::new().limit(0)).await.is_empty());
}

pub async fn merges_several_filters<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(
    f: F,
) {
    let t = open(f).await;
    let (a, b) = (Keys::generate(), Keys::generate());
    let ea = event(&a, 1, "a", 10, vec![]);
    let eb = event(&b, 1, "b", 20, vec![]);
    t.store
        .save_many(rendered(&[ea.clone(), eb.clone()]))
        .await
        .unwrap();
    let filters = vec![
        Filter::new().author(a.public_key()),
        Filter::new().kind(Kind::TextNote),
    ];
    assert_eq!(t.store.query(filters).await.unwrap(), vec![eb, ea]);
}

pub async fn replaceable_keeps_newest<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let t = open(f).await;
    let keys = Keys::generate();
    let old = event(&keys, 0, r#"{"name":"old"}"#, 100, vec![]);
    let new = event(&keys, 0, r#"{"name":"new"}"#, 200, vec![]);
    assert_eq!(save(&*t.store, &old).await, SaveOutcome::Stored);
    assert_eq!(save(&*t.store, &new).await, SaveOutcome::Stored);
    assert_eq!(save(&*t.store, &old).await, SaveOutcome::Superseded);
    let older = event(&keys, 0, r#"{"name":"older"}"#, 50, vec![]);
    assert_eq!(save(&*t.store, &older).await, SaveOutcome::Superseded);
    let got = query(
        &*t.store,
        Filter::new().author(keys.public_key()).kind(Kind::Metadata),
    )
    .await;
    assert_eq!(got, vec![new]);
    assert_eq!(t.store.stats().await.unwrap().events, 1);
    let follows = event(&keys, 3, "", 100, vec![]);
    assert_eq!(save(&*t.store, &follows).await, SaveOutcome::Stored);
    assert_eq!(
        query(&*t.store, Filter::new().author(keys.public_key()))
            .await
            .len(),
        2
    );
}

pub async fn addressable_keeps_newest_per_d_tag<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let t = open(f).await;
    let keys = Keys::generate();
    let a1 = event(&keys, 30023, "a v1", 100, vec![Tag::identifier("a")]);
    let a2 = event(&keys, 30023, "a v2", 200, vec![Tag::identifier("a")]);
    let b1 = event(&keys, 30023, "b v1", 150, vec![Tag::identifier("b")]);
    for e in [&a1, &b1, &a2] {
        assert_eq!(save(&*t.store, e).await, SaveOutcome::Stored);
    }
    let got = query(&*t.store, Filter::new().kind(Kind::from_u16(30023))).await;
    assert_eq!(got, vec![a2, b1]);
}

pub async fn deletion_hides_targets<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(
    f: F,
) {
    let t = open(f).await;
    let keys = Keys::generate();
    let note = event(&keys, 1, "oops", 100, vec![]);
    let article = event(&keys, 30023, "art", 100, vec![Tag::identifier("x")]);
    t.store
        .save_many(rendered(&[note.clone(), article.clone()]))
        .await
        .unwrap();
    let coord = format!("30023:{}:x", keys.public_key().to_hex());
    let a_tag = Tag::parse(["a", coord.as_str()]).unwrap();
    let deletion = event(&keys, 5, "", 150, vec![Tag::event(note.id), a_tag]);
    assert_eq!(save(&*t.store, &deletion).await, SaveOutcome::Stored);
    assert!(query(&*t.store, Filter::new().id(note.id)).await.is_empty());
    assert!(query(&*t.store, Filter::new().id(article.id))
        .await
        .is_empty());
    assert_eq!(
        query(&*t.store, Filter::new().kind(Kind::EventDeletion)).await,
        vec![deletion]
    );
    assert_eq!(save(&*t.store, &note).await, SaveOutcome::Deleted);
    assert_eq!(save(&*t.store, &article).await, SaveOutcome::Deleted);
    let newer = event(&keys, 30023, "art v2", 200, vec![Tag::identifier("x")]);
    assert_eq!(save(&*t.store, &newer).await, SaveOutcome::Stored);
    assert_eq!(t.store.stats().await.unwrap().events, 2);
}

pub async fn deletion_respects_authors<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let t = open(f).await;
    let (alice, mallory) = (Keys::generate(), Keys::generate());
    let note = event(&alice, 1, "mine", 100, vec![]);
    save(&*t.store, &note).await;
    let forged = event(&mallory, 5, "", 150, vec![Tag::event(note.id)]);
    assert_eq!(save(&*t.store, &forged).await, SaveOutcome::Stored);
    assert_eq!(
        query(&*t.store, Filter::new().id(note.id)).await,
        vec![note]
    );
}

pub async fn expired_events_are_hidden_and_removed<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let t = open(f).await;
    let keys = Keys::generate();
    let now = Timestamp::now();
    let gone = event(&keys, 1, "gone", 100, vec![Tag::expiration(now - 60)]);
    let live = event(&keys, 1, "live", 100, vec![Tag::expiration(now + 3600)]);
    t.store
        .save_many(rendered(&[gone.clone(), live.clone()]))
        .await
        .unwrap();
    assert_eq!(query(&*t.store, Filter::new()).await, vec![live]);
    assert_eq!(t.store.remove_expired(now).await.unwrap(), 1);
    assert_eq!(t.store.stats().await.unwrap().events, 1);
}

pub async fn ephemeral_events_are_not_stored<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let t = open(f).await;
    let e = event(&Keys::generate(), 20001, "now only", 100, vec![]);
    assert_eq!(save(&*t.store, &e).await, SaveOutcome::Ephemeral);
    assert!(query(&*t.store, Filter::new()).await.is_empty());
}

pub async fn counts_matches<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(f: F) {
    let t = open(f).await;
    let (a, b) = (Keys::generate(), Keys::generate());
    let events: Vec<Event> = (0..5)
        .map(|i| event(&a, 1, &format!("{i}"), 10 + i, vec![]))
        .chain([event(&b, 7, "+", 5, vec![])])
        .collect();
    t.store.save_many(rendered(&events)).await.unwrap();
    let s = &*t.store;
    assert_eq!(
        s.count(vec![Filter::new().author(a.public_key())])
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        s.count(vec![Filter::new().author(a.public_key()).limit(2)])
            .await
            .unwrap(),
        5
    );
    let overlap = vec![
        Filter::new().author(a.public_key()),
        Filter::new().since(Timestamp::from_secs(12)),
    ];
    assert_eq!(s.count(overlap).await.unwrap(), 5);
    assert_eq!(s.count(vec![Filter::new()]).await.unwrap(), 6);
}

pub async fn keys_match_queries<F: Fn(StoreOptions) -> Fut, Fut: Future<Output = TestStore>>(f: F) {
    let t = open(f).await;
    let (a, b) = (Keys::generate(), Keys::generate());
    let tag = Tag::public_key(b.public_key());
    let events: Vec<Event> = (0..6)
        .map(|i| event(&a, 1, &format!("{i}"), 10 + i, vec![]))
        .chain([
            event(&b, 7, "+", 5, vec![]),
            event(&a, 1, "@b", 3, vec![tag]),
        ])
        .collect();
    t.store.save_many(rendered(&events)).await.unwrap();
    let s = &*t.store;
    let key = |e: &Event| EventKey {
        created_at: e.created_at.as_secs(),
        id: e.id.to_bytes(),
    };
    for filters in [
        vec![Filter::new().author(a.public_key())],
        vec![Filter::new().author(a.public_key()).limit(2)],
        vec![Filter::new().pubkey(b.public_key())],
        vec![
            Filter::new().author(b.public_key()),
            Filter::new().since(Timestamp::from_secs(14)),
        ],
        vec![Filter::new()],
    ] {
        let expected: Vec<EventKey> = s
            .query(filters.clone())
            .await
            .unwrap()
            .iter()
            .map(key)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(s.keys(filters, 5000).await.unwrap(), expected);
    }
    // `max` bounds each filter without a smaller limit of its own.
    assert_eq!(s.keys(vec![Filter::new()], 3).await.unwrap().len(), 3);
}

pub async fn pruning_keeps_protected_authors<
    F: Fn(StoreOptions) -> Fut,
    Fut: Future<Output = TestStore>,
>(
    f: F,
) {
    let owner = Keys::generate();
    let options = StoreOptions {
        max_bytes: Some(20_000),
        protected_authors: vec![owner.public_key()],
    };
    let t = f(options).await;
    let other = Keys::generate();
    let mine: Vec<Event> = (0..10)
        .map(|i| event(&owner, 1, &format!("mine {i}"), 10 + i, vec![]))
        .collect();
    let theirs: Vec<Event> = (0..200)
        .map(|i| event(&other, 1, &"x".repeat(100), 5 + i, vec![]))
        .collect();
    t.store.save_many(rendered(&mine)).await.unwrap();
    for chunk in theirs.chunks(20) {
        t.store.save_many(rendered(chunk)).await.unwrap();
    }
    let stats = t.store.stats().await.unwrap();
    assert!(
        stats.event_bytes <= 20_000,
        "stored {} bytes",
        stats.event_bytes
    );
    let kept_mine = query(&*t.store, Filter::new().author(owner.public_key())).await;
    assert_eq!(kept_mine.len(), 10);
    let kept_theirs = query(&*t.store, Filter::new().author(other.public_key())).await;
    assert!(!kept_theirs.is_empty() && kept_theirs.len() < 200);
    let newest = theirs.iter().max_by_key(|e| e.created_at).unwrap();
    assert_eq!(
        kept_theirs[0].id, newest.id,
        "pruning drops the oldest first"
    );
    assert_eq!(stats.events as usize, 10 + kept_theirs.len());
}
