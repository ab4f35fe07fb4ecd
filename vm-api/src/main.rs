//! The `vm-api` binary: parses flags, refuses to start without a secret, serves the API and the
//! preview listener until a signal, then stops every child process.

use axum::serve::ListenerExt;
use clap::Parser;
use std::sync::Arc;
use vm_api::azure_blob::AzureObjects;
use vm_api::{app, preview_app, AppState, Config, Limits};

const DEFAULT_PREVIEW_PORT: u16 = 8001;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "vm_api=info,tower_http=warn".into()),
        )
        .with_target(false)
        .init();
    let cfg = Config::parse();
    let secret = match cfg.require_secret() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&cfg.data_dir)?;
    let data_dir = std::fs::canonicalize(&cfg.data_dir)?;
    let mut state = AppState::new(
        secret,
        data_dir.clone(),
        vm_api::sandbox::choose(
            cfg.sandbox,
            cfg.insecure_no_sandbox,
            &data_dir,
            cfg.hardened(),
        ),
    );
    state.limits = Limits {
        output_cap_bytes: cfg.output_cap_bytes,
        exec_concurrency: cfg.exec_concurrency.max(1),
        search: Default::default(),
        deploy: Default::default(),
    };
    state.pty.limits = cfg.pty_limits();
    state.git_private_remotes = cfg.git_private_remotes;
    state.admission = vm_api::admission::Admission::new(cfg.caps());
    state.preview_domain = cfg.preview_domain.trim_matches('.').to_ascii_lowercase();
    state.deps.max_entries = cfg.deps_cache_entries.max(1);
    state.deps.max_bytes = cfg.deps_cache_mb.saturating_mul(1 << 20);
    match cfg
        .azure_connection_string
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        Some(cs) => {
            let az = open_replit_core::azure::AzureConfig::from_connection_string(cs)
                .map_err(|e| anyhow::anyhow!("AZURE_STORAGE_CONNECTION_STRING: {e}"))?;
            tracing::info!(host = az.host(), container = %cfg.azure_container, "blob storage configured");
            state.objects = Some(Arc::new(AzureObjects::new(az, &cfg.azure_container)));
            state.objects_container = Some(cfg.azure_container.clone());
        }
        None => tracing::warn!("AZURE_STORAGE_CONNECTION_STRING not set: /sync will answer 503"),
    }
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port)).await?;
    let preview = match cfg.preview_port {
        Some(p) => Some(tokio::net::TcpListener::bind((cfg.host.as_str(), p)).await?),
        None => {
            match tokio::net::TcpListener::bind((cfg.host.as_str(), DEFAULT_PREVIEW_PORT)).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::error!(
                        "preview port {DEFAULT_PREVIEW_PORT} unavailable ({e}); running WITHOUT \
                     previews (pass --preview-port to choose one)"
                    );
                    None
                }
            }
        }
    };
    let addr = listener.local_addr()?;
    let paddr = preview.as_ref().and_then(|l| l.local_addr().ok());
    if let Ok(mut ports) = state.own_ports.write() {
        ports.push(addr.port());
        ports.extend(paddr.map(|a| a.port()));
    }
    if let Ok(mut p) = state.preview_port.write() {
        *p = paddr.map(|a| a.port());
    }
    let state = Arc::new(state);
    if cfg.project_idle_secs > 0 {
        vm_api::reaper::spawn(
            state.clone(),
            std::time::Duration::from_secs(cfg.project_idle_secs),
        );
    }
    // Published deployments come back in the background; one that cannot start is logged and
    // shows as crashed, never stopping the service.
    vm_api::deploy_service::restore(state.clone());
    let preview_addr = paddr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "none".into());
    tracing::info!(%addr, preview = %preview_addr, sandbox = state.sandbox.name(), data_dir = %cfg.data_dir.display(), "vm-api listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx1 = stop_rx.clone();
    let mut rx2 = stop_rx;
    // Small request/reply exchanges (exec, sync, PTY frames) wait out Nagle's 40 ms delayed-ACK
    // dance without TCP_NODELAY: it took a signed `true` from ~10 ms to ~56 ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let api = axum::serve(listener, app(state.clone())).with_graceful_shutdown(async move {
        let _ = rx1.wait_for(|s| *s).await;
    });
    let prev_state = state.clone();
    let prev = async move {
        match preview {
            Some(l) => {
                let l = l.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(l, preview_app(prev_state))
                    .with_graceful_shutdown(async move {
                        let _ = rx2.wait_for(|s| *s).await;
                    })
                    .await
            }
            None => Ok(()),
        }
    };
    let st = state.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: stopping commands and processes");
        // Children first: that ends streaming responses, so the servers can drain.
        st.shutdown().await;
        let _ = stop_tx.send(true);
    });
    let (a, b) = tokio::join!(api, prev);
    a?;
    b?;
    state.shutdown().await;
    tracing::info!("vm-api stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
