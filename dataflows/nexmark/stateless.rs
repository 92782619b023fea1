//! q0 (pass-through), q1 (currency conversion), q2 (selection): one bid in, at most
//! one row out, no state.

use tidemark::pipeline::prelude::*;

use super::{Bid, Event, NexmarkParams};

/// One row of q0's and q1's `bids`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BidRow<P> {
    auction: u64,
    bidder: u64,
    price: P,
    date_time: u64,
    extra: Text,
}

impl<P> BidRow<P> {
    fn of(bid: Bid, price: impl Fn(u64) -> P) -> BidRow<P> {
        BidRow {
            auction: bid.auction,
            bidder: bid.bidder,
            price: price(bid.price),
            date_time: bid.date_time,
            extra: bid.extra,
        }
    }
}

/// One row of q2's `bids`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PriceRow {
    auction: u64,
    price: u64,
}

/// The bids of `events`.
fn bids<'s>(job: &mut Job<'s>) -> Result<Stream<'s, Bid>, BuildError> {
    Ok(job.input::<Event>("events")?.flat_map(Event::bid))
}

/// `events` is read in event order: no lateness applies.
fn in_order(params: &NexmarkParams) -> Inputs {
    Inputs::new().with("events", params.time().input(Lateness::Never))
}

fn describe(name: &str, what: &str, keys: &[&str]) -> Description {
    Description::new(name, what).input(InputDesc::of::<Event>("events")).output(OutputDesc::new("bids", keys))
}

/// `nexmark_q0`: every bid, unchanged.
pub struct Q0;

impl Pipeline for Q0 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        describe("nexmark_q0", "Nexmark q0: every bid (pass-through)", &["auction", "bidder", "date_time"])
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        in_order(params)
    }

    fn build<'s>(&self, job: &mut Job<'s>, _params: &NexmarkParams) -> Result<(), BuildError> {
        let rows = bids(job)?.map(|b| BidRow::of(b, |p| p));
        job.output("bids", rows.collection())
    }
}

/// `nexmark_q1`: every bid with its price in euros (× 0.908).
pub struct Q1;

impl Pipeline for Q1 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        describe("nexmark_q1", "Nexmark q1: every bid, price converted to euros", &["auction", "bidder", "date_time"])
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        in_order(params)
    }

    fn build<'s>(&self, job: &mut Job<'s>, _params: &NexmarkParams) -> Result<(), BuildError> {
        let euros = |cents: u64| Num::new(0.908 * cents as f64).unwrap_or_default();
        let rows = bids(job)?.map(move |b| BidRow::of(b, euros));
        job.output("bids", rows.collection())
    }
}

/// `nexmark_q2`: the bids on auctions whose id is a multiple of 123.
pub struct Q2;

impl Pipeline for Q2 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        describe("nexmark_q2", "Nexmark q2: bids on every 123rd auction", &["auction"])
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        in_order(params)
    }

    fn build<'s>(&self, job: &mut Job<'s>, _params: &NexmarkParams) -> Result<(), BuildError> {
        let rows =
            bids(job)?.flat_map(|b| (b.auction % 123 == 0).then_some(PriceRow { auction: b.auction, price: b.price }));
        job.output("bids", rows.collection())
    }
}
