//! What goes wrong talking to Kafka, typed: the messages are shown in job status
//! (`error`) and in 503 `kafka_unavailable` answers.

/// A Kafka operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// librdkafka refused to create a client or a request.
    #[error("{0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The brokers did not answer a metadata request.
    #[error("cannot reach the brokers: {0}")]
    Unreachable(rdkafka::error::KafkaError),
    /// The brokers answered for the topic with an error.
    #[error("topic `{topic}`: {code}")]
    Topic {
        /// The topic.
        topic: String,
        /// What the brokers said.
        code: rdkafka::types::RDKafkaErrorCode,
    },
    /// A partition's offsets could not be read.
    #[error("cannot read the offsets of {topic}/{partition}: {source}")]
    Offsets {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Why.
        source: rdkafka::error::KafkaError,
    },
    /// Partitions could not be assigned to a consumer.
    #[error("cannot assign partitions: {0}")]
    Assign(rdkafka::error::KafkaError),
    /// A sink could not read its topic back.
    #[error("cannot read the topic back: {0}")]
    ReadBack(rdkafka::error::KafkaError),
    /// A sink's topic could not be created.
    #[error("cannot create topic `{topic}`: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// Why (a broker's error code, or a timeout).
        reason: CreateFailure,
    },
    /// The output a sink writes is not served (a broken invariant of the job).
    #[error("the output cannot be read: {0}")]
    Output(#[from] crate::runtime::Unanswerable),
    /// A thread of the client could not start.
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a topic was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateFailure {
    /// The request took too long.
    #[error("timed out")]
    TimedOut,
    /// The admin client failed.
    #[error("{0}")]
    Client(rdkafka::error::KafkaError),
    /// The broker refused.
    #[error("{0}")]
    Refused(rdkafka::types::RDKafkaErrorCode),
}
