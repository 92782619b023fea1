//! The Nexmark event stream: people, auctions and bids, one input of events.

use tidemark::pipeline::prelude::*;

/// One Nexmark event, as a line `{"person": {...}}`, `{"auction": {...}}` or
/// `{"bid": {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// A new person.
    Person(Person),
    /// A new auction.
    Auction(Auction),
    /// A bid on an auction.
    Bid(Bid),
}

impl Record for Event {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("person", "object (one of the three)"), ("auction", "object"), ("bid", "object")];
    fn ts(&self) -> Time {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

impl Event {
    /// The bid, if this is one.
    pub fn bid(self) -> Option<Bid> {
        if let Event::Bid(b) = self { Some(b) } else { None }
    }

    /// The auction, if this is one.
    pub fn auction(self) -> Option<Auction> {
        if let Event::Auction(a) = self { Some(a) } else { None }
    }

    /// The person, if this is one.
    pub fn person(self) -> Option<Person> {
        if let Event::Person(p) = self { Some(p) } else { None }
    }
}

/// A person who sells or bids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Person {
    /// Unique id.
    pub id: u64,
    /// Full name.
    pub name: Text,
    /// Email address.
    pub email_address: Text,
    /// Credit card number.
    pub credit_card: Text,
    /// US city.
    pub city: Text,
    /// US state, two lowercase letters.
    pub state: Text,
    /// Event time, ms.
    pub date_time: u64,
    /// Padding.
    pub extra: Text,
}

/// An item under auction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Auction {
    /// Unique id.
    pub id: u64,
    /// Item name.
    pub item_name: Text,
    /// Item description.
    pub description: Text,
    /// Initial bid, cents.
    pub initial_bid: u64,
    /// Reserve price, cents.
    pub reserve: u64,
    /// Event time, ms.
    pub date_time: u64,
    /// When the auction closes, ms.
    pub expires: u64,
    /// The selling person's id.
    pub seller: u64,
    /// Category id.
    pub category: u64,
    /// Padding.
    pub extra: Text,
}

/// A bid on an auction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: u64,
    /// The bidding person's id.
    pub bidder: u64,
    /// Price, cents.
    pub price: u64,
    /// Channel the bid came through.
    pub channel: Text,
    /// URL of the bid.
    pub url: Text,
    /// Event time, ms.
    pub date_time: u64,
    /// Padding.
    pub extra: Text,
}
