//! The compiled-in dataflows: this list is the registry.
//!
//! Every module here is user space: it uses only `tidemark::pipeline::prelude`, and
//! a pipeline of a user's is added the same way, by a module and a line below.

pub mod window_agg;

use tidemark::pipeline::Registry;

/// Every compiled-in dataflow.
pub fn registry() -> Registry {
    Registry::new().with(window_agg::WindowAgg)
}
