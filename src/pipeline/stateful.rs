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
//! ```
//! # use tidemark::pipeline::prelude::*;
//! /// The running total of each group, as `(group, total)`.
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

use differential_dataflow::{AsCollection, Hashable};
use std::collections::hash_map::Entry;

use foldhash::HashMap;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::{Collection, Data, Diff, Time};

/// The state of one group of a [`stateful`] operator.
///
/// # Constraints
/// - What [`GroupLogic::settle`] appends are changes to the group's output
///   collection: the logic retracts what it emitted before when that no longer
///   holds, and never retracts what it has not emitted.
/// - The output must depend only on the group's current content (the sum of the
///   updates so far), not on how the updates were batched into steps: otherwise a
///   replay and a live run of the same data disagree.
pub trait GroupLogic: 'static {
    /// The group's values.
    type Value: Data;
    /// Output records.
    type Out: Data;

    /// `value`'s multiplicity in the group changed by `diff`. Called for each change
    /// of a step, in no particular order, before [`GroupLogic::settle`].
    fn update(&mut self, value: Self::Value, diff: Diff);
    /// The step's changes are all in: appends the output changes they cause.
    fn settle(&mut self, out: &mut Vec<(Self::Out, Diff)>);
    /// Whether the group holds nothing and shows nothing, so its state can go.
    fn is_empty(&self) -> bool;
}

/// Updates waiting for the frontier: `(time, key, value, diff)`.
type Pending<K, V> = Vec<(Time, K, V, Diff)>;

/// Runs one [`GroupLogic`] per key of `input`, made by `new` when the key first
/// appears and dropped when it [is empty](GroupLogic::is_empty) after a step.
///
/// Updates are exchanged by key, held until the frontier passes their time, and
/// applied a time at a time: at each time every group that changed is settled, and
/// its output changes carry that time.
pub fn stateful<'s, K: Data, L: GroupLogic>(
    input: Collection<'s, (K, L::Value)>,
    name: &str,
    new: impl Fn(&K) -> L + 'static,
) -> Collection<'s, L::Out> {
    let pact = Exchange::new(|update: &((K, L::Value), Time, Diff)| update.0.0.hashed());
    input
        .inner
        .unary_frontier(pact, name, move |cap, _info| {
            let mut cap = Some(cap);
            let mut pending: Pending<K, L::Value> = Vec::new();
            // Each group with whether it changed in the time being applied.
            let mut groups: HashMap<K, (L, bool)> = HashMap::default();
            let mut changes: Vec<(L::Out, Diff)> = Vec::new();
            let mut out: Vec<(L::Out, Time, Diff)> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|_cap, data| pending.extend(data.drain(..).map(|((k, v), t, d)| (t, k, v, d))));
                let Some(current) = cap.as_mut() else { return };
                let Some(&now) = frontier.frontier().first() else {
                    // The input closed: the job is stopping, and nothing more is read.
                    pending.clear();
                    cap = None;
                    return;
                };
                // Updates whose time the frontier has passed, a time at a time.
                pending.sort_by_key(|u| u.0);
                let ready = pending.partition_point(|u| u.0 < now);
                let mut ready = pending.drain(..ready).peekable();
                while let Some(&(time, ..)) = ready.peek() {
                    let mut touched: Vec<K> = Vec::new();
                    while let Some((_, key, value, diff)) = ready.next_if(|u| u.0 == time) {
                        let (group, changed) = match groups.entry(key) {
                            Entry::Occupied(entry) => {
                                if !entry.get().1 {
                                    touched.push(entry.key().clone());
                                }
                                entry.into_mut()
                            }
                            Entry::Vacant(entry) => {
                                touched.push(entry.key().clone());
                                let group = new(entry.key());
                                entry.insert((group, false))
                            }
                        };
                        group.update(value, diff);
                        *changed = true;
                    }
                    settle_all(&mut groups, touched, &mut changes);
                    out.extend(changes.drain(..).map(|(o, d)| (o, time, d)));
                }
                drop(ready);
                if !out.is_empty() {
                    output.session(&*current).give_container(&mut out);
                }
                current.downgrade(&now);
            }
        })
        .as_collection()
}

/// Settles the groups `touched` and drops those left empty.
fn settle_all<K: Data, L: GroupLogic>(
    groups: &mut HashMap<K, (L, bool)>,
    touched: Vec<K>,
    out: &mut Vec<(L::Out, Diff)>,
) {
    for key in touched {
        if let Some((group, changed)) = groups.get_mut(&key) {
            *changed = false;
            group.settle(out);
            if group.is_empty() {
                groups.remove(&key);
            }
        }
    }
}
