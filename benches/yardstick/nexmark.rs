//! The hand-written, single-thread yardstick for the Nexmark queries (the "COST"
//! baseline of `scripts/bench.sh --nexmark`; see BENCHMARKS.md).
//!
//! ```text
//! yardstick_nexmark QUERY EVENTS.ndjson      # QUERY: q0 q1 q2 q3 q4 q5 q7 q8 q9
//! ```
//!
//! It does the work `tidemark run nexmark_QUERY` does, and nothing more: parse each
//! line (strings borrowed from it), keep the least state the query needs in hash
//! maps, and print the rows as `{"output":NAME,"row":{...}}` like `tidemark run`.
//! Windows follow tidemark's rules with `max_out_of_orderness` and `allowed_lateness`
//! 0: the watermark W is the largest event time before an event, an event joins its
//! windows with `end > W`, and a window is final (its rows printed, its state
//! dropped) once `W >= end`. At the end of the input W is one past the largest event
//! time, as `tidemark run` advances it: windows that are still open then have no rows
//! (the queries emit a window when it closes). q4 and q9 keep every auction with its
//! best valid bid so far (and the bids on auctions not seen yet), and print at the
//! end. Counts go to stderr.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Event<'a> {
    Person(#[serde(borrow)] Person<'a>),
    Auction(#[serde(borrow)] Auction<'a>),
    Bid(#[serde(borrow)] Bid<'a>),
}

#[derive(Deserialize)]
#[allow(dead_code)] // Parsed as tidemark parses them, even where a query reads none.
struct Person<'a> {
    id: u64,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    email_address: Cow<'a, str>,
    #[serde(borrow)]
    credit_card: Cow<'a, str>,
    #[serde(borrow)]
    city: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    date_time: u64,
    #[serde(borrow)]
    extra: Cow<'a, str>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Auction<'a> {
    id: u64,
    #[serde(borrow)]
    item_name: Cow<'a, str>,
    #[serde(borrow)]
    description: Cow<'a, str>,
    initial_bid: u64,
    reserve: u64,
    date_time: u64,
    expires: u64,
    seller: u64,
    category: u64,
    #[serde(borrow)]
    extra: Cow<'a, str>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Bid<'a> {
    auction: u64,
    bidder: u64,
    price: u64,
    #[serde(borrow)]
    channel: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    date_time: u64,
    #[serde(borrow)]
    extra: Cow<'a, str>,
}

#[derive(Serialize)]
struct Line<'a, R: Serialize> {
    output: &'a str,
    row: R,
}

/// Prints one row of `output`.
fn print<R: Serialize>(out: &mut dyn Write, output: &str, row: R) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &Line { output, row })?;
    out.write_all(b"\n")
}

const WINDOW: u64 = 10_000;
const SLIDE: u64 = 2_000;

