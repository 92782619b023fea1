//! Lloyd's algorithm that re-converges incrementally, with exactly the results of
//! running it from scratch.
//!
//! The state keeps every round of the last run: the centroids the round assigned
//! points to, each point's assignment, the exact per-cluster sums of its points
//! ([`ExactSum`], so a sum is the same whatever the order points join and leave it),
//! and, measured against the round's *reference* centroids (those of its last full
//! pass), each point's margin: how much farther its second-nearest centroid is than
//! its nearest (√d₂ − √d₁).
//!
//! When points change, the run is replayed from the same seeds. In round r the new
//! centroids are compared with the reference ones: if no centroid moved by more than
//! Δ, a point whose margin exceeds 2Δ still has the same nearest centroid (triangle
//! inequality), so only points with a smaller margin, points added since the
//! reference, and points whose multiplicity changed are assigned again, and the sums
//! are corrected by the moves. One new point among 100K moves every centroid by
//! ~1/n of a cluster's width, so a round re-checks a handful of points instead of
//! all of them. A round whose centroids drifted too far from its reference (or that
//! the run did not reach before) gets a full pass, which becomes its new reference.
//!
//! Floating point: distances are computed exactly as the plain algorithm computes
//! them, margins are stored rounded down and shrunk by a relative 10⁻⁹ (far above
//! the rounding error of a squared distance), displacements enlarged by 10⁻⁶, and
//! ties (margin 0) are always re-checked; so every assignment is the one a from-
//! scratch run makes, and the means, from exact sums, are bit-identical.
//!
//! Memory: about 2 bytes per point per stored round plus a margin list of 1/16 of
//! the points per round; rounds past [`STORED_POINT_ROUNDS`] points × rounds are
//! recomputed with full passes every time.

use std::collections::{BTreeMap, HashMap};

use tidemark::pipeline::prelude::*;

use super::Point;

/// An assignment slot that holds no assignment (a point not yet, or no longer,
/// accounted in a round's sums). `k` is at most 1000.
const NONE: u16 = u16::MAX;

/// The most point-rounds kept between runs (about 2.5 bytes each).
const STORED_POINT_ROUNDS: usize = 32 << 20;

/// The points of a group, by slot: a point keeps its slot while it has any
/// multiplicity; freed slots are reclaimed by compaction.
#[derive(Default, Serialize, Deserialize)]
struct Points {
    dims: usize,
    coords: Vec<f64>,
    counts: Vec<i64>,
    ids: Vec<Text>,
}

impl Points {
    fn at(&self, slot: usize) -> &[f64] {
        &self.coords[slot * self.dims..(slot + 1) * self.dims]
    }

    fn len(&self) -> usize {
        self.counts.len()
    }
}

/// One round of the last run.
#[derive(Serialize, Deserialize)]
struct Round {
    /// The centroids this round assigned to (flat, `clusters × dims`).
    centroids: Vec<f64>,
    /// The centroids of the last full pass, which the margins are measured against.
    reference: Vec<f64>,
    /// Each slot's cluster, or [`NONE`].
    assign: Vec<u16>,
    /// The smallest margins against `reference` (rounded down), ascending.
    near: Vec<(f32, u32)>,
    /// Every slot below `covered` and not in `near` has a margin of at least `cap`.
    cap: f64,
    /// Slots from here on were added after the full pass.
    covered: usize,
    /// The largest re-check threshold used since the full pass: slots with a larger
    /// margin have kept their reference assignment.
    high: f64,
    /// Slots below `covered` whose multiplicity changed: not in the sums.
    unaccounted: Vec<u32>,
    /// Exact sums per cluster and dimension, and points per cluster.
    sums: Vec<ExactSum>,
    sizes: Vec<i64>,
}

/// The squared Euclidean distance, computed as the plain algorithm computes it.
fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// The nearest centroid (ties to the lower index), its squared distance, and the
/// second-smallest squared distance.
fn nearest2(centroids: &[f64], dims: usize, p: &[f64]) -> (u16, f64, f64) {
    let (mut best, mut d1, mut d2) = (0, f64::INFINITY, f64::INFINITY);
    for (j, c) in centroids.chunks_exact(dims).enumerate() {
        let d = squared_distance(c, p);
        if d < d1 {
            (best, d1, d2) = (j as u16, d, d1);
        } else if d < d2 {
            d2 = d;
        }
    }
    (best, d1, d2)
}

