//! Seeded random inputs and parameters: records with few keys, disorder, late and
//! too-late records, repeats and jumps, two inputs at different rates and offsets, and
//! auctions for the `retiring` pipeline. Each draws from a `ChaCha8Rng` that a test
//! seeds, so a seed always gives the same scenario; `OPERATORS_SEEDS=n` runs more seeds.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tidemark::pipeline::prelude::WindowKind;

use super::ev;
use super::pipelines::{Ev, OpParams};

/// Random scenarios per operator, each replayed in every configuration.
pub(super) const SEEDS: u64 = 30;

/// Seeds per operator (`OPERATORS_SEEDS` overrides).
pub(super) fn seeds(default: u64) -> std::ops::Range<u64> {
    let n = std::env::var("OPERATORS_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    0..n
}

/// `n` records over about `[offset, offset + span)`: mostly mildly out of order, some
/// beyond the disorder allowance (late), some far behind (usually too late), some ahead
/// of the rest, some exact repeats of earlier records; now and then one record jumps
/// far into the future, making most of what follows on its input too late.
pub(super) fn gen_input(rng: &mut ChaCha8Rng, keys: &[&str], items: i64, n: usize, offset: u64, span: u64) -> Vec<Ev> {
    let step = (span / n.max(1) as u64).max(1);
    let disorder = rng.random_range(0..=12);
    let jump_at = if rng.random_bool(0.1) { rng.random_range(n / 2..=n) } else { usize::MAX };
    let mut clock = offset;
    let mut out: Vec<Ev> = Vec::with_capacity(n);
    for i in 0..n {
        if i == jump_at {
            out.push(ev(keys[0], clock + 10 * span, 0));
            continue;
        }
        if !out.is_empty() && rng.random_bool(0.08) {
            let again = out[rng.random_range(0..out.len())].clone();
            out.push(again);
            continue;
        }
        clock += rng.random_range(0..=2 * step);
        let ts = match rng.random_range(0..100) {
            0..55 => clock.saturating_sub(rng.random_range(0..=disorder)),
            55..72 => clock.saturating_sub(rng.random_range(disorder..=3 * disorder + 6)),
            72..84 => clock.saturating_sub(rng.random_range(0..=span / 2 + 10)),
            84..93 => clock + rng.random_range(0..=2 * disorder + 6),
            _ => clock,
        };
        let k = keys[rng.random_range(0..keys.len())];
        out.push(ev(k, ts, rng.random_range(0..items)));
    }
    out
}

/// Two inputs over overlapping time ranges, at different rates and offsets, so that
/// (fed in turns) one often runs far ahead of the other.
pub(super) fn gen_two_inputs(rng: &mut ChaCha8Rng) -> (Vec<Ev>, Vec<Ev>) {
    let keys = gen_keys(rng);
    // Now and then a long stream, whose keys' state must be retired and slots reused.
    let (span, n) =
        if rng.random_bool(0.15) { (rng.random_range(1000..=3000), 200) } else { (rng.random_range(80..=300), 60) };
    let (n_left, n_right) = (rng.random_range(2..=n), rng.random_range(2..=n));
    let right_offset = match rng.random_range(0..4) {
        0 => span / 2,
        1 => rng.random_range(0..=40),
        _ => 0,
    };
    let right_span = match rng.random_range(0..3) {
        0 => span / 3,
        1 => span * 2,
        _ => span,
    };
    let left = gen_input(rng, keys, 3, n_left, 0, span);
    let right = gen_input(rng, keys, 3, n_right, right_offset, right_span);
    if rng.random_bool(0.3) { (right, left) } else { (left, right) }
}

/// Few keys, mostly; sometimes enough to spread over both workers.
pub(super) fn gen_keys(rng: &mut ChaCha8Rng) -> &'static [&'static str] {
    match rng.random_range(0..6) {
        0 | 1 => &["a", "b"],
        2..=4 => &["a", "b", "c"],
        _ => &["a", "b", "c", "d", "e", "f", "g", "h"],
    }
}

fn gen_lateness(rng: &mut ChaCha8Rng) -> (u64, u64, Option<u64>) {
    let lateness = [0, 0, 1, 3, 10, 25, 200][rng.random_range(0..7)];
    let moo = [0, 0, 2, 5, 15, 100][rng.random_range(0..6)];
    let right_moo = if rng.random_bool(0.3) { Some([0, 4, 20][rng.random_range(0..3)]) } else { None };
    (lateness, moo, right_moo)
}

pub(super) fn gen_window(rng: &mut ChaCha8Rng) -> WindowKind {
    match rng.random_range(0..5) {
        0 | 1 => WindowKind::Tumbling { size: [5, 10, 20, 30][rng.random_range(0..4)] },
        2 => WindowKind::Sliding { size: 20, slide: 5 },
        3 => WindowKind::Sliding { size: 10, slide: 3 },
        _ => WindowKind::Sliding { size: 12, slide: 12 },
    }
}

pub(super) fn random_params(rng: &mut ChaCha8Rng) -> OpParams {
    let (allowed_lateness, max_out_of_orderness, right_max_out_of_orderness) = gen_lateness(rng);
    OpParams { allowed_lateness, max_out_of_orderness, right_max_out_of_orderness, ..OpParams::default() }
}

/// Keys opened one after another (each by one record with `v == 0`), records with
/// `v > 0` for keys opened recently, before their opener, inside and past their range,
/// in mild disorder with some late and too-late ones.
pub(super) fn gen_auctions(rng: &mut ChaCha8Rng, keys: usize, size: u64) -> Vec<Ev> {
    let names: Vec<String> = (0..keys).map(|i| format!("a{i}")).collect();
    let gap = rng.random_range(1..=size);
    let disorder = [0, 3, 12, 40][rng.random_range(0..4)];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let clock = i as u64 * gap + 50;
        out.push(ev(name, clock.saturating_sub(rng.random_range(0..=disorder)), 0));
        for _ in 0..rng.random_range(0..=6) {
            // A key opened up to ~2 ranges ago, or one opened a little later.
            let back = rng.random_range(0..=(2 * size / gap).min(i as u64 + 1) as usize);
            let j = (i + rng.random_range(0..=1)).saturating_sub(back).min(keys - 1);
            let ts = match rng.random_range(0..10) {
                0 => clock.saturating_sub(rng.random_range(0..=3 * disorder + 2 * size)),
                _ => clock.saturating_sub(rng.random_range(0..=disorder)),
            };
            out.push(ev(&names[j], ts, rng.random_range(1..=9)));
        }
    }
    out
}
