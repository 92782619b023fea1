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
//!   `subscribe`: change streams; `metrics`: Prometheus text; `ui`: the page at `/`.
//! - `security`: the options and the gate (rate limit, tokens); `auth`: tokens and
//!   scopes; `browser`: `Host`, body types, CORS; `limits`: sizes, timeouts, counts;
//!   `listen`: the connection loop (TLS, header timeouts); `tls`: certificates.

mod auth;
mod browser;
pub mod error;
mod inputs;
mod jobs;
mod limits;
mod listen;
mod metrics;
mod outputs;
pub mod schema;
pub mod security;
mod stamp;
mod subscribe;
mod tls;
mod ui;

pub use auth::{Scope, Tokens, TokensError};
pub use browser::AllowedHosts;
pub use jobs::listings;
pub use limits::Limits;
pub use security::{Guard, Security, SecurityError};
pub use tls::{TlsError, TlsFiles};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn_with_state, map_response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::job::manager::{JobManager, JobSettings};
use crate::job::spec::{JobSpec, Origin};
use crate::pipeline::Registry;

/// How often changed tokens and certificate files are read again.
const REFRESH: Duration = Duration::from_secs(2);
/// How often the jobs are supervised (a failed pipeline is noticed within this).
const SUPERVISE: Duration = Duration::from_millis(250);

/// What the handlers share.
pub struct App {
    /// The server's jobs.
    pub jobs: JobManager,
    /// Limits and timeouts.
    pub limits: Limits,
    /// Tokens, allowed hosts, CORS origins, the rate limit.
    pub guard: Guard,
    /// Live subscriptions per output.
    pub subscribers: Arc<limits::Subscribers>,
    /// Becomes true when the server shuts down; streams end then.
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    /// The state of a server's handlers.
    pub fn new(jobs: JobManager, limits: Limits, guard: Guard, shutdown: watch::Receiver<bool>) -> App {
        App { jobs, limits, guard, subscribers: Arc::default(), shutdown }
    }
}

/// The handlers' state.
pub type AppState = Arc<App>;

/// Every route of the API, behind the server's defences (outermost first): panics
/// answered as 500, JSON errors, hardening headers, `Host` check, CORS, the gate (rate
/// limit, tokens), the body's type, size and time.
pub fn router(app: AppState) -> Router {
    let max_body = app.limits.max_body;
    let mut router = Router::new()
        .route("/healthz", get(|| async { Json(schema::Health { status: "ok" }) }))
        .merge(ui::routes())
        .merge(jobs::routes())
        .merge(inputs::routes())
        .merge(outputs::routes())
        .merge(subscribe::routes())
        .merge(metrics::routes())
        .fallback(|| async { error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(app.clone(), browser::read_body))
        .layer(from_fn_with_state(app.clone(), security::gate));
    if let Some(cors) = browser::cors(&app.guard.cors) {
        router = router.layer(cors);
    }
    router = router.layer(from_fn_with_state(app.clone(), browser::check_host));
    for (name, value) in browser::hardening_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router.layer(map_response(error::json_errors)).layer(CatchPanicLayer::custom(error::panicked)).with_state(app)
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
    /// Tokens, TLS, allowed hosts and origins.
    pub security: Security,
}

/// Why a server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The data directory or the listener failed.
    #[error("{0}")]
    Io(String),
    /// A job declared in the configuration is invalid.
    #[error("job `{0}` of the configuration: {1}")]
    ConfigJob(String, String),
    /// The security options cannot be used (a usage error).
    #[error(transparent)]
    Security(#[from] SecurityError),
}

impl ServeError {
    /// Whether the options given are wrong (exit code 2), rather than the server failing.
    pub fn is_usage(&self) -> bool {
        matches!(self, ServeError::Security(_))
    }
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
    // The options first: a usage error must not start workers or touch the data directory.
    let guard = Guard::new(&options.security, options.listen, &options.limits)?;
    let tls = guard.certificates.as_ref().map(listen::acceptor).transpose().map_err(SecurityError::from)?;
    let jobs = JobManager::new(options.workers, registry, options.data_dir.clone(), options.settings.clone())
        .map_err(|e| ServeError::Io(format!("cannot use the data directory: {e}")))?;
    let (stop, shutdown) = watch::channel(false);
    let app = Arc::new(App::new(jobs, options.limits.clone(), guard, shutdown.clone()));
    let setup = app.clone();
    let declared = options.jobs.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ServeError> {
        for failure in setup.jobs.restore() {
            tracing::warn!(job = %failure.job, error = %failure.why, "persisted job not restored");
        }
        for spec in declared {
            if !setup.jobs.contains(&spec.name) {
                let name = spec.name.clone();
                setup.jobs.create(spec, Origin::Operator).map_err(|e| ServeError::ConfigJob(name, e.to_string()))?;
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
    let (scheme, tokens) = (if tls.is_some() { "https" } else { "http" }, app.guard.has_tokens());
    tracing::info!(%addr, scheme, tokens, jobs = app.jobs.list().len(), "listening");
    let connections =
        listen::Connections { router: router(app.clone()), tls, header_timeout: options.limits.header_timeout };
    let refreshed = app.clone();
    tokio::spawn(every(REFRESH, shutdown.clone(), move || refreshed.guard.refresh()));
    let supervised = app.clone();
    tokio::spawn(every(SUPERVISE, shutdown.clone(), move || supervised.jobs.supervise(std::time::Instant::now())));
    let task = tokio::spawn(async move {
        listen::serve(listener, connections, shutdown).await;
        let jobs = app.clone();
        let _ = tokio::task::spawn_blocking(move || jobs.jobs.shutdown()).await;
        // Each job's runtime joins its workers when the last reference goes.
        let _ = tokio::task::spawn_blocking(move || drop(app)).await;
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

/// Runs `work` on the blocking pool every `period`, until shutdown: reading changed
/// tokens and certificate files again ([`REFRESH`]), restarting jobs whose pipeline
/// failed ([`SUPERVISE`]).
async fn every(period: Duration, mut shutdown: watch::Receiver<bool>, work: impl Fn() + Clone + Send + 'static) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|down| *down) => return,
        }
        let _ = tokio::task::spawn_blocking(work.clone()).await;
    }
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
