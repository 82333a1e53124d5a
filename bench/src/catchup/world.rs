//! The catch-up scenario's network: `extra` nodes that neither post nor follow (node 0 is
//! everyone's first bootstrap), one node per author, and the follower R, all on
//! `/memory/` addresses with seeded keys. R's network key is the one of many drawn that
//! puts R into the fewest followed authors' home sets: in a large network a follower is
//! almost never a member for its followees, and a member's own repair would bring their
//! events back besides the follower-side catch-up. The node of the naive method gets a
//! key drawn the same way.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use starling_net::libp2p::identity::Keypair;
use starling_net::libp2p::kad::{KBucketDistance as Distance, KBucketKey};
use starling_net::libp2p::PeerId;
use starling_net::sim::SimNode;
use starling_net::{homeset, HomeSettings};
use starling_proto::{EventBuilder, Keys, Kind, PublicKey, Tag};

use crate::gen::derive_keys;
use crate::netsim;

/// Label of the owners' keys (seeded, so home sets repeat per seed).
const OWNER_KEYS: u64 = 0x6361_7463_6875_7000;
/// Ranks beyond R at which a node still takes a home-set role (`SLACK` in
/// `crates/net/src/held.rs`).
const HOLD_SLACK: usize = 2;
/// Network keys drawn in search of one outside the followed authors' home sets.
const KEY_TRIES: usize = 20_000;

/// For how many followed authors a node's PeerId ranks inside the home set, and inside
/// the range where it still takes the role.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Ranks {
    pub member: usize,
    pub hold: usize,
}

/// The running scenario.
pub struct World {
    /// Extra nodes first, then one node per author.
    pub others: Vec<SimNode>,
    /// Dialable addresses of `others`.
    pub addrs: Vec<String>,
    pub extra: usize,
    /// The authors' public keys, in the order of their nodes.
    pub authors: Vec<PublicKey>,
    /// R's owner keys, directory, address and network key.
    pub r_keys: Keys,
    pub r_dir: PathBuf,
    pub r_addr: String,
    pub r_key: Keypair,
    /// Where R's PeerId ranks among the followed authors' home sets.
    pub r_ranks: Ranks,
    /// The running R, when it is up.
    pub r: Option<SimNode>,
    /// Where R (re)starts bootstrapping from: the same three nodes for both methods.
    pub r_bootstrap: Vec<String>,
    pub base: u64,
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts the extra nodes, the authors' nodes and R (not yet following anyone).
    pub async fn start(
        (extra, authors): (usize, usize),
        (seed, base): (u64, u64),
        rng: &mut StdRng,
        deadline: Instant,
    ) -> Result<World> {
        let dir = tempfile::Builder::new()
            .prefix("starling-catchup-")
            .tempdir()?;
        let owners: Vec<Keys> = (0..=(extra + authors) as u64)
            .map(|i| derive_keys(seed, OWNER_KEYS, i))
            .collect::<Result<_>>()?;
        let (r_keys, owners) = owners.split_last().context("no owners")?;
        let (others, addrs) = netsim::start_many(owners, base, dir.path(), rng, deadline).await?;
        let authors_pk: Vec<PublicKey> = owners[extra..].iter().map(|k| k.public_key()).collect();
        let r_keys = r_keys.clone();
        let mut world = World {
            others,
            addrs,
            extra,
            authors: authors_pk,
            r_keys,
            r_dir: dir.path().join("r"),
            r_addr: format!("/memory/{}", base + 9_000),
            r_key: Keypair::generate_ed25519(),
            r_ranks: Ranks::default(),
            r: None,
            r_bootstrap: Vec::new(),
            base,
            dir,
        };
        (world.r_key, world.r_ranks) = world.far_key(rng)?;
        world.r_bootstrap = world.addrs.choose_multiple(rng, 3).cloned().collect();
        let r = netsim::start(
            &world.r_dir,
            world.r_keys.clone(),
            &world.r_key,
            &world.r_addr,
            &world.r_bootstrap,
        )
        .await?;
        world.r = Some(r);
        Ok(world)
    }

