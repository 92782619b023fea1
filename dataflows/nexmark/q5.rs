//! q5, hot items: per 10 s window sliding by 2 s, the auctions with the most bids.

use tidemark::pipeline::prelude::*;

use super::{Event, NexmarkParams, WINDOW};

/// One row of `hot`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HotRow {
    start: u64,
    end: u64,
    auction: u64,
    num: u64,
}

/// `nexmark_q5`.
pub struct Q5;

impl Pipeline for Q5 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        Description::new("nexmark_q5", "Nexmark q5: the auctions with the most bids per sliding window")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("hot", &["start", "auction"]))
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        let windowing = params.time().windowing(WindowKind::Sliding { size: WINDOW, slide: 2_000 });
        Inputs::new().with("events", params.time().input(windowing.lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let windowing = params.time().windowing(WindowKind::Sliding { size: WINDOW, slide: 2_000 });
        let events = job.input::<Event>("events")?;
        let counts = events.flat_map(Event::bid).window_aggregate(
            "bids per auction",
            &windowing,
            |b| b.auction,
            |b| b.date_time,
            |_| (),
            Count,
        );
        // Per window, every auction whose count is the window's largest.
        let hot = counts.map(|(auction, w, num)| (w, (num, auction))).reduce_named(
            "HotItems",
            |_w, counts: &[(&(u64, u64), Diff)], out: &mut Vec<((u64, u64), Diff)>| {
                let Some(((max, _), _)) = counts.last() else { return };
                let max = *max;
                let hottest = counts.iter().rev().take_while(|((num, _), _)| *num == max);
                out.extend(hottest.map(|(pair, n)| (**pair, *n)));
            },
        );
        let rows = hot.map(|(w, (num, auction))| HotRow { start: w.start, end: w.end, auction, num });
        job.output("hot", rows)
    }
}
