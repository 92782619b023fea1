//! Top-k per group.

use super::{Collection, Data};

/// The `k` greatest values of each group, as `(group, rank, value)` with rank 1 the
/// greatest; ties are broken by the values' full order, so the result is
/// deterministic. A value with multiplicity n takes n ranks. Incremental: a change
/// to a group re-ranks only that group.
///
/// Order by a score first to rank by it, e.g. `(views, product)` for the most viewed.
pub fn top_k<'s, G: Data, V: Data>(input: Collection<'s, (G, V)>, k: usize) -> Collection<'s, (G, u32, V)> {
    input
        .reduce_named("TopK", move |_group, values: &[(&V, isize)], out: &mut Vec<((u32, V), isize)>| {
            let ranked = values.iter().rev().flat_map(|(v, n)| std::iter::repeat_n(*v, (*n).max(0) as usize));
            for (rank, v) in ranked.take(k).enumerate() {
                out.push(((rank as u32 + 1, v.clone()), 1));
            }
        })
        .map(|(g, (rank, v))| (g, rank, v))
}