    /// The authors' nodes.
    pub fn author_nodes(&self) -> &[SimNode] {
        &self.others[self.extra..]
    }

    /// Every node but R.
    pub fn other_refs(&self) -> Vec<&SimNode> {
        self.others.iter().collect()
    }

    /// Every running node (R included when up).
    pub fn running(&self) -> Vec<&SimNode> {
        self.others.iter().chain(self.r.as_ref()).collect()
    }

    pub fn r(&self) -> Result<&SimNode> {
        self.r.as_ref().context("R is not running")
    }

    /// R publishes its follow list: every author.
    pub async fn follow_all(&self) -> Result<()> {
        let tags = self.authors.iter().map(|pk| Tag::public_key(*pk));
        self.r()?
            .publish(EventBuilder::new(Kind::ContactList, "").tags(tags))
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The network key, of [`KEY_TRIES`] drawn, whose PeerId falls into the fewest
    /// followed authors' home sets (rank below R among all other nodes but the author's
    /// own, which home sets exclude), then the fewest hold ranges (R + slack). In a network
    /// barely larger than the followed set no key avoids them all (the XOR metric puts
    /// every node near some author), so the counts go into the report.
    pub fn far_key(&self, rng: &mut StdRng) -> Result<(Keypair, Ranks)> {
        let peers: Vec<PeerId> = self
            .others
            .iter()
            .map(|n| n.net.network().peer_id())
            .collect();
        let replicas = HomeSettings::default().replicas;
        // Per author: its key and the sorted distances of the candidates.
        let targets: Vec<(KBucketKey<Vec<u8>>, Vec<Distance>)> = self
            .authors
            .iter()
            .enumerate()
            .map(|(j, author)| {
                let key = homeset::target(author);
                let own = peers[self.extra + j];
                let mut d: Vec<Distance> = (peers.iter())
                    .filter(|p| **p != own)
                    .map(|p| key.distance(&KBucketKey::from(*p)))
                    .collect();
                d.sort_unstable();
                (key, d)
            })
            .collect();
        let mut best: Option<(Keypair, Ranks)> = None;
        for _ in 0..KEY_TRIES {
            let key = netsim::node_key(rng)?;
            let me = KBucketKey::from(key.public().to_peer_id());
            let mut ranks = Ranks::default();
            for (target, dists) in &targets {
                let d = target.distance(&me);
                let rank = dists.partition_point(|x| *x < d);
                ranks.member += usize::from(rank < replicas);
                ranks.hold += usize::from(rank < replicas + HOLD_SLACK);
            }
            let better = best
                .as_ref()
                .is_none_or(|(_, b)| (ranks.member, ranks.hold) < (b.member, b.hold));
            if better {
                let done = ranks.hold == 0;
                best = Some((key, ranks));
                if done {
                    break;
                }
            }
        }
        best.context("no key drawn")
    }

    /// Stops R (tasks, then its store's writer).
    pub async fn stop_r(&mut self) {
        if let Some(r) = self.r.take() {
            r.stop().await;
        }
    }

    /// Restarts R on its directory (same owner, same network key).
    pub async fn restart_r(&mut self) -> Result<()> {
        let r = netsim::start(
            &self.r_dir,
            self.r_keys.clone(),
            &self.r_key,
            &self.r_addr,
            &self.r_bootstrap,
        )
        .await?;
        self.r = Some(r);
        Ok(())
    }

    /// The directory for the naive method's copy of R's store.
    pub fn copy_dir(&self) -> PathBuf {
        self.dir.path().join("r-copy")
    }
}

/// Copies R's event store (the database and its WAL files, nothing else: no network key,
/// no outbox, no held roles) from `from` to `to`. R must be stopped.
pub fn copy_store(from: &Path, to: &Path) -> Result<u64> {
    std::fs::create_dir_all(to)?;
    let mut bytes = 0;
    for name in ["events.db", "events.db-wal", "events.db-shm"] {
        let src = from.join(name);
        if src.exists() {
            bytes += std::fs::copy(&src, to.join(name))
                .with_context(|| format!("copy {}", src.display()))?;
        }
    }
    Ok(bytes)
}
