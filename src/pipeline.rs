//! The API pipeline authors see.
//!
//! A pipeline is a [`Pipeline`] implementation: it declares its inputs (typed serde
//! [`Record`]s), its parameters (a serde struct with defaults and validation), and its
//! named outputs (serde [`Row`]s with declared key fields), says how the ingest router
//! treats each input ([`Pipeline::inputs`]), and builds a differential dataflow from
//! them in [`Pipeline::build`].
//!
//! This module is the ground floor: it imports nothing else of the crate. What it needs
//! from the layers above it declares itself, and they implement or drive it: the
//! runtime drives a job's worker inputs (`WorkerInput`) and hands it [`OutputSink`]s; the ingest
//! router fills inputs through the input's codec and writes [`DeadLetter`]s.
//!
//! Inputs arrive as [`Stream`]s: event-time streams whose records carry the watermark
//! at which they arrived, so that windowed operators can judge lateness exactly
//! whatever the batching (see `DESIGN.md`, "Time"). Stream operators
//! ([`Stream::window_aggregate`], [`Stream::window_join`], [`Stream::interval_join`],
//! [`Stream::as_of_join`], [`Stream::dedupe`]) retire their state when the watermark
//! makes it final; windowed results turn into [`Collection`]s, plain differential
//! collections, which [`top_k`] and every differential operator accept.
//! [`Stream::collection`] is the escape hatch to raw differential dataflow.
//!
//! Per-group state: [`stateful`] keeps a [`GroupLogic`] per key that gets each step's
//! changes and emits its own output changes, for algorithms with their own
//! incremental structure (the incremental Lloyd's algorithm of `dataflows/kmeans.rs`).
//!
//! Cycles: [`iterate`] runs a loop to its fixed point with a round cap, and
//! [`Stream::windowed`] gives each record in each of its windows, so that a loop keyed
//! by window recomputes only the windows whose data changed (see `dataflows/logreg.rs`,
//! `dataflows/components.rs`).
//!
//! ```text
//! input ─► Stream<D> ──window_aggregate──► Collection<(K, Window, Out)> ──map──► output
//!            │  ▲                              │
//!            │  └─ window_join / interval_join / as_of_join / dedupe
//!            └────────── collection() ─► raw differential dataflow
//! ```

pub mod aggregate;
mod build;
pub(crate) mod clock;
pub(crate) mod codec;
mod dead_letter;
mod dedupe;
mod description;
mod expire;
mod fields;
mod input;
mod iterate;
mod join;
pub(crate) mod keyed;
mod num;
mod output;
mod params;
mod record;
mod registry;
#[cfg(test)]
mod snapshot_check;
pub mod state;
mod stateful;
mod stream;
mod topk;
pub mod window;

pub use aggregate::{Aggregate, Avg, Count, Max, Min, Stats, StatsOut, Sum};
pub use build::{BuildError, Job, TimeMode};
pub use dead_letter::{DeadLetter, Reason};
pub use description::{DEAD_LETTER, Description, InputDesc, OutputDesc};
pub use fields::struct_fields;
pub(crate) use input::WorkerInput;
pub use input::{InputOptions, Inputs};
pub use iterate::{Loop, LoopCollection, Round, iterate};
pub use num::{ExactSum, Num};
pub use output::{Change, OutputSink};
pub use params::{ParamError, Params, check_duration};
pub use record::{JsonText, Record, RecordError, Row};
pub use registry::{Dataflow, DecodedParams, Pipeline, Registry};
pub use stateful::{GroupLogic, stateful};
pub use stream::Stream;
pub use topk::top_k;
pub use window::{Emit, EventTime, Lateness, Window, WindowKind, Windowing};

/// A string for record fields and keys: up to 24 bytes are stored inline, so short
/// keys parse, clone, hash and drop without allocating. Use it instead of `String`
/// for fields that are keys; it serializes as a plain JSON string.
pub type Text = compact_str::CompactString;

/// Event time in milliseconds: the timestamp of every differential collection.
pub type Time = u64;
/// Multiplicity changes of differential updates.
pub type Diff = isize;
/// A differential collection at event time.
pub type Collection<'s, D> = differential_dataflow::VecCollection<'s, Time, D, Diff>;

/// The largest event time a record may carry (2^62 ms, some 146 million years).
///
/// Windows, lateness and retention are computed by adding durations to event times;
/// this bound (with [`MAX_DURATION`]) guarantees that such sums never overflow.
pub const MAX_TS: Time = 1 << 62;
/// The largest duration a parameter (window size, lateness, retention) may have.
pub const MAX_DURATION: Time = 1 << 60;

/// What data flowing through a pipeline must be: comparable, hashable, serializable.
pub trait Data: differential_dataflow::ExchangeData + std::hash::Hash {}
impl<T: differential_dataflow::ExchangeData + std::hash::Hash> Data for T {}

/// Everything a pipeline module needs: `use tidemark::pipeline::prelude::*;`.
pub mod prelude {
    pub use super::{
        Aggregate, Avg, BuildError, Collection, Count, Data, Description, Diff, Emit, EventTime, ExactSum, InputDesc,
        InputOptions, Inputs, Job, JsonText, Lateness, MAX_DURATION, Max, Min, Num, OutputDesc, ParamError, Params,
        Pipeline, Record, RecordError, Registry, Row, Stats, StatsOut, Stream, Sum, Text, Time, Window, WindowKind,
        Windowing, check_duration, top_k,
    };
    pub use super::{GroupLogic, Loop, LoopCollection, iterate, stateful};
    pub use serde::{Deserialize, Serialize};
}
