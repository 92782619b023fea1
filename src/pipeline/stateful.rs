//! Per-group state that updates itself: [`stateful`] keeps one [`GroupLogic`] per
//! key and hands it the changes of each step, for computations that can do better
//! than recomputing a group from its whole content (an incremental Lloyd's
//! algorithm, a model refined by new examples).
//!
//! A differential `reduce` sees a group's whole content whenever it changes, and an
//! `iterate` re-runs every round whose input changed. A [`GroupLogic`] instead keeps
//! whatever state it likes between steps, gets only the changes, and says itself
//! which output records changed. It is the escape hatch for algorithms with their own
//! incremental structure; the price is that the logic must keep its output right.
//!
//! On a [`Stream`], [`Stream::stateful`] also lets state go as the watermark passes:
//! a group says from which watermark on nothing still to come can change it
//! ([`GroupLogic::retire_at`]), and is then [retired](GroupLogic::retire) and dropped,
//! its output rows staying. What the operator keeps is then bounded by the groups
//! still open (auctions not yet closed, in Nexmark's q4 and q9) rather than by
//! everything seen.
//!
//! ```
//! # use tidemark::pipeline::prelude::*;
//! /// The running total of each group, as `(group, total)`.
//! #[derive(Serialize, Deserialize)]
//! struct Total {
//!     group: Text,
//!     sum: i64,
//!     shown: Option<i64>,
//! }
//!
//! impl GroupLogic for Total {
//!     type Value = i64;
//!     type Out = (Text, i64);
//!     fn update(&mut self, value: i64, diff: Diff) {
//!         self.sum += value * diff as i64;
//!     }
//!     fn settle(&mut self, out: &mut Vec<((Text, i64), Diff)>) {
//!         let next = Some(self.sum).filter(|s| *s != 0);
//!         if next != self.shown {
//!             out.extend(self.shown.map(|s| ((self.group.clone(), s), -1)));
//!             out.extend(next.map(|s| ((self.group.clone(), s), 1)));
//!             self.shown = next;
//!         }
//!     }
//!     fn is_empty(&self) -> bool {
//!         self.shown.is_none()
//!     }
//! }
//!
//! # fn build<'s>(values: Collection<'s, (Text, i64)>) -> Collection<'s, (Text, i64)> {
//! stateful(values, "Total", |group: &Text| Total { group: group.clone(), sum: 0, shown: None })
//! # }
//! ```

use std::collections::BTreeMap;

use differential_dataflow::Hashable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keyed::{KeySlots, KeyedLogic, Saving, Snapshot, SnapshotBytes, Timers, keyed};
use super::{Collection, Data, Diff, Stream, Time, TimeMode};

/// The state of one group of a [`stateful`] operator.
///
/// # Constraints
/// - What [`GroupLogic::settle`] appends are changes to the group's output
///   collection: the logic retracts what it emitted before when that no longer
///   holds, and never retracts what it has not emitted.
/// - The output must depend only on the group's current content (the sum of the
///   updates so far), not on how the updates were batched into steps: otherwise a
///   replay and a live run of the same data disagree.
/// - [`GroupLogic::retire`] must not change the output: it drops what no update
///   still to come can need, and the logic then ignores updates that cannot matter.
/// - Checkpoints hold it (`Serialize + DeserializeOwned`, derived in practice): a
///   group read back from its serialized form behaves as the group saved. A field that
///   is no state of the group (a handle, a shared counter) can be `#[serde(skip)]`.
pub trait GroupLogic: Serialize + DeserializeOwned + 'static {
    /// The group's values.
    type Value: Data;
    /// Output records.
    type Out: Data;

    /// `value`'s multiplicity in the group changed by `diff`. Called for each change
    /// of a step, in no particular order, before [`GroupLogic::settle`].
    fn update(&mut self, value: Self::Value, diff: Diff);
    /// The step's changes are all in: appends the output changes they cause.
    fn settle(&mut self, out: &mut Vec<(Self::Out, Diff)>);
    /// Whether the group's state can go: it holds nothing and shows nothing, or it
    /// has [retired](GroupLogic::retire) and nothing still to come can change what
    /// it shows (its output rows stay).
    fn is_empty(&self) -> bool;

    /// The watermark at which the group's state can shrink, if any: once the input's
    /// watermark reaches it, [`Stream::stateful`] calls [`GroupLogic::retire`]. Asked
    /// after every settle. The default never retires.
    fn retire_at(&self) -> Option<Time> {
        None
    }

    /// The watermark reached `watermark` (at least [`GroupLogic::retire_at`]): drops
    /// the state that no update still to come can need. Which updates can still come
    /// follows from the input's [`Lateness`](super::Lateness) rule: a record at event
    /// time `ts` that arrives once the watermark is `w` was not too late at `w`.
    /// Called only by [`Stream::stateful`]; the default does nothing.
    fn retire(&mut self, watermark: Time) {
        let _ = watermark;
    }
}

