//! Reading a sink's topic back, whole or from a known position: the sum of its data
//! messages and its last progress, from which the sink resumes (see [`super`]); and
//! creating the topic.

use std::collections::HashMap;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CHECK, REQUEST_TIMEOUT, Writer};
use crate::kafka::client::{self, Role};
use crate::kafka::{ClientError, CreateFailure, SinkPosition};
use crate::pipeline::{Diff, Time};

/// What the topic holds.
pub(super) struct Written {
    /// The sum of the diffs of its data messages, by row.
    pub(super) rows: HashMap<Box<str>, Diff>,
    /// The largest progress in it.
    pub(super) progress: Option<Time>,
    /// Its partitions.
    pub(super) partitions: i32,
    /// Messages that were neither data nor progress.
    pub(super) foreign: u64,
    /// The progress of the position it was read from (`None`: the whole topic).
    pub(super) from: Option<Time>,
    /// The messages read.
    pub(super) read: u64,
}

/// A message of a sink topic, data or progress.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    row: Option<&'a RawValue>,
    diff: Option<Diff>,
    progress: Option<Time>,
}

impl Writer {
    /// Reads the topic from `from` (the whole of it without one, or if it does not
    /// hold what `from` says), creating it if it does not exist (`None`: stopped).
    pub(super) fn read_back(&self, from: Option<&SinkPosition>) -> Result<Option<Written>, ClientError> {
        let config =
            client::config(&self.spec.brokers, &format!("{}-readback", self.name), Role::Consumer, &self.spec.config);
        let consumer: BaseConsumer = config.create()?;
        let mut written =
            Written { rows: HashMap::new(), progress: None, partitions: 0, foreign: 0, from: None, read: 0 };
        let partitions = client::partitions(&consumer, &self.spec.topic, REQUEST_TIMEOUT)?;
        if partitions.is_empty() {
            if from.is_some() {
                self.shared.context.trouble(format!(
                    "topic `{}` does not exist any more; it is created again and the output written whole",
                    self.spec.topic
                ));
            }
            self.create_topic()?;
            written.partitions = 1;
            return Ok(Some(written));
        }
        written.partitions = partitions.iter().max().map_or(1, |p| p + 1);
        let mut marks = Vec::new();
        for partition in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&self.spec.topic, partition, REQUEST_TIMEOUT)
                .map_err(|source| ClientError::Offsets { topic: self.spec.topic.clone(), partition, source })?;
            marks.push((partition, low, high));
        }
        let from = from.filter(|position| {
            let holds = |(partition, offset): (&i32, &i64)| {
                marks.iter().any(|(p, low, high)| p == partition && (*low..=*high).contains(offset))
            };
            let held = position.offsets.iter().all(holds);
            if !held {
                self.shared.context.trouble(format!(
                    "topic `{}` does not hold what the sink wrote up to progress {} (offsets {:?}, the topic's {:?}); \
                     it is read whole",
                    self.spec.topic, position.progress, position.offsets, marks
                ));
            }
            held
        });
        written.from = from.map(|position| position.progress);
        written.progress = written.from;
        let mut assignment = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for (partition, low, high) in marks {
            let start = from.and_then(|position| position.offsets.get(&partition)).copied().unwrap_or(low);
            if high > start {
                assignment.add_partition_offset(&self.spec.topic, partition, Offset::Offset(start))?;
                ends.insert(partition, high);
            }
        }
        if ends.is_empty() {
            return Ok(Some(written));
        }
        consumer.assign(&assignment).map_err(ClientError::ReadBack)?;
        while !ends.is_empty() {
            if self.stopped() {
                return Ok(None);
            }
            let message = match consumer.poll(CHECK) {
                None => continue,
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    self.shared.context.trouble(format!("cannot read the topic back: {e}"));
                    continue;
                }
            };
            written.read += 1;
            match message.payload().and_then(|p| serde_json::from_slice::<Entry>(p).ok()) {
                Some(Entry { row: Some(row), diff: Some(diff), .. }) => {
                    let count = written.rows.entry(Box::from(row.get())).or_default();
                    *count += diff;
                    if *count == 0 {
                        written.rows.remove(row.get());
                    }
                }
                Some(Entry { progress: Some(progress), .. }) => {
                    written.progress = written.progress.max(Some(progress));
                }
                _ => written.foreign += 1,
            }
            if ends.get(&message.partition()).is_some_and(|end| message.offset() + 1 >= *end) {
                ends.remove(&message.partition());
            }
        }
        Ok(Some(written))
    }

    /// Creates the topic with one partition (one order for all its messages).
    fn create_topic(&self) -> Result<(), ClientError> {
        let config =
            client::config(&self.spec.brokers, &format!("{}-admin", self.name), Role::Producer, &self.spec.config);
        let admin: AdminClient<DefaultClientContext> = config.create()?;
        let topic = NewTopic::new(&self.spec.topic, 1, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let waiter = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let failed = |reason| ClientError::CreateTopic { topic: self.spec.topic.clone(), reason };
        let results = waiter
            .block_on(async { tokio::time::timeout(REQUEST_TIMEOUT, admin.create_topics([&topic], &options)).await })
            .map_err(|_| failed(CreateFailure::TimedOut))?
            .map_err(|e| failed(CreateFailure::Client(e)))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, e)) => return Err(failed(CreateFailure::Refused(e))),
            }
        }
        tracing::info!(sink = %self.name, topic = %self.spec.topic, "kafka: created the sink topic");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_messages_parse_back() {
        let data: Entry = serde_json::from_str(r#"{"time":5,"row":{"key":"a","n":1.50},"diff":-2}"#).unwrap();
        assert_eq!((data.row.map(|r| r.get()), data.diff), (Some(r#"{"key":"a","n":1.50}"#), Some(-2)));
        let progress: Entry = serde_json::from_str(r#"{"progress":7}"#).unwrap();
        assert_eq!(progress.progress, Some(7));
    }
}
