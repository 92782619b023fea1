//! The winning bid of each auction (q9), and from it the average closing price per
//! category (q4): the highest bid (then the earliest) with
//! `auction.date_time <= bid.date_time <= auction.expires`, over all time.
//!
//! Events more than `allowed_lateness` behind the watermark are too late (dead
//! letters), so an auction's winner is final once the watermark passes
//! `expires + allowed_lateness`: its state goes then (its row stays), and what the
//! queries keep is bounded by the auctions still open.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use tidemark::pipeline::prelude::*;

use super::{Auction, Bid, Event, NexmarkParams};

/// An auction, or a bid on it as `(price, date_time, payload)`: what a query keeps of a
/// bid beyond its price and time (q4 nothing, q9 the rest of the bid).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side<B> {
    /// The auction.
    Auction(Auction),
    /// A bid on it.
    Bid(u64, u64, B),
}

/// Bids in the order they win: highest price, then earliest, then by payload.
type Ranked<B> = (Reverse<u64>, u64, B);

/// An auction with its winning bid, `(auction, (price, date_time, payload))`.
type Winner<B> = (Auction, (u64, u64, B));

/// One auction's state: the auction (a multiset, to stay exact under retraction; one
/// in practice) and its bids by rank, with the winner it shows.
#[derive(Serialize, Deserialize)]
#[serde(bound = "B: Data")]
struct Winning<B> {
    /// The input's allowed lateness.
    lateness: Time,
    auctions: Vec<(Auction, Diff)>,
    bids: BTreeMap<Ranked<B>, Diff>,
    shown: Option<Winner<B>>,
    /// Whether the winner is final: the group can go, its row stays.
    retired: bool,
}

impl<B> Winning<B> {
    fn new(lateness: Time) -> Self {
        Winning { lateness, auctions: Vec::new(), bids: BTreeMap::new(), shown: None, retired: false }
    }
}

impl<B: Data> GroupLogic for Winning<B> {
    type Value = Side<B>;
    type Out = Winner<B>;

    fn update(&mut self, value: Side<B>, diff: Diff) {
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
            Side::Bid(price, date_time, payload) => {
                let key = (Reverse(price), date_time, payload);
                let n = self.bids.entry(key.clone()).or_default();
                *n += diff;
                if *n == 0 {
                    self.bids.remove(&key);
                }
            }
        }
    }

    fn settle(&mut self, out: &mut Vec<(Self::Out, Diff)>) {
        // The auction with a positive multiplicity (the smallest, should there be two).
        let auction = self.auctions.iter().filter(|(_, n)| *n > 0).map(|(a, _)| a).min();
        let winner = auction.and_then(|a| {
            let valid = |(rank, n): (&Ranked<B>, &Diff)| *n > 0 && (a.date_time..=a.expires).contains(&rank.1);
            let ((Reverse(price), date_time, payload), _) = self.bids.iter().find(|entry| valid(*entry))?;
            Some((a.clone(), (*price, *date_time, payload.clone())))
        });
        show(&mut self.shown, winner, out);
    }

    fn is_empty(&self) -> bool {
        self.retired || (self.auctions.is_empty() && self.bids.is_empty() && self.shown.is_none())
    }

    /// An event at `ts` arriving at watermark `w` has `ts + lateness >= w`. Once `w`
    /// passes `expires + lateness`, no bid inside the auction's range can come; with
    /// no auction, once it passes the latest bid's `date_time + lateness`, no auction
    /// that one of the bids could win can come (it would start at or before the bid).
    fn retire_at(&self) -> Option<Time> {
        let last = match self.auctions.iter().filter(|(_, n)| *n > 0).map(|(a, _)| a.expires).max() {
            Some(expires) => expires,
            None => self.bids.keys().map(|(_, date_time, _)| *date_time).max()?,
        };
        Some(last + self.lateness + 1)
    }

    /// The group is [empty](GroupLogic::is_empty) from now on, so it goes at once.
    fn retire(&mut self, _watermark: Time) {
        self.retired = true;
    }
}

/// A bid is too late once its auction may have been retired: after the allowed lateness.
fn winning_inputs(params: &NexmarkParams) -> Inputs {
    Inputs::new().with("events", params.time().input(Lateness::After(params.allowed_lateness)))
}

/// The winning bid of each auction that has one, as `(auction, (price, date_time,
/// payload))`.
fn winners<'s, B: Data>(
    job: &mut Job<'s>,
    params: &NexmarkParams,
    payload: impl Fn(Bid) -> B + 'static,
) -> Result<Collection<'s, Winner<B>>, BuildError> {
    let lateness = params.allowed_lateness;
    let events = job.input::<Event>("events")?;
    let sides = events.flat_map(move |e| match e {
        Event::Auction(a) => Some((a.id, Side::Auction(a))),
        Event::Bid(b) => Some((b.auction, Side::Bid(b.price, b.date_time, payload(b)))),
        Event::Person(_) => None,
    });
    Ok(sides.stateful("WinningBid", move |_: &u64| Winning::new(lateness)))
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

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        winning_inputs(params)
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let rest = |b: Bid| (b.bidder, b.channel, b.url, b.extra);
        let rows =
            winners(job, params, rest)?.map(|(a, (price, bid_date_time, (bidder, _, _, bid_extra)))| WinnerRow {
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
                auction: a.id,
                bidder,
                price,
                bid_date_time,
                bid_extra,
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

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        winning_inputs(params)
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let prices = winners(job, params, |_| ())?.map(|(a, (price, ..))| (a.category, price));
        let averages = stateful(prices, "AveragePrice", |&category: &u64| Average { category, ..Average::default() });
        job.output("categories", averages)
    }
}

/// A category's winning prices as an exact sum and count: a change costs O(1),
/// whatever the number of auctions (a `reduce` would re-read them all).
#[derive(Default, Serialize, Deserialize)]
struct Average {
    category: u64,
    sum: i128,
    count: i64,
    shown: Option<CategoryRow>,
}

impl GroupLogic for Average {
    type Value = u64;
    type Out = CategoryRow;

    fn update(&mut self, price: u64, diff: Diff) {
        self.sum += i128::from(price) * diff as i128;
        self.count += diff as i64;
    }

    fn settle(&mut self, out: &mut Vec<(CategoryRow, Diff)>) {
        let avg = (self.count > 0).then(|| Num::new(self.sum as f64 / self.count as f64).unwrap_or_default());
        let row = avg.map(|avg| CategoryRow { category: self.category, avg });
        show(&mut self.shown, row, out);
    }

    fn is_empty(&self) -> bool {
        self.count == 0 && self.sum == 0 && self.shown.is_none()
    }
}

/// Replaces the row a group shows by `next`: retracts the old row and adds the new
/// one when they differ.
fn show<T: Data>(shown: &mut Option<T>, next: Option<T>, out: &mut Vec<(T, Diff)>) {
    if next != *shown {
        out.extend(shown.take().map(|r| (r, -1)));
        out.extend(next.clone().map(|r| (r, 1)));
        *shown = next;
    }
}