/// A query: fed every event with the watermark before it, then finished.
trait Query {
    fn event(&mut self, event: Event<'_>, watermark: u64, out: &mut dyn Write) -> io::Result<()>;
    fn finish(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()>;
}

/// q0, q1 and q2: a row per (selected) bid.
struct Stateless(&'static str);

impl Query for Stateless {
    fn event(&mut self, event: Event<'_>, _: u64, out: &mut dyn Write) -> io::Result<()> {
        let Event::Bid(b) = event else { return Ok(()) };
        #[derive(Serialize)]
        struct BidRow<'a, P> {
            auction: u64,
            bidder: u64,
            price: P,
            date_time: u64,
            extra: &'a str,
        }
        match self.0 {
            "q0" => {
                let row = BidRow {
                    auction: b.auction,
                    bidder: b.bidder,
                    price: b.price,
                    date_time: b.date_time,
                    extra: &b.extra,
                };
                print(out, "bids", row)
            }
            "q1" => {
                let price = 0.908 * b.price as f64;
                let row =
                    BidRow { auction: b.auction, bidder: b.bidder, price, date_time: b.date_time, extra: &b.extra };
                print(out, "bids", row)
            }
            _ if b.auction % 123 == 0 => {
                #[derive(Serialize)]
                struct PriceRow {
                    auction: u64,
                    price: u64,
                }
                print(out, "bids", PriceRow { auction: b.auction, price: b.price })
            }
            _ => Ok(()),
        }
    }

    fn finish(&mut self, _: u64, _: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Serialize)]
struct SellerRow<'a> {
    name: &'a str,
    city: &'a str,
    state: &'a str,
    id: u64,
}

/// q3: the people of OR, ID and CA, and the category-10 auctions of sellers not seen
/// (yet), forever.
#[derive(Default)]
struct Q3 {
    people: HashMap<u64, (String, String, String)>,
    auctions: HashMap<u64, Vec<u64>>,
}

impl Query for Q3 {
    fn event(&mut self, event: Event<'_>, _: u64, out: &mut dyn Write) -> io::Result<()> {
        match event {
            Event::Person(p) if matches!(&*p.state, "or" | "id" | "ca") => {
                for &id in self.auctions.get(&p.id).into_iter().flatten() {
                    print(out, "sellers", SellerRow { name: &p.name, city: &p.city, state: &p.state, id })?;
                }
                self.people.insert(p.id, (p.name.into_owned(), p.city.into_owned(), p.state.into_owned()));
            }
            Event::Auction(a) if a.category == 10 => {
                if let Some((name, city, state)) = self.people.get(&a.seller) {
                    print(out, "sellers", SellerRow { name, city, state, id: a.id })?;
                }
                self.auctions.entry(a.seller).or_default().push(a.id);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(&mut self, _: u64, _: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

/// q5: bid counts per auction for each open sliding window.
#[derive(Default)]
struct Q5 {
    windows: BTreeMap<u64, HashMap<u64, u64>>,
}

impl Q5 {
    fn close(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() + WINDOW > watermark {
                break;
            }
            let (start, counts) = entry.remove_entry();
            let max = counts.values().copied().max().unwrap_or(0);
            #[derive(Serialize)]
            struct HotRow {
                start: u64,
                end: u64,
                auction: u64,
                num: u64,
            }
            for (&auction, &num) in &counts {
                if num == max {
                    print(out, "hot", HotRow { start, end: start + WINDOW, auction, num })?;
                }
            }
        }
        Ok(())
    }
}

impl Query for Q5 {
    fn event(&mut self, event: Event<'_>, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        self.close(watermark, out)?;
        let Event::Bid(b) = event else { return Ok(()) };
        let last = b.date_time - b.date_time % SLIDE;
        let mut start = last.saturating_sub(WINDOW - SLIDE);
        while start <= last {
            if start + WINDOW > watermark {
                *self.windows.entry(start).or_default().entry(b.auction).or_default() += 1;
            }
            start += SLIDE;
        }
        Ok(())
    }

    fn finish(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        self.close(watermark, out)
    }
}

#[derive(Serialize)]
struct HighestRow {
    start: u64,
    end: u64,
    auction: u64,
    price: u64,
    bidder: u64,
    date_time: u64,
    extra: String,
}

/// q7: per open tumbling window, the highest price and its bids.
#[derive(Default)]
struct Q7 {
    windows: BTreeMap<u64, (u64, Vec<HighestRow>)>,
}

impl Q7 {
    fn close(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() + WINDOW > watermark {
                break;
            }
            for row in entry.remove().1 {
                print(out, "highest", row)?;
            }
        }
        Ok(())
    }
}

impl Query for Q7 {
    fn event(&mut self, event: Event<'_>, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        self.close(watermark, out)?;
        let Event::Bid(b) = event else { return Ok(()) };
        let start = b.date_time - b.date_time % WINDOW;
        if start + WINDOW <= watermark {
            return Ok(());
        }
        let (max, rows) = self.windows.entry(start).or_insert((0, Vec::new()));
        if b.price < *max {
            return Ok(());
        }
        if b.price > *max || rows.is_empty() {
            *max = b.price;
            rows.clear();
        }
        rows.push(HighestRow {
            start,
            end: start + WINDOW,
            auction: b.auction,
            price: b.price,
            bidder: b.bidder,
            date_time: b.date_time,
            extra: b.extra.into_owned(),
        });
        Ok(())
    }

    fn finish(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        self.close(watermark, out)
    }
}

/// q8: per open tumbling window, its new people and the sellers of its auctions.
#[derive(Default)]
struct Q8 {
    windows: BTreeMap<u64, (HashMap<u64, String>, HashSet<u64>)>,
}

impl Q8 {
    fn close(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() + WINDOW > watermark {
                break;
            }
            let (start, (people, sellers)) = entry.remove_entry();
            #[derive(Serialize)]
            struct NewUserRow<'a> {
                id: u64,
                name: &'a str,
                start: u64,
            }
            for id in sellers {
                if let Some(name) = people.get(&id) {
                    print(out, "new_users", NewUserRow { id, name, start })?;
                }
            }
        }
        Ok(())
    }
}

impl Query for Q8 {
    fn event(&mut self, event: Event<'_>, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        self.close(watermark, out)?;
        let ts = match &event {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(_) => return Ok(()),
        };
        let start = ts - ts % WINDOW;
        if start + WINDOW <= watermark {
            return Ok(());
        }
        let (people, sellers) = self.windows.entry(start).or_default();
        match event {
            Event::Person(p) => {
                people.insert(p.id, p.name.into_owned());
            }
            Event::Auction(a) => {
                sellers.insert(a.seller);
            }
            Event::Bid(_) => {}
        }
        Ok(())
    }

