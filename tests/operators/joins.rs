//! Tests of the joins, `window_join`, `interval_join` and `as_of_join`: seeded random
//! scenarios against the models, and hand cases, among them one input far ahead of the
//! other and records exactly at an interval's bounds with no lateness.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tidemark::pipeline::prelude::WindowKind;

use super::generators::{SEEDS, gen_two_inputs, gen_window, random_params, seeds};
use super::models::{dead_letter, model_as_of_join, model_interval_join, model_window_join};
use super::pipelines::{Ev, OpParams};
use super::scenario::{ALL_CONFIGS, Scenario, e, hand_case};
use super::{ev, ev_json};

fn window_join_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0a11_0000 + seed);
    let params = OpParams { window: gen_window(&mut rng), ..random_params(&mut rng) };
    let (left, right) = gen_two_inputs(&mut rng);
    let expected = model_window_join(&params, &left, &right);
    let inputs = if rng.random_bool(0.3) {
        vec![("right", right), ("left", left)]
    } else {
        vec![("left", left), ("right", right)]
    };
    Scenario { dataflow: "window_join", label: format!("seed {seed}"), params, inputs, expected }
}

fn interval_join_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0b22_0000 + seed);
    let lower = rng.random_range(-15..=5);
    let upper = lower + rng.random_range(0..=15);
    let params = OpParams { lower, upper, ..random_params(&mut rng) };
    let (left, right) = gen_two_inputs(&mut rng);
    let expected = model_interval_join(&params, &left, &right);
    let inputs = if rng.random_bool(0.3) {
        vec![("right", right), ("left", left)]
    } else {
        vec![("left", left), ("right", right)]
    };
    Scenario { dataflow: "interval_join", label: format!("seed {seed}"), params, inputs, expected }
}

fn as_of_join_scenario(seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0c33_0000 + seed);
    let params = random_params(&mut rng);
    let (stream, table) = gen_two_inputs(&mut rng);
    let expected = model_as_of_join(&params, &stream, &table);
    let inputs = if rng.random_bool(0.3) {
        vec![("table", table), ("stream", stream)]
    } else {
        vec![("stream", stream), ("table", table)]
    };
    Scenario { dataflow: "as_of_join", label: format!("seed {seed}"), params, inputs, expected }
}

