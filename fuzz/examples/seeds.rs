//! Writes the seed corpus of every fuzz target to `fuzz/corpus/<target>/`: valid inputs
//! made with the node's own types (events signed by the fixture key, CBOR from the wire
//! types, real negentropy rounds) and near-valid ones a byte or a field away.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds
//!
//! Re-running it rewrites the same files: the signatures are deterministic. Built with
//! cargo-fuzz's flags (see README.md) it links the coverage callbacks from libFuzzer.

// The fuzz targets' dependencies are built with coverage instrumentation under cargo
// fuzz; linking libFuzzer's runtime resolves its callbacks in that build too.
extern crate libfuzzer_sys;

use std::fs;
use std::path::Path;

use negentropy::{Id, Negentropy};
use starling_fuzz::fixture::{signer, storage, NOW};
use starling_net::home::HOME_RECORD_KIND;
use starling_net::libp2p::identity::Keypair;
use starling_net::libp2p::{Multiaddr, PeerId};
use starling_net::wire::{Request, RequestBody, Response, ResponseBody, WireMember};
use starling_proto::{Event, Filter, Kind, Tag, Tags, Timestamp};

type Seeds = Vec<(String, Vec<u8>)>;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let events = sample_events();
    let texts: Vec<String> = events.iter().map(Event::as_json).collect();
    write(&root, "event_json", event_json(&texts));
    write(&root, "client_message", client_message(&texts));
    write(&root, "rest_body", rest_body(&texts));
    write(&root, "p2p_wire", p2p_wire(&texts));
    write(&root, "negentropy", negentropy_rounds());
}

fn write(root: &Path, target: &str, seeds: Seeds) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).expect("create the corpus folder");
    for (name, bytes) in &seeds {
        fs::write(dir.join(name), bytes).expect("write a seed");
    }
    println!("{target}: {} seeds", seeds.len());
}

fn seed(name: impl Into<String>, bytes: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (name.into(), bytes.as_ref().to_vec())
}

fn tag(parts: &[&str]) -> Tag {
    Tag::parse(parts.iter().copied()).expect("a tag has a name")
}

fn sign(kind: u16, content: &str, tags: Vec<Tag>, at: u64) -> Event {
    signer().sign_parts(
        Timestamp::from(at),
        Kind::from_u16(kind),
        Tags::from_list(tags),
        content.to_owned(),
    )
}

fn peer() -> PeerId {
    Keypair::ed25519_from_bytes([7; 32])
        .expect("32 bytes make an ed25519 key")
        .public()
        .to_peer_id()
}

fn home_record() -> Event {
    let peer = peer().to_string();
    sign(
        HOME_RECORD_KIND.as_u16(),
        "",
        vec![
            tag(&["peer", &peer]),
            tag(&["addr", "/ip4/127.0.0.1/tcp/4001"]),
            tag(&[
                "addr",
                &format!("/ip4/10.0.0.1/tcp/1/p2p/{peer}/p2p-circuit"),
            ]),
            tag(&["addr", "/dns4/example.invalid/udp/9/quic-v1"]),
        ],
        NOW,
    )
}

