//! What a job does with records it cannot use: its `dead_letter` output's rows.

use serde::{Deserialize, Serialize};

use super::{JsonText, Time};

/// A record a job could not use, as shown in its `dead_letter` output.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The input it was sent to.
    pub input: String,
    /// The record as sent (a JSON string if it was not JSON at all).
    pub record: JsonText,
    /// Why it was not used.
    pub reason: Reason,
    /// Its event time, when it had a valid one.
    pub ts: Option<Time>,
}

/// Why a record was dead-lettered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// It arrived after every window it belongs to was final.
    TooLate,
    /// It could not be parsed or failed validation.
    Invalid,
}
