//! The listener: accepts connections until SIGINT/SIGTERM, then commits and
//! stops every query.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::config::Config;
use crate::engine::Engine;
use crate::pgwire::Factory;

/// Runs the server until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let engine = tokio::task::block_in_place(|| Engine::open(config))?;
    if tokio::task::block_in_place(|| crate::exec::commands::ensure_topic(&engine)) {
        crate::exec::commands::replay(&engine).await?;
    }
    let factory = Arc::new(Factory::new(engine.clone()));
    info!(%addr, data_dir = %engine.config.data_dir.display(), startup_ms = started.elapsed().as_millis() as u64, "rill is ready");
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    let factory = factory.clone();
                    tokio::spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, factory).await {
                            warn!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => warn!(error = %e, "accept failed"),
            },
            _ = &mut shutdown => break,
        }
    }
    info!("shutting down");
    tokio::task::block_in_place(|| engine.shutdown());
    info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
