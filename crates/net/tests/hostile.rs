//! A hostile peer sends a malformed message, an oversized one and badly signed events to
//! an honest node. Each is rejected, nothing bad is stored, the third strike gets the
//! peer disconnected and blocked, and an honest peer's delivery goes on.

mod common;

use std::time::Duration;

use common::Node;
use futures_util::StreamExt;
use starling_net::libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use starling_net::libp2p::request_response::{self, Codec, ProtocolSupport};
use starling_net::libp2p::swarm::SwarmEvent;
use starling_net::libp2p::{noise, tcp, yamux, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use starling_net::wire::{Request, RequestBody, ResponseBody, PROTOCOL};
use starling_proto::{EventBuilder, Filter, FinalizeEvent, Keys, Kind, Tag};
use starling_store::EventStore;

/// Sends whatever bytes it is given on starling's protocol.
#[derive(Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        let mut v = Vec::new();
        io.take(8 << 20).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()> {
        io.write_all(&res).await
    }
}

type Raw = request_response::Behaviour<RawCodec>;

fn hostile_swarm() -> Swarm<Raw> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            Raw::with_codec(
                RawCodec,
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

fn cbor(request: &Request) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), request).unwrap()
}

/// Sends one raw request and waits for its outcome; true if the connection closed.
async fn send(swarm: &mut Swarm<Raw>, peer: PeerId, bytes: Vec<u8>) -> bool {
    swarm.behaviour_mut().send_request(&peer, bytes);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .expect("an outcome in time");
        match event {
            SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => return true,
            SwarmEvent::Behaviour(request_response::Event::Message { .. })
            | SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                return false
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peer_is_cut_off_and_honest_delivery_goes_on() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let honest = Node::start(None).await;
    let addr = honest.addr().await;
    let target = honest.net.network().peer_id();
    let mut hostile = hostile_swarm();
    hostile.dial(addr.clone()).unwrap();

    // 1: not CBOR at all.
    assert!(
        !send(
            &mut hostile,
            target,
            b"\xff\x00 definitely not a request".to_vec()
        )
        .await
    );
    // 2: larger than any message may be (the codec stops reading at its bound).
    let oversized = vec![0x41u8; 5 * 1024 * 1024];
    let closed = send(&mut hostile, target, oversized).await;
    assert!(!closed, "two strikes must not disconnect yet");
    // 3: a well-formed push of an event whose signature does not match.
    let author = Keys::generate();
    let good = EventBuilder::new(Kind::TextNote, "reply")
        .tags([Tag::public_key(honest.keys.public_key())])
        .finalize(&author)
        .unwrap();
    let forged = good.as_json().replace("\"reply\"", "\"forged\"");
    let push = Request::new(RequestBody::Push {
        events: vec![forged],
    });
    let closed = send(&mut hostile, target, cbor(&push)).await
        || tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let SwarmEvent::ConnectionClosed {
                    num_established: 0, ..
                } = hostile.select_next_some().await
                {
                    return;
                }
            }
        })
        .await
        .is_ok();
    let status = honest.net.network().status().await.unwrap();
    // The third strike disconnects and blocks the peer.
    assert!(closed, "the hostile peer was not disconnected: {status:?}");
    assert_eq!(status.banned_peers, 1);
    // Dialling again is refused.
    hostile.dial(addr).unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match hostile.select_next_some().await {
                SwarmEvent::ConnectionClosed { .. }
                | SwarmEvent::OutgoingConnectionError { .. } => return true,
                SwarmEvent::Behaviour(request_response::Event::Message { .. }) => return false,
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(refused, Ok(true), "a blocked peer got back in");

    // Nothing forged was stored.
    let stored = honest
        .store
        .query(vec![Filter::new().author(author.public_key())])
        .await
        .unwrap();
    assert!(stored.is_empty());

    // An honest peer's push of a reply is accepted and stored.
    let friend = Node::start(None).await;
    let delivered = friend
        .net
        .network()
        .request(
            target,
            vec![honest.addr().await],
            Request::new(RequestBody::Push {
                events: vec![good.as_json()],
            }),
        )
        .await
        .expect("honest push delivered");
    assert_eq!(
        delivered.response.body,
        ResponseBody::Ack {
            results: vec![None]
        }
    );
    let stored = honest
        .store
        .query(vec![Filter::new().id(good.id)])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
}

/// A peer that fires well-formed requests far faster than its budget: it is answered
/// `rate-limited:` (unread), struck for it, and banned, while an honest peer's request
/// made during the flood is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_peer_is_refused_then_banned_and_honest_requests_are_answered() {
    let target_node = Node::start_custom("/ip4/127.0.0.1/tcp/0".parse().unwrap(), None, |s| {
        s.peer_requests = starling_core::Rate::new(20, 50);
        s.peer_max_in_flight = 4;
    })
    .await;
    let addr = target_node.addr().await;
    let target = target_node.net.network().peer_id();
    let friend = Node::start(None).await;
    let mut hostile = hostile_swarm();
    hostile.dial(addr.clone()).unwrap();

    let fetch = cbor(&Request::new(RequestBody::Fetch {
        filters: vec![r#"{"kinds":[1],"limit":10}"#.into()],
        limit: 10,
    }));
    let (mut answered, mut limited, mut closed) = (0, 0, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let honest = tokio::spawn({
        let net = friend.net.network().clone();
        let addr = addr.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = std::time::Instant::now();
            let answer = net
                .request(
                    target,
                    vec![addr],
                    Request::new(RequestBody::Fetch {
                        filters: vec![r#"{"kinds":[0],"limit":1}"#.into()],
                        limit: 1,
                    }),
                )
                .await;
            (answer, started.elapsed())
        }
    });
    // Batches of 50 requests without waiting, until the node cuts the flooder off.
    'flood: for _ in 0..40 {
        for _ in 0..50 {
            hostile.behaviour_mut().send_request(&target, fetch.clone());
        }
        let batch_end = tokio::time::Instant::now() + Duration::from_millis(200);
        loop {
            let Ok(event) =
                tokio::time::timeout_at(batch_end.min(deadline), hostile.select_next_some()).await
            else {
                break;
            };
            match event {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    answered += 1;
                    if String::from_utf8_lossy(&response).contains("rate-limited:") {
                        limited += 1;
                    }
                }
                SwarmEvent::ConnectionClosed {
                    num_established: 0, ..
                } => {
                    closed = true;
                    break 'flood;
                }
                _ => {}
            }
        }
    }
    let status = target_node.net.network().status().await.unwrap();
    assert!(
        limited >= 100,
        "{limited} of {answered} answers were rate-limited"
    );
    assert!(
        closed,
        "the flooding peer was not disconnected ({answered} answers, {limited} rate-limited)"
    );
    assert_eq!(status.banned_peers, 1, "{status:?}");
    let (answer, took) = honest.await.unwrap();
    let answer = answer.expect("the honest request was answered during the flood");
    assert!(
        matches!(answer.response.body, ResponseBody::Events { .. }),
        "honest fetch got {:?}",
        answer.response.body
    );
    assert!(
        took < Duration::from_secs(10),
        "the honest request took {took:?}"
    );
}
