//! Tests of `dedupe` and `top_k`: seeded random scenarios against the models, and hand
//! cases (late replacements, the disorder allowance, late counts, ties).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tidemark::pipeline::prelude::WindowKind;

use super::ev;
use super::generators::{SEEDS, gen_input, gen_keys, gen_window, random_params, seeds};
use super::models::{dead_letter, model_dedupe, model_top_k};
use super::pipelines::{Ev, OpParams};
use super::scenario::{ALL_CONFIGS, Scenario, e, hand_case};

fn dedupe_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0d44_0000 + seed);
    let params = OpParams { size: [5, 10, 20][rng.random_range(0..3)], ..random_params(&mut rng) };
    let keys = gen_keys(&mut rng);
    let n = rng.random_range(5..=80);
    let span = rng.random_range(60..=300);
    let events = gen_input(&mut rng, keys, 3, n, 0, span);
    let expected = model_dedupe(&params, &events);
    Scenario { dataflow: "dedupe", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

fn top_k_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0e55_0000 + seed);
    let params = OpParams { window: gen_window(&mut rng), k: rng.random_range(1..=4), ..random_params(&mut rng) };
    let keys: &[&str] = if rng.random_bool(0.5) { &["a"] } else { &["a", "b"] };
    let n = rng.random_range(5..=90);
    let span = rng.random_range(40..=200);
    let items = rng.random_range(2..=6);
    let events = gen_input(&mut rng, keys, items, n, 0, span);
    let expected = model_top_k(&params, &events);
    Scenario { dataflow: "top_k", label: format!("seed {seed}"), params, inputs: vec![("events", events)], expected }
}

#[test]
fn dedupe_matches_the_model() {
    for seed in seeds(SEEDS) {
        dedupe_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn top_k_matches_the_model() {
    for seed in seeds(SEEDS) {
        top_k_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn dedupe_hand_cases() {
    // Windows of 10, lateness 5: late a@4 replaces a@7, then late a@4:0 (a smaller
    // record at the same time) replaces a@4:2; a@1 and b@5 are too late; a@22 is late
    // but in time for [20, 30).
    let params = OpParams { size: 10, allowed_lateness: 5, ..OpParams::default() };
    let events = vec![
        ev("a", 7, 1),
        ev("a", 4, 2),
        ev("a", 13, 1),
        ev("a", 4, 0),
        ev("a", 13, 1),
        ev("a", 30, 9),
        ev("a", 1, 5),
        ev("a", 22, 3),
        ev("b", 5, 1),
        ev("b", 35, 2),
    ];
    let kept = vec![e("a", 4, 0), e("a", 13, 1), e("a", 22, 3), e("a", 30, 9), e("b", 35, 2)];
    let dead = vec![dead_letter("events", &ev("a", 1, 5)), dead_letter("events", &ev("b", 5, 1))];
    let model = model_dedupe(&params, &events);
    hand_case(
        "dedupe",
        "late replacements",
        params,
        vec![("events", events)],
        vec![("kept", kept), ("dead_letter", dead)],
        model,
    );

    // With disorder allowance 20 and no lateness: b@3 arrives at watermark 8, in time.
    let params = OpParams { size: 10, max_out_of_orderness: 20, ..OpParams::default() };
    let events = vec![ev("b", 28, 1), ev("b", 9, 2), ev("b", 3, 3), ev("b", 45, 4), ev("b", 2, 5), ev("b", 21, 6)];
    // Watermarks 0, 8, 8, 8, 25, 25: b@2 is too late ([0, 10) + 0 <= 25), b@21 in time.
    let kept = vec![e("b", 3, 3), e("b", 21, 6), e("b", 45, 4)];
    let model = model_dedupe(&params, &events);
    hand_case(
        "dedupe",
        "disorder allowance",
        params,
        vec![("events", events)],
        vec![("kept", kept), ("dead_letter", vec![dead_letter("events", &ev("b", 2, 5))])],
        model,
    );
}

#[test]
fn top_k_hand_cases() {
    // k = 2, windows of 10, lateness 5 (group `k`, item `v`).
    let params =
        OpParams { window: WindowKind::Tumbling { size: 10 }, k: 2, allowed_lateness: 5, ..OpParams::default() };
    let items = [(1, 3), (2, 1), (3, 3), (4, 4), (5, 1), (6, 4), (7, 3), (8, 2)];
    let mut events: Vec<Ev> = items.iter().map(|&(ts, v)| ev("g", ts, v)).collect();
    // g@6:1 is late but in time: item 1 ties item 3 at 3 views and ranks below it;
    // g@5:2 is too late.
    events.extend([ev("h", 9, 7), ev("g", 12, 5), ev("g", 6, 1), ev("g", 14, 5), ev("g", 25, 0), ev("g", 5, 2)]);
    let row = |k: &str, start: u64, rank: u32, item: i64, count: u64| json!({"k": k, "start": start, "end": start + 10, "rank": rank, "item": item, "count": count});
    let top = vec![
        row("g", 0, 1, 3, 3),
        row("g", 0, 2, 1, 3),
        row("h", 0, 1, 7, 1),
        row("g", 10, 1, 5, 2),
        row("g", 20, 1, 0, 1),
    ];
    let top_all = vec![
        json!({"k": "g", "rank": 1, "v": 5}),
        json!({"k": "g", "rank": 2, "v": 5}),
        json!({"k": "h", "rank": 1, "v": 7}),
    ];
    let model = model_top_k(&params, &events);
    hand_case(
        "top_k",
        "late counts",
        params,
        vec![("events", events)],
        vec![("top", top), ("top_all", top_all), ("dead_letter", vec![dead_letter("events", &ev("g", 5, 2))])],
        model,
    );

    // Sliding windows of 10 every 5, k = 1: ties at equal counts go to the greater item.
    let params = OpParams { window: WindowKind::Sliding { size: 10, slide: 5 }, k: 1, ..OpParams::default() };
    let events = vec![ev("g", 1, 2), ev("g", 6, 1), ev("g", 7, 1), ev("g", 8, 2), ev("g", 12, 3)];
    let top = vec![row("g", 0, 1, 2, 2), row("g", 5, 1, 1, 2), row("g", 10, 1, 3, 1)];
    let top_all = vec![json!({"k": "g", "rank": 1, "v": 3})];
    let model = model_top_k(&params, &events);
    hand_case(
        "top_k",
        "sliding ties",
        params,
        vec![("events", events)],
        vec![("top", top), ("top_all", top_all), ("dead_letter", vec![])],
        model,
    );
}
