//! `window_agg` — keyed windowed aggregates with late-data corrections.
//!
//! - input `events`: `{"key": string, "ts": int, "value": number}`; `ts` is a
//!   non-negative integer (ms), `value` a finite number, anything else is `invalid`.
//! - params: `window` (required): `{"tumbling": {"size": ms}}`,
//!   `{"sliding": {"size": ms, "slide": ms}}` or `{"session": {"gap": ms}}`;
//!   `max_out_of_orderness` (ms, default 0); `allowed_lateness` (ms, default 0);
//!   `retention` (ms after a window is final, default 3600000, `null` = forever);
//!   `emit`: `"eager"` (default), `"on_close"` or `"final"`.
//! - output `windows` (key `key`, `start`):
//!   `{"key", "start", "end", "count", "sum", "min", "max", "avg"}`, one row per
//!   non-empty window. Sums are exact: a retraction restores the previous value.
//! - output `dead_letter`: `{"input", "record", "reason", "ts"}` (`too_late`, `invalid`).
//!
//! An event arriving at watermark `W` is applied to each of its windows with
//! `end + allowed_lateness > W` (sessions: when `ts + gap + allowed_lateness > W`);
//! with none it is too late. A late event corrects the rows it changes.
//!
//! ```sh
//! tidemark run window_agg --input events=events.ndjson --param window='{"tumbling":{"size":10000}}'
//! curl 'http://127.0.0.1:8080/api/v1/jobs/window_agg/outputs/windows?key=a'
//! ```

use tidemark::pipeline::prelude::*;

/// One input event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Grouping key.
    pub key: Text,
    /// Event time, ms.
    pub ts: u64,
    /// The value aggregated.
    pub value: Num,
}

impl Record for Event {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("key", "string"), ("ts", "int"), ("value", "number")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of `window_agg`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WindowAggParams {
    /// How events are grouped in time (required).
    pub window: Option<WindowKind>,
    /// Out-of-orderness, lateness, retention and emission.
    #[serde(flatten)]
    pub time: EventTime,
}

impl Params for WindowAggParams {
    fn validate(&self) -> Result<(), ParamError> {
        let window = self.window.ok_or_else(|| ParamError::missing("window", r#"{"tumbling": {"size": 60000}}"#))?;
        window.validate()?;
        self.time.validate()
    }
}

/// One row of `windows`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowRow {
    key: Text,
    start: u64,
    end: u64,
    count: u64,
    sum: Num,
    min: Num,
    max: Num,
    avg: Num,
}

/// The `window_agg` pipeline.
pub struct WindowAgg;

impl Pipeline for WindowAgg {
    type Params = WindowAggParams;

    fn description(&self) -> Description {
        Description::new(
            "window_agg",
            "keyed windowed aggregates (count, sum, min, max, avg) with late-data corrections",
        )
        .input(InputDesc::of::<Event>("events"))
        .output(OutputDesc::new("windows", &["key", "start"]))
    }

    fn inputs(&self, params: &WindowAggParams) -> Inputs {
        let windowing = params.time.windowing(params.window.expect("validated"));
        Inputs::new().with("events", params.time.input(windowing.lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &WindowAggParams) -> Result<(), BuildError> {
        let windowing = params.time.windowing(params.window.expect("validated"));
        let events = job.input::<Event>("events")?;
        let windows = events
            .window_aggregate("windows", &windowing, |e| e.key.clone(), |e| e.ts, |e| e.value, Stats)
            .map(|(key, w, s)| WindowRow {
                key,
                start: w.start,
                end: w.end,
                count: s.count,
                sum: s.sum,
                min: s.min,
                max: s.max,
                avg: s.avg,
            });
        job.output("windows", windows)
    }
}
