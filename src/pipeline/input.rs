//! A job's inputs: how the ingest router treats each ([`InputOptions`], [`Inputs`]),
//! and the worker side of an input, which the runtime drives ([`WorkerInput`]).

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use differential_dataflow::AsCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Input as _;
use timely::dataflow::{InputHandle, Scope};

use super::clock::{Clock, ClockLog};
use super::codec::Updates;
use super::{Data, Lateness, Stream, Time, TimeMode};

/// How the ingest router treats an input: its watermark and lateness rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputOptions {
    /// The watermark trails the largest event time seen by this much.
    pub max_out_of_orderness: Time,
    /// When a record is too late to change anything (it is dead-lettered).
    pub lateness: Lateness,
}

/// The options of a job's inputs, by name: what [`Pipeline::inputs`](super::Pipeline::inputs)
/// returns. An input it does not name gets [`InputOptions::default`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    options: Vec<(String, InputOptions)>,
}

impl Inputs {
    /// No options yet.
    pub fn new() -> Inputs {
        Inputs::default()
    }

    /// The input `name` is judged by `options`.
    pub fn with(mut self, name: &str, options: InputOptions) -> Inputs {
        self.options.retain(|(n, _)| n != name);
        self.options.push((name.to_string(), options));
        self
    }

    /// The options of the input `name`.
    pub fn options(&self, name: &str) -> InputOptions {
        self.options.iter().find(|(n, _)| n == name).map(|(_, o)| o.clone()).unwrap_or_default()
    }

    /// The names given options.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.options.iter().map(|(n, _)| n.as_str())
    }
}

/// An input of an installed job on one worker, as the worker loop drives it.
pub(crate) trait WorkerInput {
    /// Sends a batch of updates (a `Box<Updates<D>>` for the input's type).
    fn push(&mut self, batch: Box<dyn Any + Send>);
    /// Logs the watermark, then advances the input's frontier.
    fn advance(&mut self, frontier: Time, watermark: Time);
}

/// The typed input behind [`WorkerInput`].
struct TypedInput<D: Data> {
    handle: InputHandle<Time, CapacityContainerBuilder<Updates<D>>>,
    log: Rc<RefCell<ClockLog>>,
}

impl<D: Data> WorkerInput for TypedInput<D> {
    fn push(&mut self, batch: Box<dyn Any + Send>) {
        match batch.downcast::<Updates<D>>() {
            Ok(mut updates) => self.handle.send_batch(&mut updates),
            // Batches come from this input's own codec: another type is a broken invariant.
            Err(_) => panic!("batch of the wrong type for input of {}", std::any::type_name::<D>()),
        }
    }

    fn advance(&mut self, frontier: Time, watermark: Time) {
        if frontier > *self.handle.time() {
            self.log.borrow_mut().append(frontier, watermark);
            self.handle.advance_to(frontier);
        }
    }
}

/// A timely input of stamped records, with its watermark log.
pub(crate) fn new_input<'s, D: Data>(scope: Scope<'s, Time>, mode: TimeMode) -> (Box<dyn WorkerInput>, Stream<'s, D>) {
    let mut handle = InputHandle::new();
    let inner = scope.input_from(&mut handle).as_collection();
    let log = Rc::new(RefCell::new(ClockLog::default()));
    let input = TypedInput::<D> { handle, log: log.clone() };
    (Box::new(input), Stream { inner, clock: Clock::of(log), mode })
}
