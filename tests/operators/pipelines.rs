//! The record, the parameters and the registry of the test pipelines; the pipelines
//! themselves are in [`joins`], [`dedupe_topk`] and [`stateful`], one file per operator
//! family, each built only from `tidemark::pipeline::prelude` as a user's pipeline is.
//!
//! Every test pipeline reads [`Ev`] records and takes [`OpParams`], using the parameters it
//! needs; its rows are its own (private) types, since the tests read them as JSON.

use serde_json::Value;
use tidemark::pipeline::prelude::*;

mod dedupe_topk;
mod joins;
mod stateful;

use self::dedupe_topk::{DedupePipeline, TopKPipeline};
use self::joins::{AsOfJoinPipeline, IntervalJoinPipeline, WindowJoinPipeline};
pub(super) use self::stateful::RetiringPipeline;
use self::stateful::StatefulPipeline;

/// The record of every test input: `{"k": string, "ts": int, "v": int}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(super) struct Ev {
    pub(super) k: String,
    pub(super) ts: u64,
    pub(super) v: i64,
}

impl Record for Ev {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("k", "string"), ("ts", "int"), ("v", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of every test pipeline (each uses the ones it needs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct OpParams {
    /// Windows of `window_join` and `top_k` (tumbling or sliding).
    pub(super) window: WindowKind,
    /// Interval join bounds: `lower <= right.ts - left.ts <= upper`.
    pub(super) lower: i64,
    pub(super) upper: i64,
    /// Dedupe's tumbling window size.
    pub(super) size: u64,
    /// How many values `top_k` ranks.
    pub(super) k: usize,
    /// The watermark of the first input (and of the second, unless overridden).
    pub(super) max_out_of_orderness: u64,
    /// The watermark of the second input, if it differs.
    pub(super) right_max_out_of_orderness: Option<u64>,
    pub(super) allowed_lateness: u64,
}

impl Default for OpParams {
    fn default() -> Self {
        OpParams {
            window: WindowKind::Tumbling { size: 10 },
            lower: 0,
            upper: 10,
            size: 10,
            k: 3,
            max_out_of_orderness: 0,
            right_max_out_of_orderness: None,
            allowed_lateness: 0,
        }
    }
}

impl Params for OpParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.window.validate()?;
        if matches!(self.window, WindowKind::Session { .. }) {
            return Err(ParamError::invalid("window", "must be tumbling or sliding"));
        }
        if self.lower > self.upper {
            return Err(ParamError::invalid("lower", "must not exceed upper"));
        }
        if self.size == 0 || self.k == 0 {
            return Err(ParamError::invalid("size", "size and k must be positive"));
        }
        check_duration("max_out_of_orderness", self.max_out_of_orderness)?;
        check_duration("right_max_out_of_orderness", self.right_max_out_of_orderness.unwrap_or(0))?;
        check_duration("allowed_lateness", self.allowed_lateness)
    }
}

impl OpParams {
    fn windowing(&self) -> Windowing {
        Windowing { kind: self.window, allowed_lateness: self.allowed_lateness, retention: None, emit: Emit::Eager }
    }

    pub(super) fn left_moo(&self) -> u64 {
        self.max_out_of_orderness
    }

    pub(super) fn right_moo(&self) -> u64 {
        self.right_max_out_of_orderness.unwrap_or(self.max_out_of_orderness)
    }

    fn left_options(&self, lateness: Lateness) -> InputOptions {
        InputOptions { max_out_of_orderness: self.left_moo(), lateness }
    }

    fn right_options(&self, lateness: Lateness) -> InputOptions {
        InputOptions { max_out_of_orderness: self.right_moo(), lateness }
    }

    /// The parameters as `--param` values.
    pub(super) fn to_params(&self) -> Vec<(String, Value)> {
        match serde_json::to_value(self).expect("params serialize") {
            Value::Object(map) => map.into_iter().collect(),
            _ => unreachable!("params are an object"),
        }
    }
}

/// The windowed count of each item `v` per group `k`.
fn item_counts<'s>(events: Stream<'s, Ev>, p: &OpParams) -> Collection<'s, ((String, i64), Window, u64)> {
    events.window_aggregate("count per item", &p.windowing(), |e: &Ev| (e.k.clone(), e.v), |e: &Ev| e.ts, |_| (), Count)
}

pub(super) fn registry() -> Registry {
    Registry::new()
        .with(WindowJoinPipeline)
        .with(IntervalJoinPipeline)
        .with(AsOfJoinPipeline)
        .with(DedupePipeline)
        .with(TopKPipeline)
        .with(StatefulPipeline)
        .with(RetiringPipeline::default())
}
