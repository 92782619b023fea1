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

use super::{CHECK, KafkaProducer, REQUEST_TIMEOUT, ReadBack, Resumed, Writer};
use crate::kafka::client::{self, Role};
use crate::kafka::{ClientError, CreateFailure, SinkPosition};
use crate::pipeline::{Diff, Time};
use crate::runtime::{Start, Unanswerable};

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
    /// Reads the topic back and writes what it lacks of the output's content; returns
    /// the stream of later steps and the topic's partitions (`None`: stopped).
    ///
    /// From a known position (the latest progress every partition received, or the
    /// one a checkpoint kept) only what follows it is read: what precedes it sums to
    /// the output's content at its progress `P`, so the output's changes from `P` on
    /// (its history) stand for it. When the history no longer reaches `P`, or the topic
    /// does not hold what the position says, the whole topic is read.
    pub(super) fn reconcile(&self, producer: &KafkaProducer) -> Result<Option<Resumed>, ClientError> {
        let mut from = self.shared.context.delivered_progress();
        loop {
            self.shared.set_state("reading back");
            let Some(written) = self.read_back(from.as_ref())? else { return Ok(None) };
            *self.shared.read_back.lock().expect("read-back lock") =
                Some(ReadBack { from: written.from, messages: written.read });
            *self.shared.progress.lock().expect("progress lock") = written.progress;
            if written.foreign > 0 {
                self.shared.context.trouble(format!(
                    "topic `{}` holds {} messages that are neither data nor progress; they are ignored",
                    self.spec.topic, written.foreign
                ));
            }
            if let Some(progress) = written.progress {
                self.shared.set_state(format!("waiting for the output to reach {progress}"));
                while !self.output.wait_for(progress, CHECK) {
                    if self.stopped() {
                        return Ok(None);
                    }
                }
            }
            let subscription = match self.output.subscribe(written.from.map_or(Start::Snapshot, Start::Since)) {
                Err(Unanswerable::Gone { since }) if written.from.is_some() => {
                    tracing::info!(
                        sink = %self.name, topic = %self.spec.topic, position = ?written.from, since,
                        "kafka: the output's history no longer reaches the sink's position; reading the whole topic"
                    );
                    from = None;
                    continue;
                }
                subscribed => subscribed?,
            };
            let Some(frontier) = subscription.frontier else { return Ok(None) };
            let mut difference = written.rows;
            let content = subscription.snapshot.unwrap_or_default().into_iter();
            let changes = subscription.backlog.iter().flat_map(|b| b.changes.iter().cloned());
            for (row, diff) in content.chain(changes) {
                *difference.entry(Box::from(&*row)).or_default() -= diff;
            }
            let time = frontier.saturating_sub(1).max(written.progress.unwrap_or(0));
            let mut corrections: Vec<(Box<str>, Diff)> =
                difference.into_iter().filter(|(_, d)| *d != 0).map(|(row, d)| (row, -d)).collect();
            corrections.sort();
            // Nothing of the topic is in flight: progress from here on marks positions.
            self.shared.context.resume_progress(written.partitions.max(1) as usize, None);
            for (row, diff) in &corrections {
                if !self.send_change(producer, time, row, *diff) {
                    return Ok(None);
                }
            }
            if written.progress.is_none_or(|p| frontier > p)
                && !self.send_progress(producer, frontier, written.partitions)
            {
                return Ok(None);
            }
            tracing::info!(
                sink = %self.name, topic = %self.spec.topic, frontier, corrections = corrections.len(),
                read_back = written.read, from = ?written.from, "kafka: sink resumed"
            );
            self.shared.context.clear_trouble();
            return Ok(Some((subscription.steps, written.partitions)));
        }
    }

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
