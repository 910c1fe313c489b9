//! `platos-host serve`: the HTTP server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use platos_host::runtime::PluginRegistry;

use super::Context;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on. Loopback by default: put a TLS proxy in front
    /// to serve other machines.
    #[arg(long, env = "PLATOS_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
}

pub async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let host = context.plugin_host()?;
    let registry = Arc::new(context.registry(&host).await?);
    let slugs: Vec<&str> = registry.iter().map(|plugin| plugin.slug()).collect();
    tracing::info!(plugins = %slugs.join(", "), data_dir = %context.data_dir.display(), "plugins loaded");

    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/plugins", get(list_plugins))
        .with_state(registry);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}

async fn list_plugins(State(registry): State<Arc<PluginRegistry>>) -> Json<serde_json::Value> {
    let plugins: Vec<_> = registry
        .iter()
        .map(|plugin| {
            serde_json::json!({
                "id": plugin.id(),
                "api": plugin.api_version(),
                "sha256": plugin.sha256(),
                "manifest": plugin.manifest(),
            })
        })
        .collect();
    Json(serde_json::json!({ "plugins": plugins }))
}
