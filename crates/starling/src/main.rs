//! The `starling` binary: the only place where the node's parts are wired together.
//! `run` starts a node; `keygen` and `init` set one up; `import` and `export` move events
//! in and out as JSONL; `bridge` copies the owner's events to and from Nostr relays;
//! `tls-cert` makes a certificate for an exposed API; the other subcommands are a CLI client that talks to a running node over its API.

mod apiconfig;
mod args;
mod bootstrap;
mod bridge;
mod client;
mod commands;
mod config;
mod datadir;
mod dms;
mod export;
mod import;
mod netconfig;
mod node;
mod output;
mod store;
mod tlscert;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen(a) => commands::keygen(a),
        Command::Init(a) => commands::init(a),
        Command::Run(a) => node::run(a).await,
        Command::Bootstrap(a) => bootstrap::run(a).await,
        Command::Import(a) => import::run(a).await,
        Command::Export(a) => export::run(a).await,
        Command::Bridge(a) => bridge::run(a).await,
        Command::TlsCert(a) => tlscert::run(a),
        Command::Client(c) => commands::client(c).await,
    }
}