/// Runs one [`GroupLogic`] per key of `input`, made by `new` when the key first
/// appears and dropped when it [is empty](GroupLogic::is_empty) after a step.
///
/// Updates are exchanged by key, held until the frontier passes their time, and
/// applied a time at a time: at each time every group that changed is settled, and
/// its output changes carry that time. A collection has no watermark, so groups
/// never [retire](GroupLogic::retire); see [`Stream::stateful`] for that.
pub fn stateful<'s, K: Data, L: GroupLogic>(
    input: Collection<'s, (K, L::Value)>,
    name: &str,
    new: impl Fn(&K) -> L + 'static,
) -> Collection<'s, L::Out> {
    let stamped = input.map(|update| (update, 0));
    keyed(stamped, |(k, _): &(K, L::Value)| k.hashed(), |update| update, &[], TimeMode::Exact, name, Groups::new(new))
}

impl<'s, K: Data, V: Data> Stream<'s, (K, V)> {
    /// Runs one [`GroupLogic`] per key, as [`stateful`] does, and lets groups
    /// [retire](GroupLogic::retire) as the watermark passes the point each gives
    /// ([`GroupLogic::retire_at`]): state that no record still to come can need goes,
    /// so what is kept is bounded by what is still open (auctions not yet closed,
    /// sessions not yet timed out) rather than by everything seen.
    ///
    /// Retirement is as sound as the input's lateness rule: declare it in the input's
    /// [`InputOptions`](super::InputOptions) (say `Lateness::After(allowed)`, too late
    /// when `ts + allowed < W`) and compute `retire_at` from the same `allowed` (a group
    /// of records up to event time `last` can retire at `last + allowed + 1`). Nexmark's
    /// q9 (`dataflows/nexmark/winning.rs`) is the example.
    ///
    /// In [`TimeMode::Compact`] (a job read only at its end) groups settle once per
    /// frontier step instead of once per time.
    pub fn stateful<L: GroupLogic<Value = V>>(
        self,
        name: &str,
        new: impl Fn(&K) -> L + 'static,
    ) -> Collection<'s, L::Out> {
        let Stream { inner, clock, mode } = self;
        let hash = |(k, _): &(K, V)| k.hashed();
        keyed(inner, hash, |update| update, std::slice::from_ref(&clock), mode, name, Groups::new(new))
    }
}

/// The groups of a [`stateful`] operator.
struct Groups<K, L: GroupLogic, F> {
    new: F,
    groups: KeySlots<K, Option<Group<L>>>,
    timers: Timers<u32>,
    out: Vec<(L::Out, Diff)>,
    /// Rows of groups dropped while showing them (retired ones), for checkpoints: `Some`
    /// once tracked, and then every group also keeps the rows it shows.
    settled: Option<Vec<L::Out>>,
}

/// One group, as checkpoints hold it.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Group<L: GroupLogic> {
    logic: L,
    /// The watermark its retirement is scheduled at, with a timer there.
    scheduled: Option<Time>,
    /// The rows it shows, with multiplicities, once checkpoints are on: a restore emits
    /// them again, and a retired group's are settled. The logic knows them too, but a
    /// [`GroupLogic`] has no way to list them, so the operator follows its changes.
    shown: BTreeMap<L::Out, Diff>,
}

