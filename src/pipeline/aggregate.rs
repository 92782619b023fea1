//! Aggregates over a window's values: exact under retraction.
//!
//! An [`Aggregate`] folds values with multiplicities into a state and reads a result
//! from it. Every built-in is exact: retracting a value restores the previous result
//! bit for bit (sums use [`ExactSum`]; min and max keep the multiset of values, and
//! only rescan it when an extreme value is retracted).

use super::{Data, Diff, ExactSum, Num};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A fold of values with multiplicities, as used by [`Stream::window_aggregate`](super::Stream::window_aggregate).
///
/// # Constraints
/// - `update(s, v, d)` then `update(s, v, -d)` leaves a state whose `output` equals
///   the one before (exactness under retraction).
/// - `merge` is the same as updating `into` with every value folded into `from`
///   (session windows merge their states).
/// - `output` is only called on a state with a positive total multiplicity.
pub trait Aggregate: Clone + 'static {
    /// The value folded in, per event.
    type In: Data;
    /// The per-window state (checkpoints hold it: serde, in any encoding).
    type State: Default + Serialize + DeserializeOwned + 'static;
    /// The result.
    type Out: Data;
    /// Folds `value` in `diff` times (negative `diff` retracts).
    fn update(&self, state: &mut Self::State, value: &Self::In, diff: Diff);
    /// Folds everything in `from` into `into`.
    fn merge(&self, into: &mut Self::State, from: Self::State);
    /// Reads the result.
    fn output(&self, state: &Self::State) -> Self::Out;
}

/// The number of events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl Aggregate for Count {
    type In = ();
    type State = i64;
    type Out = u64;
    fn update(&self, state: &mut i64, _: &(), diff: Diff) {
        *state += diff as i64;
    }
    fn merge(&self, into: &mut i64, from: i64) {
        *into += from;
    }
    fn output(&self, state: &i64) -> u64 {
        (*state).max(0) as u64
    }
}

/// The exact sum of the values.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sum;

impl Aggregate for Sum {
    type In = Num;
    type State = ExactSum;
    type Out = Num;
    fn update(&self, state: &mut ExactSum, value: &Num, diff: Diff) {
        state.add(value.get(), diff as i64);
    }
    fn merge(&self, into: &mut ExactSum, from: ExactSum) {
        into.merge(&from);
    }
    fn output(&self, state: &ExactSum) -> Num {
        Num::result(state.value())
    }
}

/// The smallest value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Min;
/// The largest value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Max;

impl Aggregate for Min {
    type In = Num;
    type State = Extremes;
    type Out = Num;
    fn update(&self, state: &mut Extremes, value: &Num, diff: Diff) {
        state.update(*value, diff);
    }
    fn merge(&self, into: &mut Extremes, from: Extremes) {
        into.merge(from);
    }
    fn output(&self, state: &Extremes) -> Num {
        state.min().unwrap_or_default()
    }
}

impl Aggregate for Max {
    type In = Num;
    type State = Extremes;
    type Out = Num;
    fn update(&self, state: &mut Extremes, value: &Num, diff: Diff) {
        state.update(*value, diff);
    }
    fn merge(&self, into: &mut Extremes, from: Extremes) {
        into.merge(from);
    }
    fn output(&self, state: &Extremes) -> Num {
        state.max().unwrap_or_default()
    }
}

/// The mean of the values: the exact sum, rounded once, divided by the count.
#[derive(Clone, Copy, Debug, Default)]
pub struct Avg;

impl Aggregate for Avg {
    type In = Num;
    type State = (i64, ExactSum);
    type Out = Num;
    fn update(&self, state: &mut (i64, ExactSum), value: &Num, diff: Diff) {
        state.0 += diff as i64;
        state.1.add(value.get(), diff as i64);
    }
    fn merge(&self, into: &mut (i64, ExactSum), from: (i64, ExactSum)) {
        into.0 += from.0;
        into.1.merge(&from.1);
    }
    fn output(&self, state: &(i64, ExactSum)) -> Num {
        Num::result(state.1.value() / state.0.max(1) as f64)
    }
}

/// Count, sum, min, max and mean together, as `window_agg` reports them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats;

