//! q8, monitor new users: the people who opened an auction in the 10 s tumbling
//! window they registered in.

use tidemark::pipeline::prelude::*;

use super::{Event, NexmarkParams, WINDOW};

/// One row of `new_users`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NewUserRow {
    id: u64,
    name: Text,
    start: u64,
}

/// `nexmark_q8`.
pub struct Q8;

impl Pipeline for Q8 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        Description::new("nexmark_q8", "Nexmark q8: people who opened an auction in the window they registered in")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("new_users", &["id", "start"]))
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        let windowing = params.time().windowing(WindowKind::Tumbling { size: WINDOW });
        Inputs::new().with("events", params.time().input(windowing.lateness()))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &NexmarkParams) -> Result<(), BuildError> {
        let windowing = params.time().windowing(WindowKind::Tumbling { size: WINDOW });
        let events = job.input::<Event>("events")?;
        let people = events.clone().flat_map(Event::person);
        let auctions = events.flat_map(Event::auction);
        let pairs = people.window_join(
            auctions,
            "people and their auctions",
            &windowing,
            |p| p.id,
            |p| p.date_time,
            |a| a.seller,
            |a| a.date_time,
        );
        let rows = pairs.map(|(id, w, p, _)| NewUserRow { id, name: p.name, start: w.start }).collection().distinct();
        job.output("new_users", rows)
    }
}
