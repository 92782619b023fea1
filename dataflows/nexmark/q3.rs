//! q3, local item suggestion: the sellers in Oregon, Idaho or California of the
//! auctions in category 10, a join over all time.

use tidemark::pipeline::prelude::*;

use super::{Event, NexmarkParams};

/// One row of `sellers`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SellerRow {
    name: Text,
    city: Text,
    state: Text,
    /// The auction's id.
    id: u64,
}

/// `nexmark_q3`.
pub struct Q3;

impl Pipeline for Q3 {
    type Params = NexmarkParams;

    fn description(&self) -> Description {
        Description::new("nexmark_q3", "Nexmark q3: sellers in OR, ID or CA of auctions in category 10")
            .input(InputDesc::of::<Event>("events"))
            .output(OutputDesc::new("sellers", &["id"]))
    }

    fn inputs(&self, params: &NexmarkParams) -> Inputs {
        Inputs::new().with("events", params.time().input(Lateness::Never))
    }

    fn build<'s>(&self, job: &mut Job<'s>, _params: &NexmarkParams) -> Result<(), BuildError> {
        let events = job.input::<Event>("events")?;
        let auctions = events
            .clone()
            .flat_map(|e| e.auction().filter(|a| a.category == 10).map(|a| (a.seller, a.id)))
            .collection();
        let people = events
            .flat_map(|e| {
                e.person()
                    .filter(|p| matches!(p.state.as_str(), "or" | "id" | "ca"))
                    .map(|p| (p.id, (p.name, p.city, p.state)))
            })
            .collection();
        let sellers = people.join(auctions).map(|(_, ((name, city, state), id))| SellerRow { name, city, state, id });
        job.output("sellers", sellers)
    }
}
