//! The compiled-in dataflows: this list is the registry.
//!
//! Every module here is user space: it uses only `tidemark::pipeline::prelude`, and
//! a pipeline of a user's is added the same way, by a module and a line below.

pub mod chaos;
pub mod components;
pub mod kmeans;
pub mod logreg;
pub mod nexmark;
pub mod orders;
pub mod trending;
pub mod window_agg;
pub mod word_count;

use tidemark::pipeline::Registry;

/// Every compiled-in dataflow.
pub fn registry() -> Registry {
    Registry::new()
        .with(window_agg::WindowAgg)
        .with(trending::Trending)
        .with(orders::Orders)
        .with(word_count::WordCount)
        .with(kmeans::KMeans)
        .with(logreg::LogReg)
        .with(components::Components)
        .with(chaos::Chaos)
        .with(nexmark::Q0)
        .with(nexmark::Q1)
        .with(nexmark::Q2)
        .with(nexmark::Q3)
        .with(nexmark::Q4)
        .with(nexmark::Q5)
        .with(nexmark::Q7)
        .with(nexmark::Q8)
        .with(nexmark::Q9)
}