/// Events of the kinds and shapes the node meets: notes, replies, reactions, profiles,
/// follow lists, addressable and expiring events, gift wraps, home records.
fn sample_events() -> Vec<Event> {
    let me = signer().keys().public_key().to_hex();
    let id = "5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36";
    vec![
        sign(1, "hello starling", vec![], NOW - 60),
        sign(
            1,
            "a reply with \"quotes\", \\ and é 🐦",
            vec![
                tag(&["e", id, "", "root"]),
                tag(&["p", &me]),
                tag(&["t", "nostr"]),
            ],
            NOW - 30,
        ),
        sign(7, "+", vec![tag(&["e", id]), tag(&["p", &me])], NOW - 20),
        sign(0, r#"{"name":"fuzz","about":"x"}"#, vec![], NOW - 10),
        sign(3, "", vec![tag(&["p", &me, "ws://127.0.0.1:1"])], NOW - 5),
        sign(30_023, "long form", vec![tag(&["d", "slug"])], NOW),
        sign(1, "expires", vec![tag(&["expiration", "1"])], NOW),
        sign(1059, "AgVmYWtl", vec![tag(&["p", &me])], NOW),
        home_record(),
    ]
}

fn event_json(texts: &[String]) -> Seeds {
    let mut seeds: Seeds = texts
        .iter()
        .enumerate()
        .map(|(i, t)| seed(format!("valid-{i}.json"), t))
        .collect();
    let first = &texts[0];
    seeds.push(seed(
        "bad-id.json",
        first.replacen("\"id\":\"", "\"id\":\"0", 1),
    ));
    seeds.push(seed(
        "changed-content.json",
        first.replace("hello", "hellp"),
    ));
    seeds.push(seed(
        "spaced.json",
        first.replace(',', " ,\n ").replace(':', " : "),
    ));
    seeds.push(seed(
        "missing-sig.json",
        first.split(",\"sig\"").next().unwrap().to_owned() + "}",
    ));
    seeds.push(seed(
        "not-an-event.json",
        r#"{"id":1,"tags":[[]],"kind":-1}"#,
    ));
    seeds
}

fn client_message(texts: &[String]) -> Seeds {
    let mut client = Negentropy::owned(storage(40), 0).expect("a sealed set");
    let initial = hex(&client.initiate().expect("the first message"));
    vec![
        seed("event.json", format!(r#"["EVENT",{}]"#, texts[1])),
        seed("auth.json", format!(r#"["AUTH",{}]"#, texts[0])),
        seed(
            "req.json",
            r##"["REQ","sub",{"kinds":[1,7],"authors":["79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"],"#p":["79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"],"since":1,"until":2000000000,"limit":20},{"ids":["5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36"]}]"##,
        ),
        seed(
            "count.json",
            r##"["COUNT","c",{"#t":["nostr"],"kinds":[1]}]"##,
        ),
        seed("close.json", r#"["CLOSE","sub"]"#),
        seed("req-no-filter.json", r#"["REQ","s"]"#),
        seed("unknown.json", r#"["FOO",1,{}]"#),
        seed(
            "neg-open.json",
            format!(r#"["NEG-OPEN","n",{{"kinds":[1]}},"{initial}"]"#),
        ),
        seed("neg-msg.json", format!(r#"["NEG-MSG","n","{initial}"]"#)),
        seed("neg-close.json", r#"["NEG-CLOSE","n"]"#),
        seed("neg-bad-hex.json", r#"["NEG-MSG","n","6z"]"#),
    ]
}

fn rest_body(texts: &[String]) -> Seeds {
    let me = signer().keys().public_key().to_hex();
    vec![
        seed(
            "timeline.json",
            r#"{"kinds":[40000],"since":-1,"until":0,"limit":20}"#,
        ),
        seed(
            "timeline-window.json",
            r#"{"kinds":[40000],"since":1700000000.5,"until":1800000000,"limit":-1}"#,
        ),
        seed(
            "post.json",
            format!(
                r#"{{"kinds":[1],"ids":["5c83da77af1dec6d7289834998ad7aafbd9e2191396d75ec3cc27f5a77226f36"],"authors":["{me}"]}}"#
            ),
        ),
        seed(
            "profile.json",
            format!(r#"{{"kinds":[0],"authors":["{me}"],"limit":1}}"#),
        ),
        seed(
            "follows.json",
            format!(r#"{{"kinds":[3],"authors":["{me}"]}}"#),
        ),
        seed("other-kind.json", r#"{"kinds":[7],"ids":[],"authors":[]}"#),
        seed("publish-note.json", &texts[0]),
        seed("publish-reply.json", &texts[1]),
        seed("publish-profile.json", &texts[3]),
    ]
}

fn cbor(value: &impl serde::Serialize) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), value).expect("wire types encode")
}

fn p2p_wire(texts: &[String]) -> Seeds {
    let me = signer().keys().public_key().to_hex();
    let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("an address");
    let member = WireMember {
        peer: peer().to_string(),
        addrs: vec![addr.to_string(), "/ip6/::1/udp/4001/quic-v1".into()],
    };
    let filter = Filter::new().kind(Kind::TextNote).limit(10).as_json();
    let mut client = Negentropy::owned(storage(40), 0).expect("a sealed set");
    let initial = client.initiate().expect("the first message");
    let mut server = Negentropy::owned(storage(20), 0).expect("a sealed set");
    let answer = server.reconcile(&initial).expect("an answer");
    let requests = [
        (
            "push",
            RequestBody::Push {
                events: texts[..3].to_vec(),
            },
        ),
        (
            "subscribe",
            RequestBody::Subscribe {
                authors: vec![me.clone()],
                since: NOW - 3600,
                lease_secs: 600,
                addrs: vec![addr.to_string()],
            },
        ),
        (
            "unsubscribe",
            RequestBody::Unsubscribe {
                authors: vec![me.clone()],
            },
        ),
        (
            "fetch",
            RequestBody::Fetch {
                filters: vec![filter.clone()],
                limit: 50,
            },
        ),
        ("moved", RequestBody::Moved { authors: vec![me] }),
        (
            "reconcile",
            RequestBody::Reconcile {
                filter,
                message: initial.into(),
            },
        ),
    ];
    let responses = [
        (
            "ack",
            ResponseBody::Ack {
                results: vec![None, Some("invalid: bad signature".into())],
            },
        ),
        (
            "events",
            ResponseBody::Events {
                events: texts[..2].to_vec(),
                more: true,
            },
        ),
        (
            "subscribed",
            ResponseBody::Subscribed {
                events: vec![texts[0].clone()],
                more: false,
                members: vec![member.clone()],
            },
        ),
        (
            "refused",
            ResponseBody::Refused {
                reason: "busy".into(),
            },
        ),
        (
            "redirect",
            ResponseBody::Redirect {
                members: vec![member],
            },
        ),
        (
            "reconciled",
            ResponseBody::Reconciled {
                message: answer.into(),
            },
        ),
    ];
    let mut seeds: Seeds = requests
        .into_iter()
        .map(|(name, body)| seed(format!("req-{name}.cbor"), cbor(&Request::new(body))))
        .collect();
    seeds.extend(
        responses
            .into_iter()
            .map(|(name, body)| seed(format!("resp-{name}.cbor"), cbor(&Response::new(body)))),
    );
    seeds.push(seed("home-record.json", home_record().as_json()));
    seeds.push(seed("garbage.cbor", b"\xff\x00garbage"));
    seeds
}

/// Real rounds: a client's first and second messages and a server's answers, each after
/// the size byte of the set it is fed to.
fn negentropy_rounds() -> Seeds {
    let mut seeds = Seeds::new();
    for (ours, theirs) in [(40u8, 20usize), (0, 30), (200, 180), (255, 0)] {
        let mut client = Negentropy::owned(storage(theirs), 0).expect("a sealed set");
        let first = client.initiate().expect("the first message");
        let mut server = Negentropy::owned(storage(usize::from(ours)), 0).expect("a sealed set");
        let answer = server.reconcile(&first).expect("an answer");
        let (mut have, mut need): (Vec<Id>, Vec<Id>) = (Vec::new(), Vec::new());
        let second = client
            .reconcile_with_ids(&answer, &mut have, &mut need)
            .expect("a round");
        let with_size = |m: &[u8]| [&[ours][..], m].concat();
        seeds.push(seed(format!("first-{ours}-{theirs}"), with_size(&first)));
        seeds.push(seed(format!("answer-{ours}-{theirs}"), with_size(&answer)));
        if let Some(second) = second {
            seeds.push(seed(format!("second-{ours}-{theirs}"), with_size(&second)));
        }
    }
    seeds.push(seed("bad-version", [40, 0x51, 0]));
    seeds
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