/// The result of [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StatsOut {
    /// Number of events.
    pub count: u64,
    /// Exact sum, rounded once.
    pub sum: Num,
    /// Smallest value.
    pub min: Num,
    /// Largest value.
    pub max: Num,
    /// `sum / count`.
    pub avg: Num,
}

/// The state of [`Stats`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatsState {
    count: i64,
    sum: ExactSum,
    extremes: Extremes,
}

impl Aggregate for Stats {
    type In = Num;
    type State = StatsState;
    type Out = StatsOut;
    fn update(&self, state: &mut StatsState, value: &Num, diff: Diff) {
        state.count += diff as i64;
        state.sum.add(value.get(), diff as i64);
        state.extremes.update(*value, diff);
    }
    fn merge(&self, into: &mut StatsState, from: StatsState) {
        into.count += from.count;
        into.sum.merge(&from.sum);
        into.extremes.merge(from.extremes);
    }
    fn output(&self, state: &StatsState) -> StatsOut {
        let sum = state.sum.value();
        let count = state.count.max(0) as u64;
        StatsOut {
            count,
            sum: Num::result(sum),
            min: state.extremes.min().unwrap_or_default(),
            max: state.extremes.max().unwrap_or_default(),
            avg: Num::result(sum / count.max(1) as f64),
        }
    }
}

/// The multiset of values with its smallest and largest element.
///
/// Insertions are O(1); a retraction costs a scan of the window's values, and a second
/// one only when it removes the current minimum or maximum.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Extremes {
    values: Vec<Num>,
    min: Option<Num>,
    max: Option<Num>,
}

impl Extremes {
    fn update(&mut self, value: Num, diff: Diff) {
        if diff > 0 {
            self.values.extend(std::iter::repeat_n(value, diff as usize));
            self.min = Some(self.min.map_or(value, |m| m.min(value)));
            self.max = Some(self.max.map_or(value, |m| m.max(value)));
            return;
        }
        for _ in 0..diff.unsigned_abs() {
            if let Some(i) = self.values.iter().position(|v| *v == value) {
                self.values.swap_remove(i);
            }
        }
        if self.min == Some(value) || self.max == Some(value) {
            self.min = self.values.iter().copied().min();
            self.max = self.values.iter().copied().max();
        }
    }

    fn merge(&mut self, from: Extremes) {
        self.min = self.min.into_iter().chain(from.min).min();
        self.max = self.max.into_iter().chain(from.max).max();
        self.values.extend(from.values);
    }

    fn min(&self) -> Option<Num> {
        self.min
    }

    fn max(&self) -> Option<Num> {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: f64) -> Num {
        Num::new(v).unwrap()
    }

    #[test]
    fn stats_retract_exactly() {
        let mut s = StatsState::default();
        let values = [0.1, 7.0, -2.5, 0.2, 7.0, 1e-7];
        let mut outputs = Vec::new();
        for v in values {
            Stats.update(&mut s, &n(v), 1);
            outputs.push(Stats.output(&s));
        }
        for (i, v) in values.iter().enumerate().rev().skip(1) {
            Stats.update(&mut s, &n(values[i + 1]), -1);
            assert_eq!(Stats.output(&s), outputs[i], "after retracting {}", values[i + 1]);
            let _ = v;
        }
        let out = outputs[5];
        assert_eq!((out.count, out.min, out.max), (6, n(-2.5), n(7.0)));
    }

    #[test]
    fn merge_equals_folding() {
        let (mut a, mut b, mut all) = (StatsState::default(), StatsState::default(), StatsState::default());
        for v in [1.0, 5.0] {
            Stats.update(&mut a, &n(v), 1);
            Stats.update(&mut all, &n(v), 1);
        }
        for v in [-1.0, 0.5] {
            Stats.update(&mut b, &n(v), 2);
            Stats.update(&mut all, &n(v), 2);
        }
        Stats.merge(&mut a, b);
        assert_eq!(Stats.output(&a), Stats.output(&all));
        assert_eq!(
            Avg.output(&(2, {
                let mut s = ExactSum::default();
                s.add(1.0, 1);
                s.add(2.0, 1);
                s
            })),
            n(1.5)
        );
    }
}