/// A lower bound of √d₂ − √d₁ as `f32`; 0 (always re-checked) when in doubt.
fn margin(d1: f64, d2: f64, clusters: usize) -> f32 {
    if clusters == 1 {
        return f32::INFINITY;
    }
    if !d1.is_finite() || !d2.is_finite() {
        return 0.0;
    }
    let (s1, s2) = (d1.sqrt(), d2.sqrt());
    let m = (s2 - s1) - 1e-9 * (s1 + s2);
    if m.is_nan() || m <= 0.0 {
        return 0.0;
    }
    let f = m as f32;
    if f as f64 > m { f.next_down() } else { f }
}

/// Twice the largest distance a centroid moved from `from` to `to`, enlarged for
/// rounding; infinite when it cannot be computed.
fn threshold(from: &[f64], to: &[f64], dims: usize) -> f64 {
    if from.len() != to.len() {
        return f64::INFINITY;
    }
    let most =
        from.chunks_exact(dims).zip(to.chunks_exact(dims)).map(|(a, b)| squared_distance(a, b)).fold(0.0, f64::max);
    let t = 2.0 * most.sqrt() * (1.0 + 1e-6);
    if t.is_finite() { t } else { f64::INFINITY }
}

/// `x` saturated to the finite range.
fn finite(x: f64) -> f64 {
    x.clamp(f64::MIN, f64::MAX)
}

impl Round {
    /// A full pass: every live point assigned to `centroids`, which become the
    /// reference.
    fn full(points: &Points, centroids: &[f64], live: usize) -> Round {
        let (dims, clusters) = (points.dims, centroids.len() / points.dims);
        let mut round = Round {
            centroids: centroids.to_vec(),
            reference: centroids.to_vec(),
            assign: vec![NONE; points.len()],
            near: Vec::with_capacity(live),
            cap: f64::INFINITY,
            covered: points.len(),
            high: 0.0,
            unaccounted: Vec::new(),
            sums: vec![ExactSum::default(); clusters * dims],
            sizes: vec![0; clusters],
        };
        for slot in 0..points.len() {
            let count = points.counts[slot];
            if count <= 0 {
                continue;
            }
            let p = points.at(slot);
            let (a, d1, d2) = nearest2(centroids, dims, p);
            round.add(a, p, count);
            round.assign[slot] = a;
            round.near.push((margin(d1, d2, clusters), slot as u32));
        }
        // Keep the smallest margins only: the rest are safe below `cap`.
        let keep = live / 16 + 64;
        if round.near.len() > keep {
            round.near.select_nth_unstable_by(keep, |a, b| a.0.total_cmp(&b.0));
            round.cap = round.near[keep].0 as f64;
            round.near.truncate(keep);
            round.near.shrink_to_fit();
        }
        round.near.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        round
    }

    fn add(&mut self, cluster: u16, p: &[f64], count: i64) {
        let dims = p.len();
        let at = cluster as usize * dims;
        for (sum, x) in self.sums[at..at + dims].iter_mut().zip(p) {
            sum.add(*x, count);
        }
        self.sizes[cluster as usize] += count;
    }

    /// Takes `slot` (with `count`) out of the sums, before its multiplicity changes.
    fn forget(&mut self, slot: usize, p: &[f64], count: i64) {
        if slot >= self.assign.len() {
            self.assign.resize(slot + 1, NONE);
        }
        let a = std::mem::replace(&mut self.assign[slot], NONE);
        if a != NONE {
            self.add(a, p, -count);
        }
        if slot < self.covered {
            self.unaccounted.push(slot as u32);
        }
    }

