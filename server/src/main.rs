//! `rill`: parse the configuration, set up logging, serve.

use clap::Parser;
use rill_server::config::Config;
use tracing_subscriber::EnvFilter;

/// mimalloc: the hot paths allocate many small short-lived values from
/// several threads; glibc's per-thread arenas kept hundreds of MB of freed
/// memory resident and spent a tenth of the time in malloc/free.
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
