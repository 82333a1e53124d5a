//! The benchmark programs' log: to stderr (stdout carries their figures), at `RUST_LOG`'s
//! level, `warn` when it is unset.

use tracing_subscriber::EnvFilter;

/// The level from `RUST_LOG`, else `warn`.
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"))
}

/// Installs the plain stderr log.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .init();
}
