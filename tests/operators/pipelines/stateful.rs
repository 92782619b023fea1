//! The test pipelines over group logic and the logic they keep: `stateful` keeps a
//! [`Summary`] per group for the whole run, updated by retractions too; `retiring` keeps
//! an [`Auction`] per key through `Stream::stateful`, retired by watermark, and counts
//! the groups alive in [`Live`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tidemark::pipeline::prelude::*;

use super::{Ev, OpParams, item_counts};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct SummaryRow {
    k: String,
    counts: u64,
    total: u64,
    max: u64,
}

/// Per group `k`, a summary of the windowed counts of its items, kept by
/// [`GroupLogic`]: the counts it holds as a multiset (a count's update retracts the
/// old value and adds the new one, in either order within a step), and the row it
/// shows.
#[derive(Serialize, Deserialize)]
struct Summary {
    k: String,
    counts: BTreeMap<(u64, i64, u64), Diff>,
    shown: Option<SummaryRow>,
}

impl GroupLogic for Summary {
    type Value = (u64, i64, u64);
    type Out = SummaryRow;

    fn update(&mut self, value: (u64, i64, u64), diff: Diff) {
        let n = self.counts.entry(value).or_default();
        *n += diff;
        if *n == 0 {
            self.counts.remove(&value);
        }
    }

    fn settle(&mut self, out: &mut Vec<(SummaryRow, Diff)>) {
        assert!(self.counts.values().all(|n| *n == 1), "a count of one window and item held twice: {:?}", self.counts);
        let row = (!self.counts.is_empty()).then(|| SummaryRow {
            k: self.k.clone(),
            counts: self.counts.len() as u64,
            total: self.counts.keys().map(|(_, _, c)| c).sum(),
            max: self.counts.keys().map(|(_, _, c)| *c).max().unwrap_or(0),
        });
        if row != self.shown {
            out.extend(self.shown.take().map(|r| (r, -1)));
            out.extend(row.clone().map(|r| (r, 1)));
            self.shown = row;
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.shown.is_none()
    }
}

/// `stateful`: input `events`; output `summary`: per group `k`, over the windowed counts
/// of its items (as `top_k` counts them), how many there are, their total and the
/// largest. The counts change as records arrive, so the logic gets retractions too.
pub(super) struct StatefulPipeline;

impl Pipeline for StatefulPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("stateful", "a summary per group of its windowed item counts")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("summary", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        Inputs::new().with("events", p.left_options(p.windowing().lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let per_group = item_counts(events, p).map(|((k, item), w, count)| (k, (w.start, item, count)));
        let summary =
            stateful(per_group, "Summary", |k: &String| Summary { k: k.clone(), counts: BTreeMap::new(), shown: None });
        job.output("summary", summary)
    }
}

/// Per key `k`, an "auction": its opener (the record with `v == 0`, one per key) opens
/// it for `[ts, ts + size]`, and the row shows the greatest `v` of the key's records in
/// that range. Kept by [`Stream::stateful`], which retires a key once the watermark
/// says nothing in its range can still come; `live` counts the groups alive.
#[derive(Serialize, Deserialize)]
struct Auction {
    lateness: u64,
    size: u64,
    k: String,
    open: Option<u64>,
    bids: BTreeMap<(u64, i64), Diff>,
    latest: u64,
    shown: Option<AuctionRow>,
    retired: bool,
    /// Not the group's state: a restored group counts in a fresh `Live`.
    #[serde(skip)]
    live: Arc<Live>,
}

/// Groups alive now and at most, over all workers.
#[derive(Default)]
pub(in crate::operators) struct Live {
    now: AtomicUsize,
    pub(in crate::operators) peak: AtomicUsize,
}

impl Auction {
    fn new(k: &str, p: &OpParams, live: Arc<Live>) -> Auction {
        let now = live.now.fetch_add(1, Ordering::SeqCst) + 1;
        live.peak.fetch_max(now, Ordering::SeqCst);
        let (lateness, size) = (p.allowed_lateness, p.size);
        let (bids, shown) = (BTreeMap::new(), None);
        Auction { lateness, size, k: k.into(), open: None, bids, latest: 0, shown, retired: false, live }
    }
}

impl Drop for Auction {
    fn drop(&mut self) {
        self.live.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct AuctionRow {
    k: String,
    open: u64,
    best: i64,
}

impl GroupLogic for Auction {
    type Value = (u64, i64);
    type Out = AuctionRow;

    fn update(&mut self, (ts, v): (u64, i64), diff: Diff) {
        assert!(!self.retired, "{}: an update after retirement that could matter: ts {ts} v {v}", self.k);
        if v == 0 {
            assert_eq!(diff, 1, "openers are never retracted");
            self.open = Some(self.open.map_or(ts, |o| o.min(ts)));
            return;
        }
        self.latest = self.latest.max(ts);
        let n = self.bids.entry((ts, v)).or_default();
        *n += diff;
        if *n == 0 {
            self.bids.remove(&(ts, v));
        }
    }

    fn settle(&mut self, out: &mut Vec<(AuctionRow, Diff)>) {
        let row = self.open.and_then(|open| {
            let best = self.bids.keys().filter(|(ts, _)| (open..=open + self.size).contains(ts)).map(|b| b.1).max()?;
            Some(AuctionRow { k: self.k.clone(), open, best })
        });
        if row != self.shown {
            out.extend(self.shown.take().map(|r| (r, -1)));
            out.extend(row.clone().map(|r| (r, 1)));
            self.shown = row;
        }
    }

    fn is_empty(&self) -> bool {
        self.retired || (self.open.is_none() && self.bids.is_empty() && self.shown.is_none())
    }

    fn retire_at(&self) -> Option<u64> {
        let last = match self.open {
            Some(open) => open + self.size,
            None if self.bids.is_empty() => return None,
            None => self.latest,
        };
        Some(last + self.lateness + 1)
    }

    fn retire(&mut self, watermark: u64) {
        assert!(self.retire_at().is_some_and(|at| at <= watermark), "{}: retired early", self.k);
        self.retired = true;
    }
}

/// `retiring`: input `events` (`Lateness::After(allowed_lateness)`); output `auctions`,
/// one row per opened key with a record in its range (see [`Auction`]).
#[derive(Default)]
pub(in crate::operators) struct RetiringPipeline {
    pub(in crate::operators) live: Arc<Live>,
}

impl Pipeline for RetiringPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("retiring", "the greatest value per opened key, its state retired by watermark")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("auctions", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        Inputs::new().with("events", p.left_options(Lateness::After(p.allowed_lateness)))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let (live, p) = (self.live.clone(), p.clone());
        let auctions =
            events.map(|e| (e.k, (e.ts, e.v))).stateful("Auction", move |k: &String| Auction::new(k, &p, live.clone()));
        job.output("auctions", auctions)
    }
}
