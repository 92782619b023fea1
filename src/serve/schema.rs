//! The bodies of the API, typed: what each handler takes and answers (the ground for a
//! generated OpenAPI document). API.md is the contract; these types are its shapes.
//!
//! Every object of an answer has its keys in alphabetical order, as the API always
//! answered: handlers answer [`Sorted`], which serializes through serde_json's ordered
//! map, so that a field added to a type never reorders an answer. Output rows are the
//! exception: they are the pipeline's own JSON, written as the runtime rendered them
//! (`outputs.rs`).

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::ingest::LaneState;
use crate::job::managed::{CheckpointInfo, JobState};
use crate::pipeline::{DEAD_LETTER, Dataflow, MAX_TS, Time};
use crate::sink::SinkStatus;
use crate::source::SourceSpec;
use crate::source::kafka::{KafkaStatus, PartitionStatus};

/// An answer whose objects have their keys in alphabetical order.
#[derive(Debug)]
pub struct Sorted<T>(pub T);

impl<T: Serialize> IntoResponse for Sorted<T> {
    fn into_response(self) -> Response {
        match serde_json::to_value(&self.0) {
            Ok(value) => Json(value).into_response(),
            Err(error) => ApiError::unavailable(error).into_response(),
        }
    }
}

/// `GET /healthz`.
#[derive(Clone, Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// A dataflow as `GET /api/v1/dataflows` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct DataflowListing {
    /// Its name.
    pub name: String,
    /// One line on what it computes.
    pub description: String,
    /// Its inputs.
    pub inputs: Vec<InputListing>,
    /// Its outputs, `dead_letter` last.
    pub outputs: Vec<OutputListing>,
    /// Every parameter a job of it takes, with its default.
    pub params: Map<String, Value>,
}

/// An input of a dataflow listing.
#[derive(Clone, Debug, Serialize)]
pub struct InputListing {
    /// Its name.
    pub name: String,
    /// Its records' top-level fields, in declared order.
    pub fields: Vec<&'static str>,
    /// The JSON type of each field.
    pub schema: BTreeMap<&'static str, &'static str>,
}

/// An output of a dataflow listing.
#[derive(Clone, Debug, Serialize)]
pub struct OutputListing {
    /// Its name.
    pub name: String,
    /// Its key fields.
    pub key: Vec<String>,
}

impl DataflowListing {
    /// `dataflow`'s listing; `params` are the defaults of every parameter of its jobs.
    pub fn of(dataflow: &Dataflow, params: Map<String, Value>) -> DataflowListing {
        let d = dataflow.description();
        let inputs = d
            .inputs
            .iter()
            .map(|i| InputListing {
                name: i.name.clone(),
                fields: i.fields.iter().map(|(name, _)| *name).collect(),
                schema: i.fields.iter().copied().collect(),
            })
            .collect();
        let outputs = d
            .outputs
            .iter()
            .map(|o| OutputListing { name: o.name.clone(), key: o.key.clone() })
            .chain([OutputListing { name: DEAD_LETTER.to_string(), key: Vec::new() }])
            .collect();
        DataflowListing { name: d.name.clone(), description: d.about.clone(), inputs, outputs, params }
    }
}

/// A job as `GET /api/v1/jobs/{job}` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    /// Its name.
    pub name: String,
    /// Its dataflow.
    pub dataflow: String,
    /// Running, restarting or failed.
    pub state: JobState,
    /// Why it failed (or is restarting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times it was started again after its pipeline failed.
    pub restarts: u32,
    /// Its last checkpoint (`null` before the first).
    pub checkpoint: Option<CheckpointInfo>,
    /// Why its latest checkpoint failed, if it did (the previous one stays in use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_error: Option<String>,
    /// Its effective parameters.
    pub params: Map<String, Value>,
    /// The least watermark of its inputs.
    pub watermark: Time,
    /// Its inputs, by name.
    pub inputs: BTreeMap<String, InputStatus>,
    /// Its outputs, by name.
    pub outputs: BTreeMap<String, OutputStatus>,
}

/// Where an input of a job stands.
#[derive(Clone, Debug, Serialize)]
pub struct InputStatus {
    /// Its source, as the spec gave it (with defaults).
    pub source: SourceSpec,
    /// Its watermark.
    pub watermark: Time,
    /// Its frontier.
    pub frontier: Time,
    /// Records applied (on time or late but allowed).
    pub accepted: u64,
    /// Applied records that were late.
    pub late: u64,
    /// Records dead-lettered as too late.
    pub too_late: u64,
    /// Records that failed to parse or validate.
    pub rejected: u64,
    /// A Kafka input's partitions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<PartitionEntry>>,
    /// A Kafka input's messages read since the job (re)started: after a restart from
    /// a checkpoint, those after its offsets, read again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_read: Option<u64>,
    /// A Kafka input's latest trouble.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A partition of a Kafka input: offsets from the source, watermark from the router.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionEntry {
    /// Its offsets.
    #[serde(flatten)]
    pub offsets: PartitionStatus,
    /// Its watermark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<Time>,
    /// Whether it is idle (holds the input's watermark back no more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle: Option<bool>,
}