impl<K: Data, L: GroupLogic, F: Fn(&K) -> L + 'static> Groups<K, L, F> {
    fn new(new: F) -> Self {
        Groups { new, groups: KeySlots::default(), timers: Timers::default(), out: Vec::new(), settled: None }
    }

    /// Settles the groups that changed since the last call.
    fn settle(&mut self) {
        let tracked = self.settled.is_some();
        for id in self.groups.take_dirty() {
            let Some((_, Some(group))) = self.groups.get(id) else { continue };
            let from = self.out.len();
            group.logic.settle(&mut self.out);
            if tracked {
                for (row, diff) in &self.out[from..] {
                    let n = group.shown.entry(row.clone()).or_insert(0);
                    *n += diff;
                    if *n == 0 {
                        group.shown.remove(row);
                    }
                }
            }
            self.tend(id, None);
        }
    }

    /// Drops the group in slot `id` if it is empty (the rows it still shows, if
    /// retired, are settled); else schedules its retirement, unless it is scheduled
    /// there already or, just after a retirement at watermark `retired`, the point is
    /// not past it (it would be retired again at once).
    fn tend(&mut self, id: u32, retired: Option<Time>) {
        let Some((_, Some(group))) = self.groups.get(id) else { return };
        if group.logic.is_empty() {
            if let Some(settled) = self.settled.as_mut() {
                for (row, n) in std::mem::take(&mut group.shown) {
                    settled.extend(std::iter::repeat_n(row, n.max(0) as usize));
                }
            }
            self.groups.release(id);
        } else if let Some(at) = group.logic.retire_at()
            && group.scheduled != Some(at)
            && retired.is_none_or(|w| at > w)
        {
            group.scheduled = Some(at);
            self.timers.schedule(at, id);
        }
    }
}

impl<K: Data, L: GroupLogic, F: Fn(&K) -> L + 'static> KeyedLogic for Groups<K, L, F> {
    type Key = K;
    type Value = L::Value;
    type Out = L::Out;

    fn update(&mut self, key: K, value: L::Value, _stamp: Time, diff: Diff) {
        let id = self.groups.slot(key);
        let Some((key, state)) = self.groups.get(id) else { return };
        let group =
            state.get_or_insert_with(|| Group { logic: (self.new)(key), scheduled: None, shown: BTreeMap::new() });
        group.logic.update(value, diff);
        self.groups.mark(id);
    }

    fn watermark(&mut self, watermarks: &[Time]) {
        // What changed before the watermark moved is settled first: a retiring group
        // shows what its last updates made of it.
        self.settle();
        let w = watermarks.iter().copied().min().unwrap_or(0);
        for id in self.timers.take_due(w) {
            // Slots are reused and retirements rescheduled: a timer acts only if the
            // group there now is due (a timer of another group, or of a point since
            // moved, does nothing; a restored group has none of them).
            let Some((_, Some(group))) = self.groups.get(id) else { continue };
            if group.scheduled.is_none_or(|at| at > w) {
                continue;
            }
            group.scheduled = None;
            if group.logic.retire_at().is_some_and(|at| at <= w) {
                group.logic.retire(w);
            }
            self.groups.mark(id);
            self.tend(id, Some(w));
        }
        // Those marks are for checkpoints: a retirement changes no output, so the
        // retired groups need no settling.
        self.groups.take_dirty();
    }

    fn flush(&mut self, time: Time, out: &mut Vec<(L::Out, Time, Diff)>) {
        self.settle();
        out.extend(self.out.drain(..).map(|(o, d)| (o, time, d)));
    }

    fn as_snapshot(&mut self) -> Option<&mut dyn SnapshotBytes<K, L::Out>> {
        Some(self)
    }
}

impl<K: Data, L: GroupLogic, F: Fn(&K) -> L + 'static> Snapshot for Groups<K, L, F> {
    type Saved = Group<L>;

    fn save(&mut self, all: bool, out: Saving<'_, K, Group<L>>) {
        self.groups.save_changed(all, out, Option::as_ref);
    }

    /// A group's retirement timer is set where it is scheduled.
    fn restore(&mut self, key: K, saved: Group<L>, shown: &mut Vec<L::Out>) {
        for (row, n) in &saved.shown {
            shown.extend(std::iter::repeat_n(row.clone(), (*n).max(0) as usize));
        }
        let scheduled = saved.scheduled;
        let id = self.groups.restore(key, Some(saved));
        if let Some(at) = scheduled {
            self.timers.schedule(at, id);
        }
    }

    /// Also makes every group keep the rows it shows from now on, which a checkpoint
    /// needs: the operator calls it before any update.
    fn track_settled(&mut self) {
        self.groups.track();
        self.settled.get_or_insert_with(Vec::new);
    }

    fn take_settled(&mut self) -> Vec<L::Out> {
        self.settled.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

#[cfg(test)]
mod snapshot_tests;
