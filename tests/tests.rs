//! Integration tests: one binary, one module per concern.
//!
//! The compiled-in dataflows are included from `dataflows/` exactly as the binary
//! includes them, through the public pipeline API only.

#[path = "../dataflows/registry.rs"]
#[allow(dead_code)]
mod dataflows;
mod golden;
mod harness;
mod operators;