    /// Brings the round to `centroids`, re-checking only the points whose nearest
    /// centroid may have changed; `false` if too many may have (a full pass is due).
    fn revisit(&mut self, points: &Points, centroids: &[f64], live: usize, work: &mut Work) -> bool {
        let dims = points.dims;
        let high = threshold(&self.reference, centroids, dims).max(self.high);
        let near = self.near.partition_point(|(m, _)| (*m as f64) <= high);
        let fresh = points.len() - self.covered;
        if high >= self.cap || near + fresh > live / 8 + 64 {
            return false;
        }
        self.high = high;
        self.centroids.clear();
        self.centroids.extend_from_slice(centroids);
        self.assign.resize(points.len(), NONE);
        let near: Vec<u32> = self.near[..near].iter().map(|(_, slot)| *slot).collect();
        let unaccounted = std::mem::take(&mut self.unaccounted);
        let candidates = near.into_iter().chain(unaccounted).map(|s| s as usize).chain(self.covered..points.len());
        for slot in candidates {
            let count = points.counts[slot];
            if count <= 0 {
                continue;
            }
            work.rechecked += 1;
            let p = points.at(slot);
            let (a, _, _) = nearest2(centroids, dims, p);
            let old = self.assign[slot];
            if old != a {
                if old != NONE {
                    self.add(old, p, -count);
                }
                self.add(a, p, count);
                self.assign[slot] = a;
            }
        }
        work.revisited += 1;
        true
    }

    /// The next centroids: each cluster's exact mean, or its centroid if empty.
    fn means(&self, dims: usize) -> Vec<f64> {
        let mut next = self.centroids.clone();
        for (j, &size) in self.sizes.iter().enumerate() {
            if size > 0 {
                for d in 0..dims {
                    next[j * dims + d] = finite(self.sums[j * dims + d].value() / size as f64);
                }
            }
        }
        next
    }
}

/// What a run found.
pub(super) struct Outcome<'a> {
    /// The final centroids, flat.
    pub centroids: &'a [f64],
    pub dims: usize,
    /// Points per cluster (with multiplicities).
    pub sizes: &'a [i64],
    pub inertia: f64,
    pub rounds: u64,
}

/// One group's points and its incremental Lloyd's algorithm (checkpoints hold it
/// whole: the rounds kept are what lets a restored run re-converge incrementally).
#[derive(Serialize, Deserialize)]
pub(super) struct Lloyd {
    k: usize,
    max_rounds: u64,
    points: Points,
    slots: HashMap<Point, u32>,
    /// Live points by seeding order, with multiplicities.
    order: BTreeMap<(Text, Vec<Num>), i64>,
    live: usize,
    pending: HashMap<Point, i64>,
    seeds: Vec<f64>,
    rounds: Vec<Round>,
    /// Where the last run ended (an index into `rounds`) and its round count.
    last: Option<(usize, u64)>,
    /// The assignments shown per slot: `(cluster, multiplicity)`.
    shown: Vec<(u16, i64)>,
    /// Work done so far.
    pub(super) work: Work,
}

/// Counters of the work runs did.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(super) struct Work {
    /// Rounds computed with a pass over every point.
    pub full: u64,
    /// Rounds brought up to date by re-checking some points.
    pub revisited: u64,
    /// Points re-checked in revisited rounds.
    pub rechecked: u64,
}

impl Lloyd {
    pub(super) fn new(k: usize, max_rounds: u64) -> Lloyd {
        Lloyd {
            k,
            max_rounds,
            points: Points::default(),
            slots: HashMap::new(),
            order: BTreeMap::new(),
            live: 0,
            pending: HashMap::new(),
            seeds: Vec::new(),
            rounds: Vec::new(),
            last: None,
            shown: Vec::new(),
            work: Work::default(),
        }
    }

    /// Records a change of `point`'s multiplicity, applied by the next run.
    pub(super) fn change(&mut self, point: Point, diff: i64) {
        *self.pending.entry(point).or_insert(0) += diff;
    }

    /// Whether the group has no points and shows no assignments.
    pub(super) fn is_empty(&self) -> bool {
        self.live == 0 && self.pending.is_empty() && self.shown.iter().all(|(_, n)| *n == 0)
    }

