//! When files last changed, as far as their metadata tells: the tokens file and the
//! TLS certificate are read again when their stamp moves.

use std::path::Path;
use std::time::SystemTime;

/// The modification time and length of each of a set of files (`None`: unreadable).
pub(super) type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The stamp of `paths`, in order.
pub(super) fn stamp(paths: &[&Path]) -> Stamp {
    paths
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}
