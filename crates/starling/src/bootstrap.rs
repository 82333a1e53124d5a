//! `starling bootstrap`: a public bootstrap node, as NostrP2P had. It has no owner and no
//! store and refuses every request; it serves the DHT (always in server mode) and relays
//! for NATed nodes, so new nodes have somewhere to start.

use anyhow::Context;
use starling_net::NetNode;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::args::BootstrapArgs;
use crate::datadir::DataDir;
use crate::netconfig::{NetworkConfig, NetworkFlags};
use crate::node::{p2p_line, wait_for_signal};

pub async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let dir = DataDir::resolve(args.dir.data_dir)?;
    let key = dir.ensure_node_keypair()?;
    let flags = NetworkFlags {
        listen: args.net.listen,
        bootstrap: args.net.bootstrap,
        public: true,
        broadcast: args.net.broadcast,
    };
    let settings = NetworkConfig::default().settings(&flags)?;
    let shutdown = CancellationToken::new();
    let node = NetNode::start_bootstrap(settings, key, shutdown.clone())
        .context("cannot start the bootstrap node")?;
    println!(
        "starling {} bootstrap node running",
        env!("CARGO_PKG_VERSION")
    );
    println!("  p2p     {}", p2p_line(node.network()).await);
    println!("  key     {}", dir.path().display());
    println!("Other nodes join with --bootstrap ADDRESS (one of the above). Press Ctrl-C to stop.");
    wait_for_signal().await;
    info!("shutting down");
    node.stop().await;
    Ok(())
}