    fn finish(&mut self, watermark: u64, out: &mut dyn Write) -> io::Result<()> {
        self.close(watermark, out)
    }
}

/// An auction as q4 and q9 keep it, with its best bid so far.
struct Open {
    id: u64,
    item_name: String,
    description: String,
    initial_bid: u64,
    reserve: u64,
    date_time: u64,
    expires: u64,
    seller: u64,
    category: u64,
    extra: String,
    best: Option<WinningBid>,
}

/// A bid as q4 and q9 keep it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct WinningBid {
    /// The order bids win in: highest price, earliest, then the rest of the bid.
    rank: (std::cmp::Reverse<u64>, u64, u64, String, String, String),
}

impl WinningBid {
    fn of(b: &Bid<'_>) -> WinningBid {
        let rank = (
            std::cmp::Reverse(b.price),
            b.date_time,
            b.bidder,
            b.channel.to_string(),
            b.url.to_string(),
            b.extra.to_string(),
        );
        WinningBid { rank }
    }
}

/// q9 (and q4 from it): the auctions with their best valid bid, and the bids on
/// auctions not seen yet.
#[derive(Default)]
struct Winning {
    q4: bool,
    auctions: HashMap<u64, Open>,
    early: HashMap<u64, Vec<(u64, WinningBid)>>,
}

impl Open {
    fn offer(&mut self, date_time: u64, bid: WinningBid) {
        if (self.date_time..=self.expires).contains(&date_time) && self.best.as_ref().is_none_or(|best| bid < *best) {
            self.best = Some(bid);
        }
    }
}

impl Query for Winning {
    fn event(&mut self, event: Event<'_>, _: u64, _: &mut dyn Write) -> io::Result<()> {
        match event {
            Event::Auction(a) => {
                let mut open = Open {
                    id: a.id,
                    item_name: a.item_name.into_owned(),
                    description: a.description.into_owned(),
                    initial_bid: a.initial_bid,
                    reserve: a.reserve,
                    date_time: a.date_time,
                    expires: a.expires,
                    seller: a.seller,
                    category: a.category,
                    extra: a.extra.into_owned(),
                    best: None,
                };
                for (date_time, bid) in self.early.remove(&a.id).into_iter().flatten() {
                    open.offer(date_time, bid);
                }
                self.auctions.insert(a.id, open);
            }
            Event::Bid(b) => match self.auctions.get_mut(&b.auction) {
                Some(open) => {
                    if (open.date_time..=open.expires).contains(&b.date_time) {
                        open.offer(b.date_time, WinningBid::of(&b));
                    }
                }
                None => self.early.entry(b.auction).or_default().push((b.date_time, WinningBid::of(&b))),
            },
            Event::Person(_) => {}
        }
        Ok(())
    }

