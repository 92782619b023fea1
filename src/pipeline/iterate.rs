//! Cycles: [`iterate`] a collection to its fixed point, with a round cap.
//!
//! Inside a loop, time is `(event time, round)`: round `r` holds the value after `r`
//! steps. Differential dataflow runs only the rounds that change, so when the input
//! of a loop changes, only what depends on the change is recomputed, in every round
//! it reaches, and the loop stops by itself once a round changes nothing.
//!
//! ```
//! # use tidemark::pipeline::prelude::*;
//! # fn build<'s>(edges: Collection<'s, (u64, u64)>, nodes: Collection<'s, u64>) -> Collection<'s, (u64, u64)> {
//! // Connected components: each node takes the least label among its neighbours'.
//! let labels = nodes.map(|n| (n, n));
//! iterate(labels, 100, |lp, labels| {
//!     let edges = lp.enter(&edges);
//!     labels
//!         .clone()
//!         .join_map(edges, |_, label, dst| (*dst, *label))
//!         .concat(labels)
//!         .reduce(|_, labels, out| out.push((*labels[0].0, 1)))
//! })
//! # }
//! ```
//!
//! Floats inside loops must be totally ordered ([`Num`](super::Num)), and values
//! computed from multisets should be exact ([`ExactSum`](super::ExactSum)), so that
//! a retraction restores exactly the earlier value and a loop can reach its fixed
//! point.

use differential_dataflow::operators::iterate::Variable;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::Scope;
use timely::dataflow::operators::vec::Filter;
use timely::order::Product;

use super::{Collection, Data, Diff, Time};

/// A timestamp inside a loop: event time and round.
pub type Round = Product<Time, u64>;

/// A collection inside a loop.
pub type LoopCollection<'i, D> = VecCollection<'i, Round, D, Diff>;

/// The loop under construction: brings outer collections in.
pub struct Loop<'i> {
    scope: Scope<'i, Round>,
}

impl<'i> Loop<'i> {
    /// `collection` inside the loop, the same in every round.
    pub fn enter<D: Data>(&self, collection: &Collection<'_, D>) -> LoopCollection<'i, D> {
        collection.clone().enter(self.scope)
    }
}

/// Iterates `step` from `initial`: round 0 holds `initial`, round `r + 1` holds
/// `step` applied to round `r`. The result is the first round equal to its
/// successor (the fixed point) or, if none comes first, round `max_rounds`. It
/// leaves the loop consolidated: one net change per record and event time.
///
/// `step` gets the [`Loop`] (to [`Loop::enter`] other collections) and the current
/// round's collection, and returns the next round's.
pub fn iterate<'s, D, F>(initial: Collection<'s, D>, max_rounds: u64, step: F) -> Collection<'s, D>
where
    D: Data,
    F: for<'i> FnOnce(&Loop<'i>, LoopCollection<'i, D>) -> LoopCollection<'i, D>,
{
    let outer = initial.scope();
    outer
        .iterative::<u64, _, _>(move |inner| {
            let (variable, current) = Variable::new_from(initial.enter(inner), Product::new(0, 1));
            let next = step(&Loop { scope: inner }, current).consolidate();
            // The value after `r + 1` steps is at round `r`: keep rounds below the cap.
            let next = next.inner.filter(move |(_, t, _)| t.inner < max_rounds).as_collection();
            variable.set(next.clone());
            next.leave(outer)
        })
        .consolidate()
}
