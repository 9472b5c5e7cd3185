//! `rill`: parse the configuration, set up logging, serve.

use clap::Parser;
use rill_server::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc: the hot paths allocate many small short-lived values; with
/// glibc's malloc, malloc/free were a tenth of a query thread's profile, and
/// mimalloc made the windowed Nexmark queries about 1.5x faster.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("RILL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    rill_server::server::run(Config::parse()).await
}
