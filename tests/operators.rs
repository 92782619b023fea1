//! Reference tests of the stream operators, through test pipelines built on the public API.
