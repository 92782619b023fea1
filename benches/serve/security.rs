//! What tokens and limits cost (`serve_load security`): the latency and throughput
//! measurements of `load.rs`, against a plain server and a secure one, in the same run.
//!
//! The secure server is started with `--tokens FILE --rate-limit 1000000
//! --max-subscribers 1024`: every request then has its token hashed and looked up and
//! its caller counted by the rate limiter, and every subscription takes a counted slot,
//! but the limits are far above the load, so none refuses anything. That is the cost
//! a deployment pays on every request, whatever its limits.
//!
//! Each repetition starts a fresh server of each kind in turn, and the order alternates
//! between repetitions (plain first, then secure first), so that the machine's drift
//! and a warm page cache favour neither. The verdict compares the medians over the
//! repetitions; the per-pair figures show how much of a difference is noise.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::server::ServerProcess;
use crate::{Args, Latency, Target, Throughput, latency, throughput};

/// The targets: tokens and limits cost at most this share of ingest throughput …
const MAX_THROUGHPUT_COST: f64 = 0.05;
/// … and at most this many milliseconds of POST→SSE p99.
const MAX_P99_COST_MS: f64 = 1.0;
/// The secure server's limits: checked on every request, never reached.
const LIMITS: [&str; 4] = ["--rate-limit", "1000000", "--max-subscribers", "1024"];

/// The tokens a secure server accepts.
#[derive(Clone)]
pub struct Tokens {
    /// Of scope `admin`: creates jobs and posts events.
    pub admin: String,
    /// Of scope `read`: subscribes.
    pub read: String,
}

/// A tokens file with an `admin` and a `read` token of 40 random characters; deleted
/// when dropped.
struct TokensFile {
    tokens: Tokens,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TokensFile {
    fn new() -> TokensFile {
        let dir = tempfile::tempdir().expect("temp dir");
        let random = || rand::rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect::<String>();
        let tokens = Tokens { admin: random(), read: random() };
        let path = dir.path().join("tokens");
        std::fs::write(&path, format!("admin {}\nread {}\n", tokens.admin, tokens.read)).expect("tokens file");
        // As an operator would keep it (the server warns otherwise).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod tokens file");
        TokensFile { tokens, path, _dir: dir }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Secure,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Secure => "secure",
        }
    }
}

/// One server's measurements.
struct Run {
    repetition: usize,
    variant: Variant,
    /// 1 if this server ran first in its pair, else 2.
    order: usize,
    /// One per rate.
    latency: Vec<Latency>,
    throughput: Throughput,
}

/// Runs the comparison and prints its table and verdict.
pub async fn compare(args: &Args) {
    let rates = args.rates.clone().unwrap_or_else(|| vec![10_000]);
    let file = TokensFile::new();
    println!(
        "tokens and limits: plain `tidemark serve` against `--tokens FILE {}`; {} workers; {} repetitions, order alternating",
        LIMITS.join(" "),
        args.workers,
        args.repeat
    );
    println!(
        "latency: {} SSE subscribers, {} s per rate after 1 s of warm-up; throughput: {} connections, NDJSON batches of 1000, {} s",
        args.subscribers, args.seconds, args.connections, args.seconds
    );
    let mut runs = Vec::new();
    for repetition in 1..=args.repeat {
        let order =
            if repetition % 2 == 1 { [Variant::Plain, Variant::Secure] } else { [Variant::Secure, Variant::Plain] };
        for (i, variant) in order.into_iter().enumerate() {
            eprintln!("  repetition {repetition}/{}: {}", args.repeat, variant.name());
            let target = start(args, variant, &file).await;
            let mut latencies = Vec::new();
            for &rate in &rates {
                latencies.push(latency(&target, rate, args.subscribers, args.seconds).await);
            }
            let throughput = throughput(&target, args.connections, args.seconds).await;
            runs.push(Run { repetition, variant, order: i + 1, latency: latencies, throughput });
        }
    }
    println!();
    table(&rates, &runs);
    println!();
    verdict(&rates, &runs);
}

/// A fresh server of `variant`; a secure one is first checked to refuse a request
/// without a token, so that the comparison cannot silently measure two plain servers.
async fn start(args: &Args, variant: Variant, file: &TokensFile) -> Target {
    if variant == Variant::Plain {
        return Target { server: ServerProcess::start(&args.binary, args.workers, &[]), tokens: None };
    }
    let mut extra = vec!["--tokens".to_string(), file.path.display().to_string()];
    extra.extend(LIMITS.map(String::from));
    let server = ServerProcess::start(&args.binary, args.workers, &extra);
    let refused = reqwest::get(format!("{}/api/v1/jobs", server.base)).await.expect("GET /api/v1/jobs");
    assert_eq!(refused.status().as_u16(), 401, "the secure server answered a request without a token");
    Target { server, tokens: Some(file.tokens.clone()) }
}

