//! The posting rounds of the replica-load run: in each round every user posts once, as
//! its node's owner — a note, or (with the reply share) a reply to one of its followees'
//! earlier posts, tagging that post (`e`) and its author (`p`), which the author's node and
//! home set receive as an inbox event. Texts are 100-300 bytes of words, like real notes.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::Serialize;
use starling_net::sim::SimNode;
use starling_proto::{EventBuilder, EventId, Kind, Tag};

use crate::gen::note_text;
use crate::graph::Graph;

/// What the rounds did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Posted {
    pub notes: usize,
    pub replies: usize,
    pub refused: usize,
    pub secs: f64,
    /// Each user's posted event ids, for the replication check.
    #[serde(skip)]
    pub ids: Vec<Vec<EventId>>,
}

/// Text sizes and pacing of the rounds.
pub struct Rounds {
    pub rounds: usize,
    pub reply_share: f64,
    pub text: (usize, usize),
    pub gap: Duration,
}

/// Runs the rounds; stops early at `deadline`.
pub async fn run(
    nodes: &[SimNode],
    graph: &Graph,
    r: &Rounds,
    rng: &mut StdRng,
    deadline: Instant,
) -> Posted {
    let started = Instant::now();
    let mut posted = Posted {
        ids: vec![Vec::new(); nodes.len()],
        ..Posted::default()
    };
    for round in 0..r.rounds {
        if Instant::now() > deadline {
            break;
        }
        for (i, node) in nodes.iter().enumerate() {
            let text = note_text(rng, r.text.0, r.text.1);
            let parent = if rng.gen_bool(r.reply_share) {
                graph.follows[i].choose(rng).and_then(|&a| {
                    let id = *posted.ids[a].choose(rng)?;
                    Some((a, id))
                })
            } else {
                None
            };
            let builder = match parent {
                Some((a, id)) => EventBuilder::new(Kind::TextNote, text)
                    .tags([Tag::event(id), Tag::public_key(nodes[a].keys.public_key())]),
                None => EventBuilder::new(Kind::TextNote, text),
            };
            match node.publish(builder).await {
                Ok(event) => {
                    posted.ids[i].push(event.id);
                    if parent.is_some() {
                        posted.replies += 1;
                    } else {
                        posted.notes += 1;
                    }
                }
                Err(e) => {
                    posted.refused += 1;
                    if posted.refused == 1 {
                        eprintln!("    a post was refused: {e}");
                    }
                }
            }
        }
        if round % 5 == 4 {
            eprintln!(
                "   round {}: {} posts",
                round + 1,
                posted.notes + posted.replies
            );
        }
        tokio::time::sleep(r.gap).await;
    }
    posted.secs = started.elapsed().as_secs_f64();
    posted
}
