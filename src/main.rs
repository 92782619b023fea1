//! The `tidemark` binary: parse arguments, set up logging, run a command.

#[path = "../dataflows/registry.rs"]
mod dataflows;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

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
    Serve(ServeArgs),
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
    /// Largest request body in bytes [default: 16777216].
    #[arg(long, env = "TIDEMARK_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Changes each output keeps for `as_of` reads and resuming subscribers [default: 100000].
    #[arg(long, env = "TIDEMARK_HISTORY")]
    history: Option<usize>,
}

fn serve(registry: tidemark::pipeline::Registry, args: ServeArgs) -> anyhow::Result<()> {
    use tidemark::config;
    let text = match &args.config {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?
        }
        None => config::DEFAULT.to_string(),
    };
    let config = config::parse(&text).map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    let server = config.server;
    let mut settings = tidemark::job::manager::JobSettings::default();
    if let Some(history) = args.history.or(server.history) {
        settings.history = history;
    }
    let mut limits = tidemark::serve::Limits::default();
    if let Some(max) = args.max_body_bytes.or(server.max_body_bytes) {
        limits.max_body = max;
    }
    let options = tidemark::serve::ServeOptions {
        listen: args.listen.or(server.listen).unwrap_or_else(|| "127.0.0.1:8080".parse().expect("address")),
        workers: args.workers.or(server.workers).unwrap_or_else(default_workers),
        data_dir: Some(args.data_dir.or(server.data_dir).unwrap_or_else(|| PathBuf::from(".tidemark"))),
        jobs: config.jobs,
        settings,
        limits,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(tidemark::serve::run(registry, options))?;
    Ok(())
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn main() -> ExitCode {
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
    match cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => match serve(registry, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Dataflows => {
            let listing = serde_json::to_string_pretty(&registry.listing()).expect("listing serializes");
            let _ = writeln!(std::io::stdout(), "{listing}");
            ExitCode::SUCCESS
        }
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
