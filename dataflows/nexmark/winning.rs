//! The winning bid of each auction (q9), and from it the average closing price per
//! category (q4): the highest bid (then the earliest) with
//! `auction.date_time <= bid.date_time <= auction.expires`, over all time.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use tidemark::pipeline::prelude::*;

use super::{Auction, Bid, Event, NexmarkParams};

/// An auction or a bid on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    /// The auction.
    Auction(Auction),
    /// A bid on it.
    Bid(Bid),
}

/// Bids in the order they win: highest price, then earliest, then the rest of the bid.
type Ranked = (Reverse<u64>, u64, Bid);

/// One auction's state: the auction (a multiset, to stay exact under retraction; one
/// in practice) and its bids by rank, with the winner it shows.
#[derive(Default)]
struct Winning {
    auctions: Vec<(Auction, Diff)>,
    bids: BTreeMap<Ranked, Diff>,
    shown: Option<(Auction, Bid)>,
}

impl GroupLogic for Winning {
    type Value = Side;
    type Out = (Auction, Bid);

    fn update(&mut self, value: Side, diff: Diff) {
        match value {
            Side::Auction(a) => match self.auctions.iter().position(|(b, _)| *b == a) {
                Some(i) => {
                    self.auctions[i].1 += diff;
                    if self.auctions[i].1 == 0 {
                        self.auctions.swap_remove(i);
                    }
                }
                None => self.auctions.push((a, diff)),
            },
            Side::Bid(b) => {
                let key = (Reverse(b.price), b.date_time, b);
                let n = self.bids.entry(key.clone()).or_default();
                *n += diff;
                if *n == 0 {
                    self.bids.remove(&key);
                }
            }
        }
    }

    fn settle(&mut self, out: &mut Vec<((Auction, Bid), Diff)>) {
        // The auction with a positive multiplicity (the smallest, should there be two).
        let auction = self.auctions.iter().filter(|(_, n)| *n > 0).map(|(a, _)| a).min();
        let winner = auction.and_then(|a| {
            let valid = |(rank, n): (&Ranked, &Diff)| *n > 0 && (a.date_time..=a.expires).contains(&rank.1);
            self.bids.iter().find(|entry| valid(*entry)).map(|((_, _, bid), _)| (a.clone(), bid.clone()))
        });
        if winner != self.shown {
            out.extend(self.shown.take().map(|w| (w, -1)));
            out.extend(winner.clone().map(|w| (w, 1)));
            self.shown = winner;
        }
    }

    fn is_empty(&self) -> bool {
        self.auctions.is_empty() && self.bids.is_empty() && self.shown.is_none()
    }
}

/// The winning bid of each auction that has one.
fn winners<'s>(job: &mut Job<'s>, params: &NexmarkParams) -> Result<Collection<'s, (Auction, Bid)>, BuildError> {
    let events = job.input::<Event>("events", params.time().input(Lateness::Never))?;
    let sides = events.flat_map(|e| match e {
        Event::Auction(a) => Some((a.id, Side::Auction(a))),
        Event::Bid(b) => Some((b.auction, Side::Bid(b))),
        Event::Person(_) => None,
    });
    Ok(stateful(sides.collection(), "WinningBid", |_: &u64| Winning::default()))
}

/// One row of q9's `winners`: the auction's fields, then the winning bid's.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WinnerRow {
    id: u64,
    item_name: Text,
    description: Text,
    initial_bid: u64,
    reserve: u64,
    date_time: u64,
    expires: u64,
    seller: u64,
    category: u64,
    extra: Text,
    auction: u64,
    bidder: u64,
    price: u64,
    bid_date_time: u64,
    bid_extra: Text,
}

/// `nexmark_q9`.
pub struct Q9;

impl Pipeline for Q9 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        Description::new("nexmark_q9", "Nexmark q9: the winning bid of each auction")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("winners", &["id"]))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let rows = winners(job, params)?.map(|(a, b)| WinnerRow {
            id: a.id,
            item_name: a.item_name,
            description: a.description,
            initial_bid: a.initial_bid,
            reserve: a.reserve,
            date_time: a.date_time,
            expires: a.expires,
            seller: a.seller,
            category: a.category,
            extra: a.extra,
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            bid_date_time: b.date_time,
            bid_extra: b.extra,
        });
        job.output("winners", rows)
    }
}

/// One row of q4's `categories`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CategoryRow {
    category: u64,
    avg: Num,
}

/// `nexmark_q4`.
pub struct Q4;

impl Pipeline for Q4 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        Description::new("nexmark_q4", "Nexmark q4: the average winning price per category")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("categories", &["category"]))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let prices = winners(job, params)?.map(|(a, b)| (a.category, b.price));
        let averages =
            prices.reduce_named("AveragePrice", |_category, prices: &[(&u64, Diff)], out: &mut Vec<(Num, Diff)>| {
                let (sum, count) = prices.iter().fold((0u128, 0i128), |(s, c), (p, n)| {
                    (s + **p as u128 * (*n).max(0) as u128, c + (*n).max(0) as i128)
                });
                if count > 0 {
                    out.push((Num::new(sum as f64 / count as f64).unwrap_or_default(), 1));
                }
            });
        job.output("categories", averages.map(|(category, avg)| CategoryRow { category, avg }))
    }
}
