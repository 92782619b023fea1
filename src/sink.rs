//! Sinks: where a job's outputs go beyond HTTP, behind one trait.
//!
//! A job starts a sink per output its spec names under `outputs`, from the output's
//! [`SinkSpec`], with [`SinkSpec::start`]; a sink reads the output's content and
//! changes and writes them on its own thread. Stopping a job stops its sinks first, so
//! that they write nothing of its shutdown.
//!
//! - [`kafka`]: an output's changes and progress, written to a topic exactly once in
//!   accumulation.

pub mod kafka;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::runtime::Materialized;

/// Where an output goes, as a job spec gives it (`{"sink": "kafka", ...}`). Specs are
/// decoded field by field by `job::spec`, so that every error names its field; this
/// is their typed form.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "sink", rename_all = "lowercase")]
pub enum SinkSpec {
    /// A Kafka topic.
    Kafka(crate::kafka::SinkSpec),
}

/// Where a sink stands, as job status shows it (`{"sink": "kafka", ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "sink", rename_all = "lowercase")]
pub enum SinkStatus {
    /// A Kafka sink.
    Kafka(kafka::KafkaSinkStatus),
}

/// Where a sink's destination stood at a point it can resume from (kept by
/// checkpoints, `{"kafka": {"progress": P, "offsets": {PARTITION: OFFSET}}}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkPosition {
    /// A Kafka sink's topic.
    Kafka(crate::kafka::SinkPosition),
}

/// A running sink.
pub trait Sink: Send + Sync {
    /// Where it stands.
    fn status(&self) -> SinkStatus;
    /// Where it can resume from (none if it does not know yet).
    fn position(&self) -> Option<SinkPosition>;
    /// Stops it, waiting for its thread to finish.
    fn stop(&self);
}

impl SinkSpec {
    /// Starts writing `output` (keyed by `key_fields`), from `from` if a checkpoint
    /// kept where the sink stood; `name` names the sink in logs.
    pub fn start(
        &self,
        name: String,
        output: Arc<Materialized>,
        key_fields: Vec<String>,
        from: Option<SinkPosition>,
    ) -> Arc<dyn Sink> {
        match self {
            SinkSpec::Kafka(spec) => {
                let from = from.map(|SinkPosition::Kafka(position)| position);
                Arc::new(kafka::KafkaSink::start(name, spec.clone(), output, key_fields, from))
            }
        }
    }
}
