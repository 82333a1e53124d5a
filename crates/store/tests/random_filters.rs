//! Randomized check of the SQLite store's filter queries against a naive in-memory filter
//! (`starling_proto::matches` over every event, sorted newest first, ties by id). Seeded,
//! so a failure names the seed that reproduces it.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use starling_proto::{matches, Event, Filter, Keys, Kind, Tag, Timestamp};
use starling_store::test_suite::{event, rendered};
use starling_store::{EventStore, SqliteStore, StoreOptions};

const KINDS: [u16; 4] = [1, 6, 7, 1111];
const HASHTAGS: [&str; 4] = ["nostr", "rust", "p2p", "starling"];

fn random_events(rng: &mut StdRng, keys: &[Keys], n: usize) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::with_capacity(n);
    for i in 0..n {
        let author = &keys[rng.gen_range(0..keys.len())];
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let mut tags = Vec::new();
        if !events.is_empty() && rng.gen_bool(0.4) {
            tags.push(Tag::event(events[rng.gen_range(0..events.len())].id));
        }
        if rng.gen_bool(0.4) {
            tags.push(Tag::public_key(
                keys[rng.gen_range(0..keys.len())].public_key(),
            ));
        }
        if rng.gen_bool(0.3) {
            tags.push(Tag::hashtag(HASHTAGS[rng.gen_range(0..HASHTAGS.len())]));
        }
        // Few distinct timestamps, so ties (ordered by id) are common.
        let at = 1_000 + rng.gen_range(0..60u64);
        events.push(event(author, kind, &format!("event {i}"), at, tags));
    }
    events
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T], max: usize) -> Vec<T> {
    let n = rng.gen_range(1..=max.min(items.len()));
    items.choose_multiple(rng, n).cloned().collect()
}

fn random_filter(rng: &mut StdRng, keys: &[Keys], events: &[Event]) -> Filter {
    let mut f = Filter::new();
    if rng.gen_bool(0.15) {
        f = f.ids(pick(rng, events, 5).into_iter().map(|e| e.id));
    }
    if rng.gen_bool(0.4) {
        f = f.authors(pick(rng, keys, 3).into_iter().map(|k| k.public_key()));
    }
    if rng.gen_bool(0.4) {
        f = f.kinds(pick(rng, &KINDS, 2).into_iter().map(Kind::from_u16));
    }
    if rng.gen_bool(0.25) {
        f = f.events(pick(rng, events, 3).into_iter().map(|e| e.id));
    }
    if rng.gen_bool(0.2) {
        f = f.pubkeys(pick(rng, keys, 2).into_iter().map(|k| k.public_key()));
    }
    if rng.gen_bool(0.15) {
        let tags = pick(rng, &HASHTAGS, 2);
        f = f.hashtags(tags);
    }
    if rng.gen_bool(0.3) {
        f = f.since(Timestamp::from_secs(1_000 + rng.gen_range(0..60)));
    }
    if rng.gen_bool(0.3) {
        f = f.until(Timestamp::from_secs(1_000 + rng.gen_range(0..60)));
    }
    if rng.gen_bool(0.5) {
        f = f.limit(rng.gen_range(0..40));
    }
    f
}

fn naive(events: &[Event], filters: &[Filter]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for filter in filters {
        let mut hits: Vec<&Event> = events.iter().filter(|e| matches(filter, e)).collect();
        hits.sort();
        let limit = filter.limit.unwrap_or(usize::MAX);
        for e in hits.into_iter().take(limit) {
            if !out.iter().any(|o| o.id == e.id) {
                out.push(e.clone());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn queries_match_a_naive_filter() {
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys: Vec<Keys> = (0..6).map(|_| Keys::generate()).collect();
        let events = random_events(&mut rng, &keys, 400);
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("events.db"), StoreOptions::default()).unwrap();
        store.save_many(rendered(&events)).await.unwrap();
        let mut non_empty = 0;
        for round in 0..150 {
            let n = rng.gen_range(1..=3);
            let filters: Vec<Filter> = (0..n)
                .map(|_| random_filter(&mut rng, &keys, &events))
                .collect();
            let got = store.query(filters.clone()).await.unwrap();
            let want = naive(&events, &filters);
            assert_eq!(got, want, "seed {seed} round {round}: filters {filters:?}");
            non_empty += usize::from(!want.is_empty());
            let count = store
                .count(filters.iter().cloned().map(|f| f.remove_limit()).collect())
                .await
                .unwrap();
            assert_eq!(
                count as usize,
                naive(
                    &events,
                    &filters
                        .iter()
                        .cloned()
                        .map(|f| f.remove_limit())
                        .collect::<Vec<_>>()
                )
                .len()
            );
        }
        assert!(
            non_empty > 50,
            "seed {seed}: only {non_empty} rounds matched anything"
        );
    }
}