    fn finish(&mut self, _: u64, out: &mut dyn Write) -> io::Result<()> {
        if self.q4 {
            let mut categories: BTreeMap<u64, (u128, u64)> = BTreeMap::new();
            for open in self.auctions.values() {
                if let Some(best) = &open.best {
                    let c = categories.entry(open.category).or_default();
                    *c = (c.0 + best.rank.0.0 as u128, c.1 + 1);
                }
            }
            #[derive(Serialize)]
            struct CategoryRow {
                category: u64,
                avg: f64,
            }
            for (category, (sum, count)) in categories {
                print(out, "categories", CategoryRow { category, avg: sum as f64 / count as f64 })?;
            }
            return Ok(());
        }
        #[derive(Serialize)]
        struct WinnerRow<'a> {
            id: u64,
            item_name: &'a str,
            description: &'a str,
            initial_bid: u64,
            reserve: u64,
            date_time: u64,
            expires: u64,
            seller: u64,
            category: u64,
            extra: &'a str,
            auction: u64,
            bidder: u64,
            price: u64,
            bid_date_time: u64,
            bid_extra: &'a str,
        }
        for a in self.auctions.values() {
            let Some(best) = &a.best else { continue };
            let (std::cmp::Reverse(price), bid_date_time, bidder, _, _, bid_extra) = &best.rank;
            let row = WinnerRow {
                id: a.id,
                item_name: &a.item_name,
                description: &a.description,
                initial_bid: a.initial_bid,
                reserve: a.reserve,
                date_time: a.date_time,
                expires: a.expires,
                seller: a.seller,
                category: a.category,
                extra: &a.extra,
                auction: a.id,
                bidder: *bidder,
                price: *price,
                bid_date_time: *bid_date_time,
                bid_extra,
            };
            print(out, "winners", row)?;
        }
        Ok(())
    }
}

fn run(query: &mut dyn Query, path: &str) -> io::Result<(u64, u64)> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let (mut events, mut invalid) = (0u64, 0u64);
    let mut max_ts: Option<u64> = None;
    for line in reader.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(event) = serde_json::from_str::<Event>(&line) else {
            invalid += 1;
            continue;
        };
        let ts = match &event {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        };
        query.event(event, max_ts.unwrap_or(0), &mut out)?;
        max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
        events += 1;
    }
    query.finish(max_ts.map_or(0, |m| m + 1), &mut out)?;
    out.flush()?;
    Ok((events, invalid))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [query, path] = args.as_slice() else {
        eprintln!("usage: yardstick_nexmark QUERY EVENTS.ndjson   (QUERY: q0 q1 q2 q3 q4 q5 q7 q8 q9)");
        return ExitCode::from(2);
    };
    let mut query: Box<dyn Query> = match query.as_str() {
        "q0" => Box::new(Stateless("q0")),
        "q1" => Box::new(Stateless("q1")),
        "q2" => Box::new(Stateless("q2")),
        "q3" => Box::<Q3>::default(),
        "q4" => Box::new(Winning { q4: true, ..Winning::default() }),
        "q9" => Box::<Winning>::default(),
        "q5" => Box::<Q5>::default(),
        "q7" => Box::<Q7>::default(),
        "q8" => Box::<Q8>::default(),
        other => {
            eprintln!("yardstick_nexmark: unknown query {other}");
            return ExitCode::from(2);
        }
    };
    match run(&mut *query, path) {
        Ok((events, invalid)) => {
            eprintln!("events {events}, invalid {invalid}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("yardstick_nexmark: {e}");
            ExitCode::FAILURE
        }
    }
}
