//! The `tidemark` binary: parse arguments, set up logging, run a command.

#[path = "../dataflows/registry.rs"]
mod dataflows;
#[path = "main/jobs.rs"]
mod jobs_command;

use std::io::Write;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use tidemark::replay::{Replay, ReplayError, replay};

#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

/// Incremental stream computation on timely and differential dataflow.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// What to do (default: `serve` with its defaults).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default command).
    Serve(Box<ServeArgs>),
    /// Replay NDJSON files through a dataflow and print its outputs as NDJSON.
    Run {
        /// The dataflow (see `tidemark dataflows`).
        dataflow: String,
        /// An input and the NDJSON file feeding it, as NAME=FILE (repeatable).
        #[arg(long = "input", value_name = "NAME=FILE", value_parser = parse_pair)]
        inputs: Vec<(String, String)>,
        /// A parameter as K=V; V is JSON when it parses as JSON, else a string (repeatable).
        #[arg(long = "param", value_name = "K=V", value_parser = parse_pair)]
        params: Vec<(String, String)>,
        /// An output to print (repeatable; default: all).
        #[arg(long = "output", value_name = "NAME")]
        outputs: Vec<String>,
        /// Print every change (`{"output","time","row","diff"}`) instead of the final rows.
        #[arg(long)]
        changes: bool,
        /// Worker threads (default: available cores).
        #[arg(long, env = "TIDEMARK_WORKERS")]
        workers: Option<usize>,
    },
    /// List the compiled-in dataflows as JSON.
    Dataflows,
    /// Manage the jobs of a running server over its HTTP API (JSON output).
    Jobs(jobs_command::JobsArgs),
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    /// Address to listen on [default: the config's, else 127.0.0.1:8080].
    #[arg(long, env = "TIDEMARK_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Configuration file (TOML) [default: the repository's tidemark.toml, compiled in].
    #[arg(long, env = "TIDEMARK_CONFIG")]
    config: Option<PathBuf>,
    /// Worker threads [default: the config's, else available cores].
    #[arg(long, env = "TIDEMARK_WORKERS")]
    workers: Option<usize>,
    /// Where job definitions persist [default: the config's, else .tidemark].
    #[arg(long, env = "TIDEMARK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Changes each output keeps for `as_of` reads and resuming subscribers [default: 100000].
    #[arg(long, env = "TIDEMARK_HISTORY")]
    history: Option<usize>,
    /// Bearer tokens, one `SCOPE TOKEN` per line (read, write or admin); with it every
    /// /api/v1 route and /metrics need a token.
    #[arg(long = "tokens", value_name = "FILE", env = "TIDEMARK_TOKENS_FILE", help_heading = "Security")]
    tokens_file: Option<PathBuf>,
    /// Listen beyond loopback without --tokens: anyone who can connect controls the server.
    #[arg(long, help_heading = "Security")]
    insecure: bool,
    /// Host names requests may use beside localhost and IP addresses (`name`, `name:port`,
    /// `*.domain`, `*`; repeatable or comma-separated).
    #[arg(long, value_name = "HOSTS", env = "TIDEMARK_ALLOWED_HOSTS", help_heading = "Security")]
    allowed_hosts: Vec<String>,
    /// An origin whose web pages may call the API, e.g. https://app.example.com (repeatable).
    #[arg(long, value_name = "ORIGIN", env = "TIDEMARK_CORS_ORIGIN", help_heading = "Security")]
    cors_origin: Vec<String>,
    /// The directory file sources may read below; without it, jobs created over the API
    /// cannot read files.
    #[arg(long, value_name = "DIR", env = "TIDEMARK_FILE_ROOT", help_heading = "Security")]
    file_root: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", env = "TIDEMARK_TLS_CERT", requires = "tls_key", help_heading = "Security")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", env = "TIDEMARK_TLS_KEY", requires = "tls_cert", help_heading = "Security")]
    tls_key: Option<PathBuf>,
    /// Largest request body in bytes [default: 16777216].
    #[arg(long, env = "TIDEMARK_MAX_BODY_BYTES", help_heading = "Limits")]
    max_body_bytes: Option<usize>,
    /// Live subscriptions per output [default: 1024].
    #[arg(long, env = "TIDEMARK_MAX_SUBSCRIBERS", help_heading = "Limits")]
    max_subscribers: Option<usize>,
    /// Jobs the API may create [default: 256].
    #[arg(long, env = "TIDEMARK_MAX_JOBS", help_heading = "Limits")]
    max_jobs: Option<usize>,
    /// Requests per second per token, or per client address without one [default: no limit].
    #[arg(long, value_name = "N", env = "TIDEMARK_RATE_LIMIT", help_heading = "Limits")]
    rate_limit: Option<NonZeroU32>,
    /// Time a client has to send a request's headers (and a TLS handshake); idle
    /// connections close after it too [default: 10000].
    #[arg(long, value_name = "MS", env = "TIDEMARK_HEADER_TIMEOUT_MS", help_heading = "Limits")]
    header_timeout_ms: Option<u64>,
    /// Time a client has to send a request body [default: 60000].
    #[arg(long, value_name = "MS", env = "TIDEMARK_BODY_TIMEOUT_MS", help_heading = "Limits")]
    body_timeout_ms: Option<u64>,
}

