//! Parsing records into an input's typed batches.
//!
//! The router does not know record types; an input's [`Codec`] (made from its
//! [`Record`] type by [`codec_for`]) parses each record into a staging slot and, once
//! the router has placed it, moves it into the batch for its worker. Batches cross to
//! the workers as one `Box<dyn Any>` per worker, downcast there by the typed input.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use super::{Diff, MAX_TS, Record, RecordError, Time};

/// Makes typed batches for one input.
pub(crate) trait Codec: Send + Sync {
    /// A builder of batches for `workers` workers, for about `records` records.
    fn batch(&self, workers: usize, records: usize) -> Box<dyn BatchBuilder>;
}

/// One batch per worker, filled record by record.
pub(crate) trait BatchBuilder: Send {
    /// Parses and validates one record; on success it is staged and its event time
    /// returned. `shape` is the input's record shape (see [`Record::shape`]): fixed by
    /// the first valid record, checked for every other.
    fn parse(&mut self, text: &[u8], shape: &mut Option<usize>) -> Result<Time, RecordError>;
    /// Moves the staged record into `worker`'s batch at `time`, stamped `stamp`.
    fn commit(&mut self, worker: usize, time: Time, stamp: Time);
    /// The batches (`None` for workers that got nothing).
    fn finish(self: Box<Self>) -> Vec<Option<Box<dyn Any + Send>>>;
}

/// The updates a typed input receives: `((record, stamp), time, diff)`.
pub(crate) type Updates<R> = Vec<((R, Time), Time, Diff)>;

struct TypedCodec<R>(PhantomData<fn() -> R>);

pub(crate) fn codec_for<R: Record>() -> Arc<dyn Codec> {
    Arc::new(TypedCodec::<R>(PhantomData))
}

impl<R: Record> Codec for TypedCodec<R> {
    fn batch(&self, workers: usize, records: usize) -> Box<dyn BatchBuilder> {
        let each = records.div_ceil(workers.max(1));
        Box::new(TypedBatch::<R> { staged: None, batches: (0..workers).map(|_| Vec::with_capacity(each)).collect() })
    }
}

struct TypedBatch<R> {
    staged: Option<R>,
    batches: Vec<Updates<R>>,
}

impl<R: Record> BatchBuilder for TypedBatch<R> {
    fn parse(&mut self, text: &[u8], shape: &mut Option<usize>) -> Result<Time, RecordError> {
        let record: R = serde_json::from_slice(text).map_err(|e| RecordError::new(e.to_string()))?;
        let ts = record.ts();
        if ts > MAX_TS {
            return Err(RecordError::new(format!("ts {ts} is out of range (at most {MAX_TS})")));
        }
        record.validate()?;
        if let Some((field, size)) = record.shape() {
            match *shape {
                Some(expected) if expected != size => {
                    return Err(RecordError::new(format!(
                        "`{field}` has {size} values; this input's records have {expected}"
                    )));
                }
                _ => *shape = Some(size),
            }
        }
        self.staged = Some(record);
        Ok(ts)
    }

    fn commit(&mut self, worker: usize, time: Time, stamp: Time) {
        if let Some(record) = self.staged.take() {
            self.batches[worker].push(((record, stamp), time, 1));
        }
    }

    fn finish(self: Box<Self>) -> Vec<Option<Box<dyn Any + Send>>> {
        self.batches.into_iter().map(|b| (!b.is_empty()).then(|| Box::new(b) as Box<dyn Any + Send>)).collect()
    }
}
