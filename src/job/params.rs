//! A job's parameters: its dataflow's, and the one every job takes itself,
//! `idle_timeout_ms` (after how long without records an input's watermark follows the
//! wall clock; `null`: never).
//!
//! They are given together, as one `params` object (`API.md`), and shown together; the
//! dataflow never sees the job's own.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::pipeline::{Dataflow, DecodedParams, ParamError};

/// The job-level parameter every job accepts.
pub const IDLE_TIMEOUT: &str = "idle_timeout_ms";
/// Its default.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 10_000;

/// A job's decoded parameters.
#[derive(Clone, Debug)]
pub struct JobParams {
    /// The dataflow's.
    pub dataflow: DecodedParams,
    /// After how long without records an input's watermark follows the wall clock.
    pub idle_timeout: Option<Duration>,
    /// Every effective parameter, defaults included, the job's among the dataflow's.
    pub json: Map<String, Value>,
}

impl JobParams {
    /// Decodes `given` for `dataflow` (missing parameters take their defaults).
    pub fn decode(dataflow: &Dataflow, given: &Map<String, Value>) -> Result<JobParams, ParamError> {
        let mut given = given.clone();
        let idle = match given.remove(IDLE_TIMEOUT) {
            None => Some(DEFAULT_IDLE_TIMEOUT_MS),
            Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|ms| *ms > 0).ok_or_else(|| ParamError {
                param: IDLE_TIMEOUT.into(),
                message: format!("must be a positive number of milliseconds or null, got {v}"),
                malformed: !v.is_number(),
            })?),
        };
        let decoded = dataflow.decode_params(&given, &[IDLE_TIMEOUT])?;
        let mut json = decoded.json.clone();
        json.insert(IDLE_TIMEOUT.into(), idle.map_or(Value::Null, Value::from));
        Ok(JobParams { dataflow: decoded, idle_timeout: idle.map(Duration::from_millis), json })
    }

    /// Every parameter a job of `dataflow` takes, with its default.
    pub fn defaults(dataflow: &Dataflow) -> Map<String, Value> {
        let mut defaults = dataflow.default_params();
        defaults.insert(IDLE_TIMEOUT.into(), DEFAULT_IDLE_TIMEOUT_MS.into());
        defaults
    }
}
