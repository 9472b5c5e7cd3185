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
    disable_transparent_huge_pages();
    rill_server::server::run(Config::parse()).await
}

/// Transparent huge pages off for this process, as Redis and most databases
/// advise: where the kernel's setting is `always`, every first touch of a
/// 2 MB region of the heap zeroes all of it, and memory the allocator hands
/// back in small pieces splits its huge pages. On the Nexmark hop query the
/// kernel's zeroing was a third of the query thread's time; without huge
/// pages the query ran about 25% faster in less memory.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(error = %e, "transparent huge pages stay on");
    }
}