impl PartitionEntry {
    /// Each partition of a Kafka input, with its lane's watermark when it has one.
    pub fn of(kafka: KafkaStatus, lanes: &[LaneState]) -> Vec<PartitionEntry> {
        kafka
            .partitions
            .into_iter()
            .map(|offsets| {
                let lane = usize::try_from(offsets.partition).ok().and_then(|i| lanes.get(i));
                PartitionEntry { watermark: lane.map(|l| l.watermark), idle: lane.map(|l| l.idle), offsets }
            })
            .collect()
    }
}

/// Where an output of a job stands.
#[derive(Clone, Debug, Serialize)]
pub struct OutputStatus {
    /// Its frontier; `null` once complete for every time.
    pub frontier: Option<Time>,
    /// Rows it holds.
    pub rows: usize,
    /// Its key fields.
    pub key: Vec<String>,
    /// The earliest time `as_of` can read.
    pub since: Time,
    /// Where its sink stands, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<SinkStatus>,
}

/// `POST /api/v1/jobs/{job}/inputs/{input}/advance`: `{"watermark": T}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceRequest {
    /// The watermark to move to, at least (ms of event time, at most `MAX_TS`).
    pub watermark: Time,
}

impl AdvanceRequest {
    /// The request in `body`: any JSON object with a `watermark` (400
    /// `invalid_json`, 400 `invalid_watermark`, 422 `invalid_watermark` beyond `MAX_TS`).
    pub fn parse(body: &[u8]) -> Result<AdvanceRequest, ApiError> {
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("body must be {{\"watermark\": T}}: {e}")))?;
        let watermark = body.get("watermark").and_then(Value::as_u64).ok_or_else(|| {
            ApiError::bad_request("invalid_watermark", "`watermark` must be a non-negative integer (ms of event time)")
        })?;
        if watermark > MAX_TS {
            let message = format!("`watermark` must be at most {MAX_TS} (the largest event time), got {watermark}");
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_watermark", message));
        }
        Ok(AdvanceRequest { watermark })
    }
}

/// The answer to an advance.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Advanced {
    /// The input's watermark now.
    pub watermark: Time,
    /// The least output frontier, once every output reflects all input below it.
    pub frontier: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(answer: impl IntoResponse) -> String {
        let bytes = axum::body::to_bytes(answer.into_response().into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Keys in alphabetical order at every depth, absent options left out, a Kafka
    /// partition's offsets beside its lane's watermark: the bytes the API always sent.
    #[tokio::test]
    async fn answers_have_their_keys_in_alphabetical_order() {
        let kafka = KafkaStatus {
            topic: "t".into(),
            partitions: vec![
                PartitionStatus {
                    partition: 0,
                    start: Some(0),
                    position: Some(5),
                    committed: Some(5),
                    high_watermark: None,
                    lag: None,
                },
                PartitionStatus {
                    partition: 1,
                    start: None,
                    position: None,
                    committed: None,
                    high_watermark: None,
                    lag: None,
                },
            ],
            records_read: 5,
            error: None,
        };
        let lanes = [LaneState { watermark: 7, idle: false }];
        let input = InputStatus {
            source: SourceSpec::Http,
            watermark: 7,
            frontier: 8,
            accepted: 1,
            late: 2,
            too_late: 3,
            rejected: 4,
            partitions: Some(PartitionEntry::of(kafka, &lanes)),
            records_read: Some(5),
            error: None,
        };
        assert_eq!(
            body(Sorted(input)).await,
            concat!(
                r#"{"accepted":1,"frontier":8,"late":2,"partitions":["#,
                r#"{"committed":5,"high_watermark":null,"idle":false,"lag":null,"partition":0,"position":5,"start":0,"watermark":7},"#,
                r#"{"committed":null,"high_watermark":null,"lag":null,"partition":1,"position":null,"start":null}],"#,
                r#""records_read":5,"rejected":4,"source":{"source":"http"},"too_late":3,"watermark":7}"#
            )
        );
        let output = OutputStatus { frontier: None, rows: 0, key: vec!["k".into()], since: 0, sink: None };
        assert_eq!(body(Sorted(output)).await, r#"{"frontier":null,"key":["k"],"rows":0,"since":0}"#);
        let advanced = Advanced { watermark: 3, frontier: Some(2) };
        assert_eq!(body(Sorted(advanced)).await, r#"{"frontier":2,"watermark":3}"#);
    }

    #[test]
    fn advance_requests_keep_their_errors() {
        assert_eq!(AdvanceRequest::parse(br#"{"watermark": 5, "x": 1}"#).unwrap(), AdvanceRequest { watermark: 5 });
        for (body, status, code) in [
            (&b"nope"[..], StatusCode::BAD_REQUEST, "invalid_json"),
            (b"[1]", StatusCode::BAD_REQUEST, "invalid_watermark"),
            (br#"{"watermark": -1}"#, StatusCode::BAD_REQUEST, "invalid_watermark"),
            (br#"{"watermark": 4611686018427387905}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid_watermark"),
        ] {
            let error = AdvanceRequest::parse(body).unwrap_err();
            assert_eq!((error.status, error.code), (status, code), "{}", String::from_utf8_lossy(body));
        }
    }
}
