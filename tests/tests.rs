//! Integration tests: one binary, one module per concern.
//!
//! The compiled-in dataflows are included from `dataflows/` exactly as the binary
//! includes them, through the public pipeline API only.

mod checkpoints;
mod cli;
mod components_reference;
#[path = "../dataflows/registry.rs"]
#[allow(dead_code)]
mod dataflows;
mod durability;
mod failover;
// The bodies of the fuzz targets of fuzz/, and the replay of their seeds and regressions.
mod fuzz_targets;
mod golden;
mod http_api;
mod jobs;
mod kafka;
mod kmeans_reference;
mod layers;
mod lifecycle;
mod logreg_reference;
// Shared by the test modules; not every helper is used by every module.
#[allow(dead_code)]
mod harness;
mod http_streams;
mod operators;
mod security;
#[allow(dead_code)]
mod service;
mod window_agg_reference;
