//! The HTTP service: axum routes over the jobs of a server, and its lifecycle.
//!
//! ```text
//!  client ──HTTP──► router ─► jobs ─► JobManager ─► RunningJob ─► runtime (timely)
//!                     │                                │
//!                     ├─ inputs ── ingest, advance ────┘
//!                     ├─ outputs ─ query ──────► Materialized (rows, index, history)
//!                     └─ subscribe ─ SSE / WS ◄─ broadcast of frontier steps
//! ```
//!
//! `serve` never depends on timely types: it drives jobs through [`RunningJob`](crate::job::RunningJob)
//! and reads outputs through [`Materialized`](crate::runtime::Materialized). Work that
//! blocks (installing jobs, feeding the workers) runs on tokio's blocking pool.
//!
//! - `error`: API errors and their statuses and codes.
//! - `jobs`: dataflows and jobs; `inputs`: ingest and advance; `outputs`: queries;
//!   `subscribe`: change streams; `ui`: the page at `/`.

pub mod error;
mod inputs;
mod jobs;
mod outputs;
mod subscribe;
mod ui;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::job::manager::{JobManager, JobSettings};
use crate::job::spec::JobSpec;
use crate::pipeline::Registry;
use crate::runtime::Runtime;

/// Limits and timeouts of the HTTP API.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body, in bytes (larger: 413).
    pub max_body: usize,
    /// How long `advance` waits for the outputs to catch up.
    pub wait: Duration,
    /// How long an `as_of` read waits by default for its time to complete.
    pub as_of_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body: 16 << 20, wait: Duration::from_secs(30), as_of_timeout: Duration::from_secs(5) }
    }
}

/// What the handlers share.
pub struct App {
    /// The server's jobs.
    pub jobs: JobManager,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Becomes true when the server shuts down; streams end then.
    pub shutdown: watch::Receiver<bool>,
}

/// The handlers' state.
pub type AppState = Arc<App>;

/// Every route of the API.
pub fn router(app: AppState) -> Router {
    let max_body = app.limits.max_body;
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(ui::routes())
        .merge(jobs::routes())
        .merge(inputs::routes())
        .merge(outputs::routes())
        .merge(subscribe::routes())
        .fallback(|| async { error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(app)
}

/// How to run a server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Timely worker threads.
    pub workers: usize,
    /// Where job specs persist; `None`: nowhere.
    pub data_dir: Option<PathBuf>,
    /// Jobs to create at start unless a job of the same name was restored.
    pub jobs: Vec<JobSpec>,
    /// Settings of every job.
    pub settings: JobSettings,
    /// Limits of the API.
    pub limits: Limits,
}

/// Why a server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    /// The data directory or the listener failed.
    #[error("{0}")]
    Io(String),
    /// A job declared in the configuration is invalid.
    #[error("job `{0}` of the configuration: {1}")]
    ConfigJob(String, String),
}

/// A server started by [`start`]: where it listens, and how to stop it.
pub struct Server {
    /// The bound address.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops the server: subscribers get a clean end, jobs stop, workers join.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Asks the server to stop without waiting for it (for `Drop` implementations).
    pub fn signal_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the server stops (after [`Server::stop`] or a shutdown signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts a server: the runtime, the jobs restored from `data_dir` and those of the
/// configuration, and the listener.
pub async fn start(registry: Registry, options: ServeOptions) -> Result<Server, ServeError> {
    let runtime = Arc::new(Runtime::start(options.workers)?);
    let jobs = JobManager::new(runtime.clone(), registry, options.data_dir.clone(), options.settings.clone())
        .map_err(|e| ServeError::Io(format!("cannot use the data directory: {e}")))?;
    let (stop, shutdown) = watch::channel(false);
    let app = Arc::new(App { jobs, limits: options.limits.clone(), shutdown: shutdown.clone() });
    let setup = app.clone();
    let declared = options.jobs.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ServeError> {
        for (name, error) in setup.jobs.restore() {
            tracing::warn!(job = %name, %error, "persisted job not restored");
        }
        for spec in declared {
            if !setup.jobs.contains(&spec.name) {
                let name = spec.name.clone();
                setup.jobs.create(spec).map_err(|e| ServeError::ConfigJob(name, e.to_string()))?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| ServeError::Io(e.to_string()))??;

    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| ServeError::Io(format!("cannot listen on {}: {e}", options.listen)))?;
    let addr = listener.local_addr().map_err(|e| ServeError::Io(e.to_string()))?;
    tracing::info!(%addr, jobs = app.jobs.list().len(), "listening");
    let mut shutdown = shutdown;
    let router = router(app.clone());
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = shutdown.wait_for(|down| *down).await;
        };
        // Subscribers get small writes often: send them at once rather than batching them (Nagle).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serving = axum::serve(listener, router);
        if let Err(error) = serving.with_graceful_shutdown(stopped).await {
            tracing::error!(%error, "server failed");
        }
        let jobs = app.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.jobs.shutdown()).await;
        drop(app);
        // The runtime joins its workers when the last reference goes.
        let _ = tokio::task::spawn_blocking(move || drop(runtime)).await;
        tracing::info!("stopped");
    });
    Ok(Server { addr, stop, task })
}

/// Runs a server until SIGINT or SIGTERM, then shuts it down gracefully.
pub async fn run(registry: Registry, options: ServeOptions) -> Result<(), ServeError> {
    let server = start(registry, options).await?;
    // Scripts and tests read this line to learn the port.
    println!("listening on {}", server.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending::<()>().await,
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
