//! q7, highest bid: per 10 s tumbling window, the bids with the highest price.

use std::collections::BTreeMap;

use tidemark::pipeline::prelude::*;

use super::{Bid, Event, NexmarkParams, WINDOW};

/// A bid as q7 keeps it: price first, so that bids order by price.
type Priced = (u64, u64, u64, u64, Text);

/// The bids with the highest price, exact under retraction: every update is logged,
/// and the log is only scanned again when a highest bid is retracted.
#[derive(Clone, Copy, Debug, Default)]
struct Highest;

/// A window's bids.
#[derive(Default, Serialize, Deserialize)]
struct HighestState {
    /// Every update, in arrival order.
    log: Vec<(Priced, Diff)>,
    /// The updates of the highest price, if any bid has a positive multiplicity.
    top: Option<(u64, Vec<(Priced, Diff)>)>,
}

impl HighestState {
    /// Recomputes `top` from the log.
    fn rescan(&mut self) {
        self.log.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut consolidated: Vec<(Priced, Diff)> = Vec::with_capacity(self.log.len());
        for (bid, n) in self.log.drain(..) {
            match consolidated.last_mut() {
                Some((last, m)) if *last == bid => *m += n,
                _ => consolidated.push((bid, n)),
            }
        }
        consolidated.retain(|(_, n)| *n != 0);
        self.log = consolidated;
        self.top = self
            .log
            .iter()
            .rev()
            .find(|(_, n)| *n > 0)
            .map(|(bid, _)| bid.0)
            .map(|price| (price, self.log.iter().filter(|(bid, _)| bid.0 == price).cloned().collect()));
    }
}

impl Aggregate for Highest {
    type In = Priced;
    type State = HighestState;
    type Out = Vec<Priced>;

    fn update(&self, state: &mut HighestState, bid: &Priced, diff: Diff) {
        state.log.push((bid.clone(), diff));
        match &mut state.top {
            Some((price, top)) if bid.0 == *price => {
                top.push((bid.clone(), diff));
                if diff < 0 && top.iter().map(|(_, n)| n).sum::<Diff>() <= 0 {
                    state.rescan();
                }
            }
            Some((price, _)) if bid.0 < *price => {}
            _ if diff > 0 => state.top = Some((bid.0, vec![(bid.clone(), diff)])),
            _ => state.rescan(),
        }
    }

    fn merge(&self, into: &mut HighestState, from: HighestState) {
        into.log.extend(from.log);
        into.rescan();
    }

    fn output(&self, state: &HighestState) -> Vec<Priced> {
        let Some((_, top)) = &state.top else { return Vec::new() };
        let mut counts: BTreeMap<&Priced, Diff> = BTreeMap::new();
        for (bid, n) in top {
            *counts.entry(bid).or_default() += n;
        }
        counts.into_iter().flat_map(|(bid, n)| std::iter::repeat_n(bid.clone(), n.max(0) as usize)).collect()
    }
}

/// One row of `highest`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HighestRow {
    start: u64,
    end: u64,
    auction: u64,
    price: u64,
    bidder: u64,
    date_time: u64,
    extra: Text,
}

/// `nexmark_q7`.
pub struct Q7;

impl Pipeline for Q7 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        Description::new("nexmark_q7", "Nexmark q7: the highest bids per tumbling window")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("highest", &["start", "auction", "bidder", "date_time"]))
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        let windowing = params.time().windowing(WindowKind::Tumbling { size: WINDOW });
        Inputs::new().with("events", params.time().input(windowing.lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let windowing = params.time().windowing(WindowKind::Tumbling { size: WINDOW });
        let events = job.input::<Event>("events")?;
        let priced = |b: &Bid| (b.price, b.auction, b.bidder, b.date_time, b.extra.clone());
        let highest = events.flat_map(Event::bid).window_aggregate(
            "highest bids",
            &windowing,
            |_| (),
            |b| b.date_time,
            priced,
            Highest,
        );
        let rows = highest.flat_map(|((), w, bids)| {
            bids.into_iter().map(move |(price, auction, bidder, date_time, extra)| HighestRow {
                start: w.start,
                end: w.end,
                auction,
                price,
                bidder,
                date_time,
                extra,
            })
        });
        job.output("highest", rows)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Random insertions and retractions (of bids present, and some of the highest):
    /// after each, the output is every bid of the highest price with a positive
    /// multiplicity, as a plain multiset says.
    #[test]
    fn highest_is_exact_under_retraction() {
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (agg, mut state) = (Highest, HighestState::default());
            let mut model: BTreeMap<Priced, Diff> = BTreeMap::new();
            for _ in 0..200 {
                let present: Vec<Priced> = model.keys().cloned().collect();
                let (bid, diff) = if !present.is_empty() && rng.random_bool(0.4) {
                    // Retract a present bid, often one of the highest.
                    let i = if rng.random_bool(0.5) { present.len() - 1 } else { rng.random_range(0..present.len()) };
                    (present[i].clone(), -1)
                } else {
                    let bid =
                        (rng.random_range(1..8), rng.random_range(0..3), 0, rng.random_range(0..3), Text::new(""));
                    (bid, 1)
                };
                agg.update(&mut state, &bid, diff);
                *model.entry(bid.clone()).or_default() += diff;
                model.retain(|_, n| *n != 0);
                let top = model.keys().map(|b| b.0).max();
                let expected: Vec<Priced> = model
                    .iter()
                    .filter(|(b, _)| Some(b.0) == top)
                    .flat_map(|(b, n)| std::iter::repeat_n(b.clone(), *n as usize))
                    .collect();
                assert_eq!(agg.output(&state), expected, "seed {seed}");
            }
        }
    }
}
