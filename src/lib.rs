//! tidemark: incremental stream computation as a service.
//!
//! ```text
//!  file ─┐                                  timely workers (runtime)
//!  HTTP ─┼─► ingest: parse ─► router ───────► ┌──────────────────────────────────┐
//!  gen  ─┘     │ (watermark, lateness,         │ job dataflow (pipeline, Rust)    │
//!              │  placement, stamps)            │  inputs ─► operators ─► outputs  │
//!              └─► dead letters (bad / late) ─► └───────────────┬──────────────────┘
//!                                                               │ consolidated changes
//!                    run (CLI) / serve  ◄── materialized outputs ◄┘ + frontiers
//! ```
//!
//! - [`pipeline`]: the API pipeline authors see (streams, windows, joins, top-k).
//! - [`runtime`]: timely workers, typed commands, output sinks.
//! - [`ingest`]: record framing, parsing, the event-time router, dead letters.
//! - [`source`]: where inputs' records come from (HTTP, files, the demo generator,
//!   Kafka), behind one trait, each with a position it can start again from.
//! - [`sink`]: where outputs go beyond HTTP (Kafka, exactly once in accumulation).
//! - [`kafka`]: Kafka specs, librdkafka clients and their errors.
//! - [`job`]: a dataflow with parameters running on the runtime, fed by routers; the
//!   jobs of a server, their sources and sinks, persisted and restored.
//! - [`replay`]: `tidemark run`, replaying files through a job.
//! - [`serve`]: the HTTP service (axum) and its defences (tokens, TLS, limits), which
//!   never touches timely types.
//! - [`checkpoint`]: checkpoints on disk: incremental, atomic, versioned.
//! - [`config`]: the server's configuration file.
//! - [`client`]: a client of a running server's API, for `tidemark jobs`.
//!
//! The compiled-in pipelines live in `dataflows/`, outside this crate, and use only
//! [`pipeline::prelude`]; the binary hands their [`pipeline::Registry`] to the library.

pub mod checkpoint;
pub mod client;
pub mod config;
pub mod ingest;
pub mod job;
pub mod kafka;
pub mod pipeline;
pub mod replay;
pub mod runtime;
pub mod serve;
pub mod sink;
pub mod source;
