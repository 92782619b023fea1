//! What periodic checkpoints cost ingest (`serve_load checkpoints`): the throughput
//! measurement of `load.rs` (NDJSON batches of 1,000 from `--connections` clients for
//! `--seconds`) on a job with `checkpoint_interval_ms` 10000 against the same job with
//! 0 (checkpoints only on demand: none here), each on a fresh server, `--repeat` pairs
//! with the order alternating. Every checkpoint holds the job's inputs while it aligns,
//! so the cost shows as throughput lost. The job's status after a run shows how many
//! checkpoints it took (its last one's id), so that the comparison cannot silently
//! measure two jobs without any.

use serde_json::Value;

use crate::security::median;
use crate::server::ServerProcess;
use crate::{Args, Target, Throughput, throughput_checkpointing};

/// The target: checkpoints every 10 s cost at most this share of throughput.
const MAX_COST: f64 = 0.10;
const INTERVAL: u64 = 10_000;

/// Runs the pairs and prints every run, the medians and the verdict.
pub async fn compare(args: &Args) {
    println!(
        "checkpoints every {INTERVAL} ms against none: {} connections, {} s per run, {} pairs",
        args.connections, args.seconds, args.repeat
    );
    println!("| pair | job | events/s | server CPU cores | checkpoints taken |\n|---:|---|---:|---:|---:|");
    let (mut none, mut periodic) = (Vec::new(), Vec::new());
    for repetition in 1..=args.repeat {
        let order = if repetition % 2 == 1 { [None, Some(INTERVAL)] } else { [Some(INTERVAL), None] };
        for interval in order {
            let target = Target { server: ServerProcess::start(&args.binary, args.workers, &[]), tokens: None };
            let interval = interval.unwrap_or(0);
            let Throughput { events_per_second, cpu_cores } =
                throughput_checkpointing(&target, args.connections, args.seconds, Some(interval)).await;
            let status: Value = reqwest::get(format!("{}/api/v1/jobs/throughput", target.server.base))
                .await
                .expect("job status")
                .json()
                .await
                .expect("job status JSON");
            let taken = status["checkpoint"]["id"].as_u64().unwrap_or(0);
            let label = if interval == 0 { "none" } else { "every 10 s" };
            println!("| {repetition} | {label} | {events_per_second:.0} | {cpu_cores:.2} | {taken} |");
            if interval == 0 {
                none.push(events_per_second);
            } else {
                assert!(taken > 0, "the checkpointing job took no checkpoint in {} s", args.seconds);
                periodic.push(events_per_second);
            }
        }
    }
    let (none, periodic) = (median(none), median(periodic));
    let ratio = periodic / none;
    println!("\nmedians: none {none:.0} events/s, every 10 s {periodic:.0} events/s, ratio {ratio:.3}");
    let verdict = if ratio >= 1.0 - MAX_COST { "met" } else { "NOT met" };
    println!("target (at most {:.0} % below none): {verdict}", MAX_COST * 100.0);
}
