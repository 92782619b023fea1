//! Ingest: turning bytes from transports into records placed in event time.
//!
//! - [`router`]: per input, the watermark, lateness judgement and placement of records
//!   (the time model of `DESIGN.md`), and the job's dead letters.
//! - [`format`](mod@format): splitting request bodies and files into records (JSON arrays, NDJSON).

pub mod format;
pub mod router;

pub use router::{IngestReport, InputClock, LaneState, Rejected};
