//! `yichuang http` (hidden): runs only the node's HTTP server on a data folder.
//! Tests and a stand-alone web front use it; `serve` runs the same server beside sync.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::DirArg;
use crate::http::{self, AppState};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Address to listen on; loopback unless told otherwise. Port 0 picks a free port.
    #[arg(long = "http", default_value = http::DEFAULT_HTTP_ADDR)]
    pub addr: SocketAddr,
}

/// Returns on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Ends `cancel` on Ctrl-C or SIGTERM.
pub async fn cancel_on_signal(cancel: CancellationToken) {
    wait_for_signal().await;
    cancel.cancel();
}

pub fn run(args: HttpArgs) -> Result<()> {
    let store = Store::open(&args.dir.dir)
        .with_context(|| format!("opening {}", args.dir.dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        tokio::spawn(cancel_on_signal(cancel.clone()));
        let state = AppState::start(store, cancel.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let listener = http::bind(args.addr).await?;
        let local = listener.local_addr()?;
        // Tests and scripts read this line to learn a port-0 address.
        crate::outln!("http listening on http://{local}");
        http::serve_on(listener, state, cancel).await?;
        Ok::<(), anyhow::Error>(())
    })
}
