//! Ingest: turning bytes from transports into records placed in event time.
//!
//! - [`router`]: per input, the watermark, lateness judgement and placement of records
//!   (the time model of `DESIGN.md`), and the job's dead letters.
//! - `codec`: parsing records into an input's typed batches.
//! - [`format`](mod@format): splitting request bodies and files into records (JSON arrays, NDJSON).

pub(crate) mod codec;
pub mod format;
pub mod generator;
pub mod router;

pub use router::{DeadLetter, IngestReport, InputClock, LaneState, Reason, Rejected};
