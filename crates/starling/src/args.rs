//! The command line: every subcommand and flag, with the help text users see.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "starling",
    version,
    about = "A peer-to-peer microblogging node on the Nostr data model.",
    long_about = "A peer-to-peer microblogging node on the Nostr data model.\n\n\
    `starling run` starts your node: a Nostr relay for your own clients on ws://127.0.0.1:7777,\n\
    NostrP2P's REST API on the same port, and joins the peer-to-peer network (TCP port\n\
    4747 by default). The other commands set a node up or talk to a running one.\n\n\
    Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) to change how much they say."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new Nostr key pair (nsec, npub and hex public key).
    Keygen(KeygenArgs),
    /// Create a node's data directory: config, node key and owner key.
    Init(InitArgs),
    /// Run the node until Ctrl-C.
    Run(RunArgs),
    /// Run a public bootstrap node: it stores no events and has no owner; it helps other
    /// nodes find each other (DHT) and relays for nodes behind NAT.
    Bootstrap(BootstrapArgs),
    /// Load events from a JSONL file (one NIP-01 event per line) into the store.
    Import(ImportArgs),
    /// Write stored events as JSONL (one NIP-01 event per line), newest first.
    Export(ExportArgs),
    /// Copy the owner's events between the running node and standard Nostr relays
    /// (both ways unless --push or --pull), once or with --follow live.
    Bridge(BridgeArgs),
    /// Make a self-signed TLS certificate for exposing the API to other machines
    /// (tls/cert.pem and tls/key.pem in the data directory).
    TlsCert(TlsCertArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// Where the node's data lives.
#[derive(Debug, Clone, Args)]
pub struct DataDirArg {
    /// The node's data directory [default: the platform's data dir, e.g. ~/.local/share/starling]
    #[arg(long, env = "STARLING_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Use this existing secret key (nsec or hex) as the owner's key.
    #[arg(long, conflicts_with = "npub")]
    pub nsec: Option<String>,
    /// Only know the owner's public key (npub or hex); the node then cannot sign, and
    /// accepts events the owner signed elsewhere.
    #[arg(long)]
    pub npub: Option<String>,
    /// The API address to write into the config.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub api: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// Address of the client API (overrides the config); port 0 picks a free port.
    #[arg(long)]
    pub api: Option<String>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Run without the peer-to-peer network: a local relay only.
    #[arg(long, conflicts_with_all = ["listen", "bootstrap", "public", "broadcast"])]
    pub offline: bool,
}

/// Peer-to-peer flags of `run` and `bootstrap`.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// A multiaddr to listen on for peers, e.g. /ip4/0.0.0.0/tcp/4747 (repeatable;
    /// replaces the config's list).
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// A node to join the network through: a multiaddr or host:port (repeatable).
    #[arg(long, value_name = "MULTIADDR|HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// This node is reachable from the internet: serve the DHT and relay at once.
    #[arg(long)]
    pub public: bool,
    /// Join the broadcast topic (every public post of every broadcasting node).
    #[arg(long)]
    pub broadcast: bool,
}

#[derive(Debug, Args)]
pub struct TlsCertArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// A name or IP address clients will connect to (repeatable).
    #[arg(long, required = true, value_name = "NAME_OR_IP")]
    pub host: Vec<String>,
    /// Replace an existing certificate and key.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The JSONL file to read; `-` for standard input.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The file to write; `-` for standard output.
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
    /// Only events by this author (npub or hex; repeatable).
    #[arg(long, value_name = "NPUB")]
    pub author: Vec<String>,
    /// Only events of these kinds (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "KIND")]
    pub kinds: Vec<u16>,
    /// Only events created at or after this time (unix seconds).
    #[arg(long, value_name = "UNIX")]
    pub since: Option<u64>,
    /// Only events created at or before this time (unix seconds).
    #[arg(long, value_name = "UNIX")]
    pub until: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BridgeArgs {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The node's API address [default: the running node's, from the data directory]
    #[arg(long)]
    pub api: Option<String>,
    /// A relay to copy to and from, e.g. wss://relay.example.com (repeatable).
    #[arg(long, value_name = "URL", required = true)]
    pub relay: Vec<String>,
    /// Only copy the node's events to the relays.
    #[arg(long, conflicts_with = "pull")]
    pub push: bool,
    /// Only copy the relays' events into the node.
    #[arg(long)]
    pub pull: bool,
    /// Only events created at or after this time (unix seconds).
    #[arg(long, value_name = "UNIX")]
    pub since: Option<u64>,
    /// After the first pass, keep copying the owner's new events live until Ctrl-C
    /// (without it: one pass, then exit).
    #[arg(long)]
    pub follow: bool,
}

/// Options shared by the client commands.
#[derive(Debug, Args)]
pub struct ClientOpts {
    #[command(flatten)]
    pub dir: DataDirArg,
    /// The node's API address [default: the running node's, from the data directory]
    #[arg(long, global = true)]
    pub api: Option<String>,
    /// Sign with this secret key instead of the one in the data directory.
    #[arg(long, env = "STARLING_NSEC", global = true, hide_env_values = true)]
    pub nsec: Option<String>,
    /// Print JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Publish a text note.
    Post {
        text: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Reply to a note (by hex id or note1…).
    Reply {
        event: String,
        text: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Repost a note.
    Repost {
        event: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// React to a note ("+" is a like).
    React {
        event: String,
        #[arg(default_value = "+")]
        reaction: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Follow a user (npub or hex).
    Follow {
        npub: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Stop following a user.
    Unfollow {
        npub: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show a profile (yours by default) or set yours.
    Profile {
        #[command(subcommand)]
        action: Option<ProfileAction>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show the home timeline, newest first: your notes, those you follow, mentions of you.
    Timeline {
        /// How many notes to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep running and print new notes as they arrive.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Send a private message (NIP-17, end-to-end encrypted): `starling dm NPUB... TEXT`.
    /// Several recipients make a group conversation. The node must hold your nsec (or
    /// pass --nsec).
    Dm {
        /// The recipients (npub or hex), then the message.
        #[arg(required = true, num_args = 2.., value_name = "NPUB... TEXT")]
        args: Vec<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List your private conversations, or show one: `starling dms [NPUB]`.
    Dms {
        /// Show the one-to-one conversation with this user.
        npub: Option<String>,
        /// Messages shown at most (the newest).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Find a user's node: the home record (PeerId and addresses) in the DHT.
    Whereis {
        npub: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show the running node's status.
    Status {
        #[command(flatten)]
        opts: ClientOpts,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProfileAction {
    /// Show a user's profile.
    Show { npub: Option<String> },
    /// Set fields of your profile; fields not given keep their value.
    Set {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        about: Option<String>,
        #[arg(long)]
        picture: Option<String>,
    },
}
