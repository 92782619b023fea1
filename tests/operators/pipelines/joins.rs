//! The join test pipelines, `window_join`, `interval_join` and `as_of_join`, each over two
//! inputs of [`Ev`]s, and the rows they print.

use tidemark::pipeline::prelude::*;

use super::{Ev, OpParams};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct WindowJoinRow {
    k: String,
    start: u64,
    end: u64,
    left: Ev,
    right: Ev,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct IntervalJoinRow {
    k: String,
    left: Ev,
    right: Ev,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct AsOfRow {
    record: Ev,
    version: Option<Ev>,
}

/// `window_join`: inputs `left`, `right`; output `joined` of [`WindowJoinRow`]s.
pub(super) struct WindowJoinPipeline;

impl Pipeline for WindowJoinPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("window_join", "left and right records with equal keys in the same window")
            .input(InputDesc::of::<Ev>("left"))
            .input(InputDesc::of::<Ev>("right"))
            .output(OutputDesc::new("joined", &["k", "start"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = p.windowing().lateness();
        Inputs::new().with("left", p.left_options(lateness.clone())).with("right", p.right_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let windowing = p.windowing();
        let left = job.input::<Ev>("left")?;
        let right = job.input::<Ev>("right")?;
        let joined = left.window_join(
            right,
            "window join",
            &windowing,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
        );
        let rows =
            joined.collection().map(|(k, w, left, right)| WindowJoinRow { k, start: w.start, end: w.end, left, right });
        job.output("joined", rows)
    }
}

/// `interval_join`: inputs `left`, `right`; output `joined` of [`IntervalJoinRow`]s.
pub(super) struct IntervalJoinPipeline;

impl Pipeline for IntervalJoinPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("interval_join", "left and right records with equal keys and close event times")
            .input(InputDesc::of::<Ev>("left"))
            .input(InputDesc::of::<Ev>("right"))
            .output(OutputDesc::new("joined", &["k"]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = Lateness::After(p.allowed_lateness);
        Inputs::new().with("left", p.left_options(lateness.clone())).with("right", p.right_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let left = job.input::<Ev>("left")?;
        let right = job.input::<Ev>("right")?;
        let joined = left.interval_join(
            right,
            "interval join",
            (p.lower, p.upper),
            p.allowed_lateness,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
        )?;
        job.output("joined", joined.collection().map(|(k, left, right)| IntervalJoinRow { k, left, right }))
    }
}

/// `as_of_join`: inputs `stream`, `table`; output `enriched` of [`AsOfRow`]s.
pub(super) struct AsOfJoinPipeline;

impl Pipeline for AsOfJoinPipeline {
    type Params = OpParams;

    fn description(&self) -> Description {
        Description::new("as_of_join", "stream records with the table version in effect at their time")
            .input(InputDesc::of::<Ev>("stream"))
            .input(InputDesc::of::<Ev>("table"))
            .output(OutputDesc::new("enriched", &[]))
    }

    fn inputs(&self, p: &OpParams) -> Inputs {
        let lateness = Lateness::After(p.allowed_lateness);
        Inputs::new().with("stream", p.left_options(lateness.clone())).with("table", p.right_options(lateness))
    }

    fn build<'s>(&self, job: &mut Job<'s>, p: &OpParams) -> Result<(), BuildError> {
        let stream = job.input::<Ev>("stream")?;
        let table = job.input::<Ev>("table")?;
        let enriched = stream.as_of_join(
            table,
            "as of join",
            p.allowed_lateness,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
            |e: &Ev| e.k.clone(),
            |e: &Ev| e.ts,
        );
        job.output("enriched", enriched.collection().map(|(record, version)| AsOfRow { record, version }))
    }
}