    /// Applies the pending changes and re-converges; `None` when no point is left.
    pub(super) fn run(&mut self) -> Option<Outcome<'_>> {
        self.apply();
        if self.live == 0 {
            self.rounds.clear();
            self.last = None;
            return None;
        }
        let seeds = self.seed_coords();
        if seeds != self.seeds {
            self.rounds.clear();
            self.seeds = seeds;
        }
        let (index, rounds) = self.converge();
        self.last = Some((index, rounds));
        let round = &self.rounds[index];
        let mut inertia = ExactSum::default();
        let dims = self.points.dims;
        for (slot, &a) in round.assign.iter().enumerate() {
            if a != NONE {
                let c = &round.centroids[a as usize * dims..(a as usize + 1) * dims];
                inertia.add(squared_distance(c, self.points.at(slot)), self.points.counts[slot]);
            }
        }
        Some(Outcome { centroids: &round.centroids, dims, sizes: &round.sizes, inertia: inertia.value(), rounds })
    }

    /// The assignment changes since the last call, as `(id, cluster, diff)`; then
    /// reclaims the slots of departed points if they are many.
    pub(super) fn assignment_changes(&mut self, mut emit: impl FnMut(&Text, u16, i64)) {
        self.shown.resize(self.points.len(), (NONE, 0));
        let assign = self.last.map(|(index, _)| &self.rounds[index].assign);
        for (slot, shown) in self.shown.iter_mut().enumerate() {
            let now = match assign {
                Some(assign) if self.points.counts[slot] > 0 => (assign[slot], self.points.counts[slot]),
                _ => (NONE, 0),
            };
            if *shown != now {
                if shown.1 > 0 {
                    emit(&self.points.ids[slot], shown.0, -shown.1);
                }
                if now.1 > 0 {
                    emit(&self.points.ids[slot], now.0, now.1);
                }
                *shown = now;
            }
        }
        if self.points.len() - self.live > self.live.max(1024) {
            self.compact();
        }
    }

    /// Moves the pending changes into the points and every stored round.
    fn apply(&mut self) {
        for (point, diff) in std::mem::take(&mut self.pending) {
            if diff == 0 {
                continue;
            }
            if self.points.dims == 0 {
                self.points.dims = point.coords.len();
            }
            if point.coords.len() != self.points.dims {
                // The router admits one dimension per input; never reached.
                continue;
            }
            let slot = match self.slots.get(&point) {
                Some(&slot) => slot as usize,
                None => {
                    let slot = self.points.len();
                    self.points.coords.extend(point.coords.iter().map(|x| x.get()));
                    self.points.counts.push(0);
                    self.points.ids.push(point.id.clone());
                    self.slots.insert(point.clone(), slot as u32);
                    slot
                }
            };
            let old = self.points.counts[slot];
            let new = old + diff;
            for round in &mut self.rounds {
                round.forget(slot, self.points.at(slot), old.max(0));
            }
            self.points.counts[slot] = new;
            self.live = self.live + usize::from(new > 0) - usize::from(old > 0);
            let key = (point.id, point.coords);
            let n = self.order.entry(key.clone()).or_insert(0);
            *n += diff;
            if *n == 0 {
                self.order.remove(&key);
            }
        }
    }

    /// The coordinates of the `k` first points in seeding order, flat.
    fn seed_coords(&self) -> Vec<f64> {
        let mut seeds = Vec::new();
        let ranked = self.order.iter().flat_map(|((_, coords), n)| std::iter::repeat_n(coords, (*n).max(0) as usize));
        for coords in ranked.take(self.k) {
            seeds.extend(coords.iter().map(|x| x.get()));
        }
        seeds
    }

    /// Runs Lloyd's rounds from the seeds, revisiting stored rounds; the index of
    /// the final round in `rounds` and the round count.
    fn converge(&mut self) -> (usize, u64) {
        let dims = self.points.dims;
        let limit = (STORED_POINT_ROUNDS / self.points.len().max(1)).max(4);
        let mut centroids = self.seeds.clone();
        let mut r = 0usize;
        loop {
            let index = r.min(limit);
            let kept = index < limit && index < self.rounds.len();
            if !(kept && self.rounds[index].revisit(&self.points, &centroids, self.live, &mut self.work)) {
                self.work.full += 1;
                let round = Round::full(&self.points, &centroids, self.live);
                match self.rounds.get_mut(index) {
                    Some(slot) => *slot = round,
                    None => self.rounds.push(round),
                }
            }
            if r as u64 == self.max_rounds {
                self.rounds.truncate(index + 3);
                return (index, self.max_rounds);
            }
            let next = self.rounds[index].means(dims);
            if next == centroids {
                self.rounds.truncate(index + 3);
                return (index, r as u64 + 1);
            }
            centroids = next;
            r += 1;
        }
    }

    /// Drops the slots of departed points; the next run starts from scratch.
    fn compact(&mut self) {
        let dims = self.points.dims;
        let mut points = Points { dims, ..Points::default() };
        let mut shown = Vec::with_capacity(self.live);
        self.slots.retain(|_, slot| self.points.counts[*slot as usize] > 0);
        for (point, slot) in &mut self.slots {
            let old = *slot as usize;
            *slot = points.len() as u32;
            points.coords.extend_from_slice(&self.points.coords[old * dims..(old + 1) * dims]);
            points.counts.push(self.points.counts[old]);
            points.ids.push(point.id.clone());
            shown.push(self.shown[old]);
        }
        self.points = points;
        self.shown = shown;
        self.rounds.clear();
        self.last = None;
        self.seeds.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Lloyd's algorithm from scratch, as `kmeans` documents it: centroids, sizes,
    /// inertia, rounds and each point's cluster.
    fn plain(points: &[(Text, Vec<f64>)], k: usize, max_rounds: u64) -> (Vec<f64>, Vec<i64>, f64, u64, Vec<u16>) {
        let mut seeds: Vec<&(Text, Vec<f64>)> = points.iter().collect();
        seeds.sort_by(|a, b| (&a.0, &a.1).partial_cmp(&(&b.0, &b.1)).unwrap());
        let dims = points[0].1.len();
        let mut c: Vec<f64> = seeds.iter().take(k).flat_map(|p| p.1.clone()).collect();
        let mut rounds = max_rounds;
        let assign = |c: &[f64]| points.iter().map(|p| nearest2(c, dims, &p.1).0).collect::<Vec<u16>>();
        for round in 1..=max_rounds {
            let a = assign(&c);
            let mut next = c.clone();
            for j in 0..c.len() / dims {
                let members: Vec<&Vec<f64>> =
                    points.iter().zip(&a).filter(|(_, a)| **a as usize == j).map(|(p, _)| &p.1).collect();
                if members.is_empty() {
                    continue;
                }
                for d in 0..dims {
                    let mut sum = ExactSum::default();
                    members.iter().for_each(|m| sum.add(m[d], 1));
                    next[j * dims + d] = sum.value() / members.len() as f64;
                }
            }
            if next == c {
                rounds = round;
                break;
            }
            c = next;
        }
        let a = assign(&c);
        let mut sizes = vec![0; c.len() / dims];
        let mut inertia = ExactSum::default();
        for (p, &j) in points.iter().zip(&a) {
            sizes[j as usize] += 1;
            inertia.add(squared_distance(&c[j as usize * dims..(j as usize + 1) * dims], &p.1), 1);
        }
        (c, sizes, inertia.value(), rounds, a)
    }

    fn point(rng: &mut ChaCha8Rng, centers: &[Vec<f64>]) -> Point {
        let c = &centers[rng.random_range(0..centers.len())];
        // Quarter units: exact in binary, so ties between centroids happen.
        let coords = c.iter().map(|x| Num::new(x + rng.random_range(-40..=40) as f64 / 4.0).unwrap()).collect();
        Point { id: format!("p{:04}", rng.random_range(0..5000)).into(), ts: rng.random_range(0..3), coords }
    }

    /// Applies random steps of additions, duplicates and removals, and after each
    /// compares every result with a from-scratch run.
    fn check(seed: u64, dims: usize, k: usize, max_rounds: u64, initial: usize, steps: usize) -> Work {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centers: Vec<Vec<f64>> =
            (0..4).map(|_| (0..dims).map(|_| rng.random_range(-30.0..30.0f64).round()).collect()).collect();
        let mut lloyd = Lloyd::new(k, max_rounds);
        let mut live: BTreeMap<Point, i64> = BTreeMap::new();
        let mut shown: BTreeMap<(Text, u16), i64> = BTreeMap::new();
        for step in 0..steps {
            let adds = if step == 0 { initial } else { rng.random_range(0..4) };
            for _ in 0..adds {
                let p = point(&mut rng, &centers);
                *live.entry(p.clone()).or_default() += 1;
                lloyd.change(p, 1);
            }
            // Sometimes a duplicate, sometimes a departure (several, now and then).
            if rng.random_bool(0.3)
                && let Some((p, _)) = live.iter().nth(rng.random_range(0..live.len()))
            {
                let p = p.clone();
                *live.entry(p.clone()).or_default() += 1;
                lloyd.change(p, 1);
            }
            let departures = if rng.random_bool(0.1) { live.len() / 3 } else { rng.random_range(0..2) };
            for _ in 0..departures.min(live.len()) {
                let p = live.keys().nth(rng.random_range(0..live.len())).unwrap().clone();
                let n = live.get_mut(&p).unwrap();
                *n -= 1;
                if *n == 0 {
                    live.remove(&p);
                }
                lloyd.change(p, -1);
            }
            let what = format!("seed {seed} step {step}");
            let points: Vec<(Text, Vec<f64>)> = live
                .iter()
                .flat_map(|(p, n)| {
                    std::iter::repeat_n((p.id.clone(), p.coords.iter().map(|x| x.get()).collect()), *n as usize)
                })
                .collect();
            match lloyd.run() {
                None => assert!(points.is_empty(), "{what}"),
                Some(run) => {
                    let (c, sizes, inertia, rounds, _) = plain(&points, k, max_rounds);
                    assert_eq!(run.centroids, &c[..], "{what}: centroids");
                    assert_eq!(run.sizes, &sizes[..], "{what}: sizes");
                    assert_eq!(run.inertia.to_bits(), inertia.to_bits(), "{what}: inertia");
                    assert_eq!(run.rounds, rounds, "{what}: rounds");
                }
            }
            lloyd.assignment_changes(|id, cluster, diff| {
                let n = shown.entry((id.clone(), cluster)).or_default();
                *n += diff;
                if *n == 0 {
                    shown.remove(&(id.clone(), cluster));
                }
            });
            let mut expected: BTreeMap<(Text, u16), i64> = BTreeMap::new();
            if !points.is_empty() {
                let (.., assign) = plain(&points, k, max_rounds);
                for (p, a) in points.iter().zip(assign) {
                    *expected.entry((p.0.clone(), a)).or_default() += 1;
                }
            }
            assert_eq!(shown, expected, "{what}: assignments");
        }
        assert_eq!(lloyd.is_empty(), live.is_empty());
        lloyd.work
    }

    #[test]
    fn small_groups_with_ties_duplicates_and_departures() {
        for seed in 0..12 {
            let (dims, k) = (1 + seed as usize % 3, 1 + seed as usize % 5);
            check(seed, dims, k, if seed % 4 == 0 { 3 } else { 50 }, 5, 40);
        }
    }

    #[test]
    fn a_large_group_re_converges_point_by_point() {
        for (seed, dims, k, n) in [(100, 2, 4, 3000), (101, 3, 6, 2000)] {
            let work = check(seed, dims, k, 50, n, 40);
            // Most rounds were brought up to date by re-checking a few points.
            assert!(work.revisited > 2 * work.full, "{work:?}");
            assert!(work.rechecked < work.revisited * n as u64 / 10, "{work:?}");
        }
    }

    #[test]
    fn margins_are_lower_bounds() {
        assert_eq!(margin(1.0, 1.0, 2), 0.0);
        assert_eq!(margin(1.0, 4.0, 1), f32::INFINITY);
        assert_eq!(margin(f64::INFINITY, f64::INFINITY, 2), 0.0);
        let m = margin(1.0, 4.0, 2);
        assert!(m > 0.99 && (m as f64) < 1.0, "{m}");
        assert_eq!(threshold(&[0.0, 0.0], &[3.0, 4.0], 2), 10.0 * (1.0 + 1e-6));
    }
}