/// Why `serve` did not run: the options (exit code 2), or the server (1).
enum ServeFailure {
    Usage(anyhow::Error),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for ServeFailure {
    fn from(e: E) -> Self {
        ServeFailure::Failed(e.into())
    }
}

fn serve(registry: tidemark::pipeline::Registry, args: Box<ServeArgs>) -> Result<(), ServeFailure> {
    let args = *args;
    use tidemark::config;
    let usage = |e: anyhow::Error| ServeFailure::Usage(e);
    let text = match &args.config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| usage(anyhow::anyhow!("cannot read config {}: {e}", path.display())))?,
        None => config::DEFAULT.to_string(),
    };
    let config = config::parse(&text).map_err(|e| usage(anyhow::anyhow!("invalid config: {e}")))?;
    let server = config.server;
    let mut settings = tidemark::job::manager::JobSettings::default();
    if let Some(history) = args.history.or(server.history) {
        settings.history = history;
    }
    if let Some(max) = args.max_jobs.or(server.max_jobs) {
        settings.max_jobs = max;
    }
    if let Some(dir) = args.file_root.or(server.file_root) {
        settings.file_root = Some(tidemark::job::file_root::FileRoot::new(&dir).map_err(|e| usage(e.into()))?);
    }
    let mut limits = tidemark::serve::Limits::default();
    if let Some(max) = args.max_body_bytes.or(server.max_body_bytes) {
        limits.max_body = max;
    }
    if let Some(max) = args.max_subscribers.or(server.max_subscribers) {
        limits.max_subscribers = max;
    }
    limits.rate_limit = args.rate_limit.or(server.rate_limit);
    if let Some(ms) = args.header_timeout_ms.or(server.header_timeout_ms) {
        limits.header_timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(ms) = args.body_timeout_ms.or(server.body_timeout_ms) {
        limits.body_timeout = Duration::from_millis(ms.max(1));
    }
    let tls = match (args.tls_cert.or(server.tls_cert), args.tls_key.or(server.tls_key)) {
        (Some(cert), Some(key)) => Some(tidemark::serve::TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err(usage(anyhow::anyhow!("--tls-cert and --tls-key go together"))),
    };
    let security = tidemark::serve::Security {
        tokens_file: args.tokens_file.or(server.tokens_file),
        insecure: args.insecure || server.insecure,
        allowed_hosts: if args.allowed_hosts.is_empty() { server.allowed_hosts } else { args.allowed_hosts },
        cors_origins: if args.cors_origin.is_empty() { server.cors_origins } else { args.cors_origin },
        tls,
    };
    let options = tidemark::serve::ServeOptions {
        listen: args.listen.or(server.listen).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("address")),
        workers: args.workers.or(server.workers).unwrap_or_else(default_workers),
        data_dir: Some(args.data_dir.or(server.data_dir).unwrap_or_else(|| PathBuf::from(".tidemark"))),
        jobs: config.jobs,
        settings,
        limits,
        security,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime
        .block_on(tidemark::serve::run(registry, options))
        .map_err(|e| if e.is_usage() { ServeFailure::Usage(e.into()) } else { ServeFailure::Failed(e.into()) })
}

fn parse_pair(s: &str) -> Result<(String, String), NotAPair> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| NotAPair(s.to_string()))
}

/// A `--input` or `--param` value without `=`.
#[derive(Debug, thiserror::Error)]
#[error("expected NAME=VALUE, got `{0}`")]
struct NotAPair(String);

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Keeps the process off transparent huge pages. mimalloc asks for them, and with a
/// timely runtime per job every worker thread's heap then holds about a huge page of
/// mostly empty memory: 200 idle jobs took 684 MiB instead of 57 (BENCHMARKS.md); no
/// throughput difference was measurable.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("tidemark: cannot turn transparent huge pages off: {error}");
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    let cli = Cli::parse();
    // A server logs what it does; a replay only what goes wrong.
    let default_log = if matches!(cli.command, None | Some(Command::Serve(_))) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .init();
    let registry = dataflows::registry();
    match cli.command.unwrap_or_else(|| Command::Serve(Box::default())) {
        Command::Serve(args) => match serve(registry, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(ServeFailure::Usage(e)) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
            Err(ServeFailure::Failed(e)) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Dataflows => {
            // As the API lists them: keys in alphabetical order.
            let listing = serde_json::to_value(tidemark::serve::listings(&registry))
                .and_then(|value| serde_json::to_string_pretty(&value))
                .expect("listing serializes");
            let _ = writeln!(std::io::stdout(), "{listing}");
            ExitCode::SUCCESS
        }
        Command::Jobs(args) => jobs_command::run(args),
        Command::Run { dataflow, inputs, params, outputs, changes, workers } => {
            let spec = Replay {
                dataflow,
                inputs: inputs.into_iter().map(|(k, v)| (k, PathBuf::from(v))).collect(),
                params,
                outputs,
                changes,
                workers: workers.unwrap_or_else(default_workers),
                chunk_lines: 0,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match replay(&registry, &spec, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    drop(out);
                    eprintln!("error: {e}");
                    ExitCode::from(if matches!(e, ReplayError::Usage(_)) { 2 } else { 1 })
                }
            }
        }
    }
}