#[test]
fn window_join_matches_the_model() {
    for seed in seeds(SEEDS) {
        window_join_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn interval_join_matches_the_model() {
    for seed in seeds(SEEDS) {
        interval_join_scenario(seed).verify(ALL_CONFIGS);
    }
}

#[test]
fn as_of_join_matches_the_model() {
    for seed in seeds(SEEDS) {
        as_of_join_scenario(seed).verify(ALL_CONFIGS);
    }
}

/// `n` records of key `pad` from `from` on, one every 10 ms: they match nothing, and
/// only keep their input's watermark moving while the other input's stands still.
fn padding(from: u64, n: u64) -> Vec<Ev> {
    (0..n).map(|i| ev("pad", from + 10 * i, 0)).collect()
}

/// With `allowed_lateness` 0, a record exactly at the bound of the interval is applied
/// (it arrives before the watermark passes its time) and must still find its partner,
/// even though its own arrival moves its input's watermark to exactly its time, the
/// last watermark at which the partner may be kept. The other input keeps moving
/// (padding), so the operator sees the frontier stand at that point. A second record at
/// the same time arrives at `W = ts` and is on time too; one a millisecond earlier is
/// too late.
#[test]
fn interval_join_zero_lateness_keeps_left_records_at_the_upper_bound() {
    let params = OpParams { lower: -7, upper: 13, allowed_lateness: 0, ..OpParams::default() };
    // right.ts - left.ts = 13 = upper; the right watermark stops at 113.
    let mut left = vec![ev("u", 100, 1)];
    left.extend(padding(200, 200));
    let right = vec![ev("u", 113, 2), ev("u", 113, 3), ev("u", 112, 4)];
    let rows = vec![
        json!({"k": "u", "left": e("u", 100, 1), "right": e("u", 113, 2)}),
        json!({"k": "u", "left": e("u", 100, 1), "right": e("u", 113, 3)}),
    ];
    let model = model_interval_join(&params, &left, &right);
    hand_case(
        "interval_join",
        "upper bound, L = 0",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", vec![dead_letter("right", &ev("u", 112, 4))])],
        model,
    );
}

/// As above, for a right record at the lower bound.
#[test]
fn interval_join_zero_lateness_keeps_right_records_at_the_lower_bound() {
    let params = OpParams { lower: -7, upper: 13, allowed_lateness: 0, ..OpParams::default() };
    // right.ts - left.ts = -7 = lower; the left watermark stops at 107.
    let left = vec![ev("w", 107, 3), ev("w", 107, 5), ev("w", 106, 6)];
    let mut right = vec![ev("w", 100, 4)];
    right.extend(padding(200, 200));
    let rows = vec![
        json!({"k": "w", "left": e("w", 107, 3), "right": e("w", 100, 4)}),
        json!({"k": "w", "left": e("w", 107, 5), "right": e("w", 100, 4)}),
    ];
    let model = model_interval_join(&params, &left, &right);
    hand_case(
        "interval_join",
        "lower bound, L = 0",
        params,
        vec![("right", right), ("left", left)],
        vec![("joined", rows), ("dead_letter", vec![dead_letter("left", &ev("w", 106, 6))])],
        model,
    );
}

#[test]
fn window_join_hand_cases() {
    // Tumbling windows of 10, lateness 5: a late left record joins [0, 10), a too-late
    // one does not; a repeated right record makes every pair twice.
    let params = OpParams { window: WindowKind::Tumbling { size: 10 }, allowed_lateness: 5, ..OpParams::default() };
    let left = vec![ev("a", 1, 1), ev("a", 12, 2), ev("a", 3, 3), ev("a", 25, 4), ev("a", 2, 5), ev("b", 4, 6)];
    let right = vec![ev("a", 5, 10), ev("a", 14, 20), ev("a", 5, 10), ev("b", 8, 30), ev("a", 19, 40)];
    let row =
        |start: u64, l: Value, r: Value| json!({"k": "a", "start": start, "end": start + 10, "left": l, "right": r});
    let rows = vec![
        row(0, e("a", 1, 1), e("a", 5, 10)),
        row(0, e("a", 1, 1), e("a", 5, 10)),
        row(0, e("a", 3, 3), e("a", 5, 10)),
        row(0, e("a", 3, 3), e("a", 5, 10)),
        row(10, e("a", 12, 2), e("a", 14, 20)),
        row(10, e("a", 12, 2), e("a", 19, 40)),
    ];
    let dead = vec![dead_letter("left", &ev("a", 2, 5)), dead_letter("left", &ev("b", 4, 6))];
    let model = model_window_join(&params, &left, &right);
    hand_case(
        "window_join",
        "tumbling",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );

    // Sliding windows of 10 every 5, lateness 0: right a@8 arrives at watermark 12, too
    // late for [0, 10) but in time for [5, 15).
    let params = OpParams { window: WindowKind::Sliding { size: 10, slide: 5 }, ..OpParams::default() };
    let left = vec![ev("a", 7, 1)];
    let right = vec![ev("a", 3, 2), ev("a", 12, 3), ev("a", 8, 4)];
    let row =
        |start: u64, r: Value| json!({"k": "a", "start": start, "end": start + 10, "left": e("a", 7, 1), "right": r});
    let rows = vec![row(0, e("a", 3, 2)), row(5, e("a", 12, 3)), row(5, e("a", 8, 4))];
    let model = model_window_join(&params, &left, &right);
    hand_case(
        "window_join",
        "sliding",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", vec![])],
        model,
    );

    // The left input runs far ahead (watermark 5000) before the right one starts: the
    // right records are judged by their own watermark and still find their partners.
    let params = OpParams { window: WindowKind::Tumbling { size: 10 }, ..OpParams::default() };
    let mut left = vec![ev("a", 5, 1), ev("b", 21, 2)];
    left.extend(padding(100, 500));
    let right = vec![ev("a", 7, 3), ev("b", 28, 4), ev("b", 22, 5), ev("a", 9, 6)];
    let rows = vec![
        json!({"k": "a", "start": 0, "end": 10, "left": e("a", 5, 1), "right": e("a", 7, 3)}),
        json!({"k": "b", "start": 20, "end": 30, "left": e("b", 21, 2), "right": e("b", 28, 4)}),
        json!({"k": "b", "start": 20, "end": 30, "left": e("b", 21, 2), "right": e("b", 22, 5)}),
    ];
    let dead = vec![dead_letter("right", &ev("a", 9, 6))];
    let model = model_window_join(&params, &left, &right);
    hand_case(
        "window_join",
        "left far ahead",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );
}

#[test]
fn interval_join_hand_cases() {
    // Orders (left) and payments (right), payments fed first: a payment may come up
    // to 5 before and 20 after its order; lateness 10.
    let params = OpParams { lower: -5, upper: 20, allowed_lateness: 10, ..OpParams::default() };
    let orders = vec![ev("a", 102, 1), ev("b", 110, 2), ev("c", 120, 3), ev("d", 50, 4)];
    let payments = vec![ev("a", 100, 10), ev("c", 114, 30), ev("b", 131, 20), ev("b", 125, 21), ev("c", 116, 31)];
    let rows = vec![
        // Paid 2 before the order, and fed before it.
        json!({"k": "a", "left": e("a", 102, 1), "right": e("a", 100, 10)}),
        // Late (watermark 131) but in time, 15 after the order; b@131 is 21 after.
        json!({"k": "b", "left": e("b", 110, 2), "right": e("b", 125, 21)}),
    ];
    // c@114 is 6 before its order; c@116 would match but is too late (116 + 10 < 131).
    let dead = vec![dead_letter("left", &ev("d", 50, 4)), dead_letter("right", &ev("c", 116, 31))];
    let model = model_interval_join(&params, &orders, &payments);
    hand_case(
        "interval_join",
        "orders and payments",
        params,
        vec![("right", payments), ("left", orders)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );

    // A window entirely before the left records: bounds (-30, -10).
    let params =
        OpParams { lower: -30, upper: -10, allowed_lateness: 3, max_out_of_orderness: 4, ..OpParams::default() };
    let left = vec![ev("a", 50, 1), ev("a", 60, 2), ev("a", 55, 3), ev("a", 51, 4)];
    let right = vec![ev("a", 20, 5), ev("a", 40, 6), ev("a", 41, 7), ev("a", 30, 8), ev("a", 45, 9)];
    // Left watermarks 0, 46, 56, 56: a@51 is too late (51 + 3 < 56). Right watermarks
    // 0, 16, 36, 37, 37: a@30 is too late (30 + 3 < 37).
    let row = |l: Value, r: Value| json!({"k": "a", "left": l, "right": r});
    let rows = vec![
        row(e("a", 50, 1), e("a", 20, 5)),
        row(e("a", 50, 1), e("a", 40, 6)),
        row(e("a", 60, 2), e("a", 40, 6)),
        row(e("a", 60, 2), e("a", 41, 7)),
        row(e("a", 60, 2), e("a", 45, 9)),
        row(e("a", 55, 3), e("a", 40, 6)),
        row(e("a", 55, 3), e("a", 41, 7)),
        row(e("a", 55, 3), e("a", 45, 9)),
    ];
    let dead = vec![dead_letter("left", &ev("a", 51, 4)), dead_letter("right", &ev("a", 30, 8))];
    let model = model_interval_join(&params, &left, &right);
    hand_case(
        "interval_join",
        "negative bounds",
        params,
        vec![("left", left), ("right", right)],
        vec![("joined", rows), ("dead_letter", dead)],
        model,
    );
}

#[test]
fn as_of_join_hand_cases() {
    // Lateness 5. Table a@16 arrives late (watermark 20) and corrects a@17, which it now
    // governs; a@2 is too late and never governs a@5; of two versions at 20 the greater
    // record wins; b has no version.
    let params = OpParams { allowed_lateness: 5, ..OpParams::default() };
    let stream = vec![
        ev("a", 5, 1),
        ev("b", 7, 5),
        ev("a", 12, 2),
        ev("a", 10, 6),
        ev("a", 17, 3),
        ev("a", 25, 4),
        ev("a", 3, 7),
    ];
    let table =
        vec![ev("a", 0, 100), ev("a", 10, 200), ev("a", 20, 400), ev("a", 16, 300), ev("a", 20, 399), ev("a", 2, 50)];
    let row = |d: Value, v: Value| json!({"record": d, "version": v});
    let rows = vec![
        row(e("a", 5, 1), e("a", 0, 100)),
        row(e("b", 7, 5), Value::Null),
        row(e("a", 12, 2), e("a", 10, 200)),
        row(e("a", 10, 6), e("a", 10, 200)),
        row(e("a", 17, 3), e("a", 16, 300)),
        row(e("a", 25, 4), e("a", 20, 400)),
    ];
    let dead = vec![dead_letter("stream", &ev("a", 3, 7)), dead_letter("table", &ev("a", 2, 50))];
    let model = model_as_of_join(&params, &stream, &table);
    hand_case(
        "as_of_join",
        "late version",
        params.clone(),
        vec![("stream", stream.clone()), ("table", table.clone())],
        vec![("enriched", rows.clone()), ("dead_letter", dead.clone())],
        model.clone(),
    );
    // The same, the table fed first.
    hand_case(
        "as_of_join",
        "late version, table first",
        params,
        vec![("table", table), ("stream", stream)],
        vec![("enriched", rows), ("dead_letter", dead)],
        model,
    );

    // The stream runs far ahead (disorder allowance 5); versions arriving much later,
    // in time by the table's own watermark, govern the stream records fed long before.
    let params = OpParams { max_out_of_orderness: 5, ..OpParams::default() };
    let mut stream = vec![ev("a", 10, 1), ev("a", 30, 2), ev("b", 30, 3)];
    stream.extend(padding(100, 300));
    // Table watermarks 0, 0, 15, 26, 26: a@8 is too late (8 < 26, lateness 0).
    let table = vec![ev("a", 5, 10), ev("a", 20, 20), ev("b", 31, 30), ev("a", 30, 40), ev("a", 8, 50)];
    let mut rows = vec![
        json!({"record": e("a", 10, 1), "version": e("a", 5, 10)}),
        json!({"record": e("a", 30, 2), "version": e("a", 30, 40)}),
        json!({"record": e("b", 30, 3), "version": null}),
    ];
    rows.extend(padding(100, 300).iter().map(|p| json!({"record": ev_json(p), "version": null})));
    let model = model_as_of_join(&params, &stream, &table);
    hand_case(
        "as_of_join",
        "stream far ahead",
        params,
        vec![("stream", stream), ("table", table)],
        vec![("enriched", rows), ("dead_letter", vec![dead_letter("table", &ev("a", 8, 50))])],
        model,
    );
}
