//! `chaos` — a testing aid for failover: counts records per key, and panics on a
//! chosen key.
//!
//! - input `events`: `{"key": string, "ts": int, "value": number}` (as `window_agg`).
//! - params: `panic_on_key` (string, default `null`): the operator counting records
//!   panics on a record with this key; `panic_on_build` (bool, default `false`): the
//!   pipeline panics while it is built (a job created so is refused; a persisted job
//!   whose spec says so fails at every start); `max_out_of_orderness` as in
//!   `window_agg`.
//! - output `counts` (key `key`): `{"key", "count"}`, records per key.
//!
//! A poisoned record takes its job down, not the server: the job goes to
//! `restarting`, comes back from its last checkpoint (where the record, once
//! acknowledged, is still owed), fails again, and after 5 failures in a row stays
//! `failed` (API.md, "Durability and recovery"). Other jobs carry on.
//!
//! ```sh
//! curl -X POST localhost:8080/api/v1/jobs -H 'Content-Type: application/json' \
//!   -d '{"name": "c", "dataflow": "chaos", "params": {"panic_on_key": "boom"}}'
//! curl -X POST localhost:8080/api/v1/jobs/c/inputs/events -H 'Content-Type: application/json' \
//!   -d '[{"key": "boom", "ts": 1, "value": 1}]'
//! curl localhost:8080/api/v1/jobs/c    # "state": "restarting", "restarts": ...
//! ```

use tidemark::pipeline::prelude::*;

use super::window_agg::Event;

/// The parameters of `chaos`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChaosParams {
    /// The key whose records make the operator panic.
    pub panic_on_key: Option<String>,
    /// Whether building the pipeline panics.
    pub panic_on_build: bool,
    /// Out-of-orderness (nothing is ever too late: there are no windows).
    #[serde(flatten)]
    pub time: EventTime,
}

impl Params for ChaosParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.time.validate()
    }
}

/// One row of `counts`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CountRow {
    key: Text,
    count: u64,
}

/// The `chaos` pipeline.
pub struct Chaos;

impl Pipeline for Chaos {
    type Params = ChaosParams;

    fn description(&self) -> Description {
        Description::new("chaos", "records per key; panics on a chosen key (a testing aid for failover)")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("counts", &["key"]))
    }

    fn inputs(&self, params: &ChaosParams) -> Inputs {
        Inputs::new().with("events", params.time.input(Lateness::Never))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &ChaosParams) -> Result<(), BuildError> {
        if params.panic_on_build {
            panic!("chaos: panic_on_build");
        }
        let poison = params.panic_on_key.clone();
        let events = job.input::<Event>("events")?;
        let keys = events.collection().map(move |event: Event| {
            if poison.as_deref() == Some(event.key.as_str()) {
                panic!("chaos: a record with key `{}` (panic_on_key)", event.key.as_str());
            }
            event.key
        });
        let counts = keys.count().map(|(key, count)| CountRow { key, count: count as u64 });
        job.output("counts", counts)
    }
}
