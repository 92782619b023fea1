//! The `dedupe` and `top_k` test pipelines, each over one input of [`Ev`]s, and the rows
//! `top_k` prints (`dedupe` prints the records it keeps).

use tidemark::pipeline::prelude::*;

use super::{Ev, OpParams, item_counts};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct TopRow {
    k: String,
    start: u64,
    end: u64,
    rank: u32,
    item: i64,
    count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct TopAllRow {
    k: String,
    rank: u32,
    v: i64,
}

/// `dedupe`: input `events`; output `kept`, the records kept per key and window.
pub(super) struct DedupePipeline;

impl Pipeline for DedupePipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("dedupe", "one record per key and tumbling window")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("kept", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = Lateness::Windows { kind: WindowKind::Tumbling { size: p.size }, allowed: p.allowed_lateness };
        Inputs::new().with("events", p.left_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let kept = events.dedupe("dedupe", p.size, p.allowed_lateness, |e: &Ev| e.k.clone(), |e: &Ev| e.ts)?;
        job.output("kept", kept.collection())
    }
}

/// `top_k`: input `events`; outputs `top` (the `k` most frequent items `v` per group `k`
/// and window, by a windowed count) and `top_all` (the `k` greatest values `v` per group
/// over all records, each record taking its own rank).
pub(super) struct TopKPipeline;

impl Pipeline for TopKPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("top_k", "the most frequent items per group and window, and the greatest values")
            .input(InputDesc::of::<Ev>("events"))
            .output(OutputDesc::new("top", &["k", "start", "rank"]))
            .output(OutputDesc::new("top_all", &["k", "rank"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        Inputs::new().with("events", p.left_options(p.windowing().lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let events = job.input::<Ev>("events")?;
        let counts = item_counts(events.clone(), p);
        let ranked = top_k(counts.map(|((k, item), w, count)| ((k, w), (count, item))), p.k);
        let top =
            ranked.map(|((k, w), rank, (count, item))| TopRow { k, start: w.start, end: w.end, rank, item, count });
        job.output("top", top)?;
        let all = top_k(events.collection().map(|e| (e.k, e.v)), p.k);
        job.output("top_all", all.map(|(k, rank, v)| TopAllRow { k, rank, v }))
    }
}
