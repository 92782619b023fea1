//! Kafka: the specs of topics as job inputs and as destinations of outputs, their
//! validation, librdkafka clients as tidemark configures them, and their errors.
//!
//! - [`crate::source::kafka`] reads a topic into an input, each partition a lane of the
//!   input's router (its own watermark; the input's is the least of the partitions
//!   that are not idle), from starting offsets fixed when the job is created, so that
//!   a restarted job replays exactly what it had read.
//! - [`crate::sink::kafka`] writes an output's changes and progress to a topic, exactly
//!   once in accumulation: on start it reads back what the topic holds and writes only
//!   the difference to the output's content, then streams.
//!
//! Both run on threads of their own with librdkafka (`rdkafka`, bundled), never on
//! timely workers or on the HTTP runtime. Specs:
//!
//! ```json
//! {"source": "kafka", "brokers": "127.0.0.1:9092", "topic": "events", "start": "earliest"}
//! {"sink": "kafka", "brokers": "127.0.0.1:9092", "topic": "windows"}
//! ```
//!
//! `config` (an object of librdkafka properties, say `{"fetch.max.bytes": 1048576}`)
//! tunes either; the properties tidemark relies on (group, offsets, idempotence) are
//! its own and cannot be set.

pub(crate) mod client;
mod error;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

pub use client::is_local_property;
pub use error::{ClientError, CreateFailure};

/// The first offset to read of each partition; partitions not listed are read from
/// their beginning.
pub type Offsets = BTreeMap<i32, i64>;

/// A Kafka source as a job spec gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// Where a new job starts reading.
    #[serde(default)]
    pub start: StartAt,
    /// Extra librdkafka properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "properties")]
    pub config: BTreeMap<String, String>,
}

/// Where a new job starts reading a topic. The offsets are fixed when the job is
/// created; a restarted job reads from the same offsets again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Every record the topic holds.
    #[default]
    Earliest,
    /// Records written after the job was created.
    Latest,
}

/// Where a Kafka sink's topic stood at a progress message that every partition
/// received: the data messages before `offsets` (in each partition, the offset just
/// after that progress message) sum to the output's content at `progress`. A checkpoint
/// keeps it, so that a restored sink reads back only what follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkPosition {
    /// The progress message's frontier.
    pub progress: crate::pipeline::Time,
    /// The offset after it, by partition.
    pub offsets: Offsets,
}

/// A Kafka sink as a job spec gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic (created with one partition if it does not exist).
    pub topic: String,
    /// Extra librdkafka properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "properties")]
    pub config: BTreeMap<String, String>,
}

/// A Kafka spec that cannot work: what is wrong, and with which field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field (`brokers`, `topic`, `config.<property>`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SourceSpec {
    /// Checks the spec without contacting the brokers.
    pub fn validate(&self) -> Result<(), SpecError> {
        check(&self.brokers, &self.topic, &self.config, client::Role::Consumer)
    }
}

impl SinkSpec {
    /// Checks the spec without contacting the brokers.
    pub fn validate(&self) -> Result<(), SpecError> {
        check(&self.brokers, &self.topic, &self.config, client::Role::Producer)
    }
}

fn check(brokers: &str, topic: &str, config: &BTreeMap<String, String>, role: client::Role) -> Result<(), SpecError> {
    let error = |field: &str, message: String| SpecError { field: field.into(), message };
    let bad_broker = |b: &str| {
        let (host, port) = b.rsplit_once(':').unwrap_or((b, ""));
        host.is_empty() || port.parse::<u16>().is_err()
    };
    if brokers.trim().is_empty() || brokers.split(',').map(str::trim).any(bad_broker) {
        return Err(error("brokers", format!("`{brokers}` is not a list of host:port")));
    }
    let topic_ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !topic_ok {
        let message = format!("`{topic}` is not a Kafka topic name (1 to 249 of letters, digits, `.`, `_`, `-`)");
        return Err(error("topic", message));
    }
    if let Some(key) = config.keys().find(|k| client::RESERVED.contains(&k.as_str())) {
        return Err(error(&format!("config.{key}"), "is set by tidemark and cannot be changed".into()));
    }
    client::check_config(brokers, config, role).map_err(|rejected| match rejected {
        client::Rejected::Property { key, description } => error(&format!("config.{key}"), description),
        client::Rejected::Together(e) => error("config", e.to_string()),
    })
}

/// librdkafka properties: strings, or numbers and booleans written as JSON.
fn properties<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error;
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(de)?;
    raw.into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(s) => Ok((key, s)),
            serde_json::Value::Number(n) => Ok((key, n.to_string())),
            serde_json::Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(D::Error::custom(format!("`{key}`: expected a string, number or boolean, got {other}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(value: serde_json::Value) -> Result<SourceSpec, Box<dyn std::error::Error>> {
        let spec: SourceSpec = serde_json::from_value(value)?;
        spec.validate()?;
        Ok(spec)
    }

    #[test]
    fn specs_are_checked_before_any_broker_is_contacted() {
        let spec = source(serde_json::json!({"brokers": "127.0.0.1:9092", "topic": "t"})).unwrap();
        assert_eq!(spec.start, StartAt::Earliest);
        let spec = source(serde_json::json!({
            "brokers": "a:1,b:2", "topic": "t.x_y-z", "start": "latest", "config": {"fetch.max.bytes": 1048576}
        }))
        .unwrap();
        assert_eq!(spec.config["fetch.max.bytes"], "1048576");
        for (bad, says) in [
            (serde_json::json!({"brokers": "", "topic": "t"}), "brokers"),
            (serde_json::json!({"brokers": "host", "topic": "t"}), "brokers"),
            (serde_json::json!({"brokers": "h:1", "topic": "a/b"}), "topic"),
            (serde_json::json!({"brokers": "h:1", "topic": "t", "start": "middle"}), "unknown variant"),
            (serde_json::json!({"brokers": "h:1", "topic": "t", "config": {"group.id": "g"}}), "config.group.id"),
            (serde_json::json!({"brokers": "h:1", "topic": "t", "config": {"no.such.thing": "1"}}), "no.such.thing"),
            (
                serde_json::json!({"brokers": "h:1", "topic": "t", "config": {"fetch.max.bytes": "lots"}}),
                "fetch.max.bytes",
            ),
        ] {
            let error = source(bad.clone()).unwrap_err();
            assert!(error.to_string().contains(says), "{bad}: {error}");
        }
    }
}