/// Every run, then the medians of each variant.
fn table(rates: &[u64], runs: &[Run]) {
    let label = |column: &str, rate: u64| {
        if rates.len() == 1 { column.to_string() } else { format!("{column} at {rate}/s") }
    };
    let mut header = "| repetition | server | order |".to_string();
    for &rate in rates {
        for column in ["p50 ms", "p99 ms", "max ms", "missed"] {
            header.push_str(&format!(" {} |", label(column, rate)));
        }
    }
    header.push_str(" events/s accepted | server CPU cores | events per server CPU-s |");
    println!("POST→SSE latency at {} events/s, then ingest throughput, per server:", join(rates));
    println!("{header}");
    println!("|---|---|---:|{}---:|---:|---:|", "---:|".repeat(4 * rates.len()));
    for variant in [Variant::Plain, Variant::Secure] {
        for run in runs.iter().filter(|r| r.variant == variant) {
            println!(
                "| {} | {} | {} |{}",
                run.repetition,
                variant.name(),
                run.order,
                cells(&run.latency, run.throughput)
            );
        }
    }
    for variant in [Variant::Plain, Variant::Secure] {
        let (latency, throughput) = medians(rates.len(), runs, variant);
        println!("| **median** | **{}** | |{}", variant.name(), cells(&latency, throughput));
    }
}

/// The cells of one row after its labels.
fn cells(latency: &[Latency], throughput: Throughput) -> String {
    let mut row = String::new();
    for l in latency {
        row.push_str(&format!(" {:.2} | {:.2} | {:.1} | {} |", l.p50, l.p99, l.max, l.missed));
    }
    let per_cpu = throughput.events_per_second / throughput.cpu_cores;
    row.push_str(&format!(" {:.0} | {:.2} | {per_cpu:.0} |", throughput.events_per_second, throughput.cpu_cores));
    row
}

/// The median of every figure over the runs of `variant` (missed: the total).
fn medians(rates: usize, runs: &[Run], variant: Variant) -> (Vec<Latency>, Throughput) {
    let runs: Vec<&Run> = runs.iter().filter(|r| r.variant == variant).collect();
    let of = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(|r| f(r)).collect());
    let latency = (0..rates)
        .map(|i| Latency {
            p50: of(&|r| r.latency[i].p50),
            p99: of(&|r| r.latency[i].p99),
            max: of(&|r| r.latency[i].max),
            missed: runs.iter().map(|r| r.latency[i].missed).sum(),
        })
        .collect();
    let throughput = Throughput {
        events_per_second: of(&|r| r.throughput.events_per_second),
        cpu_cores: of(&|r| r.throughput.cpu_cores),
    };
    (latency, throughput)
}

/// The ratios and differences of the medians, the per-pair ones, and PASS or MISS
/// against the targets.
fn verdict(rates: &[u64], runs: &[Run]) {
    let (plain_latency, plain) = medians(rates.len(), runs, Variant::Plain);
    let (secure_latency, secure) = medians(rates.len(), runs, Variant::Secure);
    let ratio = secure.events_per_second / plain.events_per_second;
    let per_cpu = (secure.events_per_second / secure.cpu_cores) / (plain.events_per_second / plain.cpu_cores);
    let pairs = pairs(runs);
    let pair_ratios: Vec<String> = pairs
        .iter()
        .map(|(p, s)| format!("{:.3}", s.throughput.events_per_second / p.throughput.events_per_second))
        .collect();
    println!(
        "throughput, secure/plain: {ratio:.3} of the medians (per pair: {}); events per server CPU-s: {per_cpu:.3}",
        pair_ratios.join(", ")
    );
    let cost = 1.0 - ratio;
    println!(
        "{} throughput: tokens and limits cost {:.1}% (target ≤ {:.0}%)",
        pass(cost <= MAX_THROUGHPUT_COST),
        cost * 100.0,
        MAX_THROUGHPUT_COST * 100.0
    );
    for (i, &rate) in rates.iter().enumerate() {
        let (p, s) = (plain_latency[i], secure_latency[i]);
        let pair_deltas: Vec<String> =
            pairs.iter().map(|(p, s)| format!("{:+.2}", s.latency[i].p99 - p.latency[i].p99)).collect();
        println!(
            "p99 at {rate} events/s, secure − plain: {:+.2} ms of the medians (per pair: {} ms); p50 {:+.2} ms",
            s.p99 - p.p99,
            pair_deltas.join(", "),
            s.p50 - p.p50
        );
        println!(
            "{} p99 at {rate} events/s: tokens and limits cost {:+.2} ms (target ≤ {MAX_P99_COST_MS} ms)",
            pass(s.p99 - p.p99 <= MAX_P99_COST_MS),
            s.p99 - p.p99
        );
        if p.missed + s.missed > 0 {
            println!("warning: updates missed at {rate} events/s: plain {}, secure {}", p.missed, s.missed);
        }
    }
}

/// The (plain, secure) runs of each repetition.
fn pairs(runs: &[Run]) -> Vec<(&Run, &Run)> {
    let of = |repetition, variant| runs.iter().find(|r| r.repetition == repetition && r.variant == variant);
    let repetitions = runs.iter().map(|r| r.repetition).max().unwrap_or(0);
    (1..=repetitions).filter_map(|n| Some((of(n, Variant::Plain)?, of(n, Variant::Secure)?))).collect()
}

fn pass(met: bool) -> &'static str {
    if met { "PASS" } else { "MISS" }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn join(rates: &[u64]) -> String {
    rates.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}
