//! Tests of `stateful` (a summary per group, updated by retractions too) and of
//! `Stream::stateful` with retirement: seeded random scenarios against the models, in
//! final and in exact time, and a long run that must keep only the open groups alive.

use std::sync::atomic::Ordering;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tidemark::pipeline::prelude::Registry;

use super::ev;
use super::generators::{SEEDS, gen_auctions, gen_input, gen_keys, gen_window, random_params, seeds};
use super::models::{model_retiring, model_stateful};
use super::pipelines::{OpParams, RetiringPipeline};
use super::scenario::{ALL_CONFIGS, Scenario, sorted_texts};

fn stateful_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x57a7_0000 + seed);
    let params = OpParams { window: gen_window(&mut rng), ..random_params(&mut rng) };
    let keys = gen_keys(&mut rng);
    let n = rng.random_range(5..=90);
    let span = rng.random_range(40..=200);
    let items = rng.random_range(2..=6);
    let events = gen_input(&mut rng, keys, items, n, 0, span);
    let expected = model_stateful(&params, &events);
    Scenario { dataflow: "stateful", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

fn retiring_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x4e71_0000 + seed);
    let params = OpParams { size: [1, 10, 30][rng.random_range(0..3)], ..random_params(&mut rng) };
    let keys = rng.random_range(2..=40);
    let events = gen_auctions(&mut rng, keys, params.size);
    let expected = model_retiring(&params, &events);
    Scenario { dataflow: "retiring", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

#[test]
fn stateful_matches_the_model() {
    for seed in seeds(SEEDS) {
        let scenario = stateful_scenario(seed);
        scenario.verify(ALL_CONFIGS);
        scenario.verify_exact(ALL_CONFIGS);
    }
}

#[test]
fn retiring_stateful_matches_the_model() {
    for seed in seeds(SEEDS) {
        let scenario = retiring_scenario(seed);
        scenario.verify(ALL_CONFIGS);
        scenario.verify_exact(ALL_CONFIGS);
    }
}

/// Retired groups go: 300 keys opened one after another, each open for 30 ms, keep a
/// few groups alive at a time, not 300 (a group lives from its key's first record until
/// the watermark passes its range and lateness: 4 keys' worth, plus a chunk).
#[test]
fn retiring_stateful_keeps_only_open_groups() {
    let params = OpParams { size: 30, allowed_lateness: 5, max_out_of_orderness: 3, ..OpParams::default() };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut events = Vec::new();
    for i in 0..300u64 {
        let k = format!("a{i}");
        events.push(ev(&k, i * 10, 0));
        for _ in 0..4 {
            events.push(ev(&k, i * 10 + rng.random_range(0..=3), rng.random_range(1..=9)));
        }
    }
    let expected = model_retiring(&params, &events);
    let expected_rows = sorted_texts(&expected[0].1);
    assert_eq!(expected_rows.len(), 300);
    let label = "300 keys in turn".into();
    let scenario = Scenario { dataflow: "retiring", label, params, inputs: vec![("events", events)], expected };
    for workers in [1, 2] {
        let pipeline = RetiringPipeline::default();
        let live = pipeline.live.clone();
        let printed = scenario.run(Registry::new().with(pipeline), workers, 7, false);
        assert_eq!(printed["auctions"], expected_rows, "{workers} workers");
        // One worker runs on the replay's thread, a chunk at a time, so what is alive is
        // exact; with two the reader runs ahead of the workers' progress by a varying
        // amount, and only the rows are checked.
        let peak = live.peak.load(Ordering::SeqCst);
        if workers == 1 {
            assert!(peak <= 10, "{peak} groups alive at once, of 300 keys");
        }
    }
}
