//! `orders` — paid revenue per category per window, and the orders still unpaid.
//!
//! - inputs `orders`: `{"order_id": string, "category": string, "amount": number, "ts": int}`;
//!   `payments`: `{"order_id": string, "ts": int}`.
//! - params: `window` (default `{"tumbling": {"size": 60000}}`), `payment_timeout` (ms,
//!   default 3600000: a payment counts for an order if it comes at most this long after
//!   it, and an order leaves `unpaid` once this has passed), `max_out_of_orderness`,
//!   `allowed_lateness`, `retention` and `emit` as in `window_agg`.
//! - output `revenue` (key `category`, `start`): `{"category", "start", "end", "orders",
//!   "revenue"}`: the orders paid in the window (by payment time) and their amount.
//! - output `unpaid` (key `order_id`): `{"order_id", "category", "amount", "ts"}`.
//!
//! Orders and payments are joined by an interval join on `order_id`
//! (`order.ts <= payment.ts <= order.ts + payment_timeout`). The join answers at once
//! and corrects itself: a payment shows in `revenue` as soon as its order is known, and
//! if the order arrives after its payment (the streams are out of order with each
//! other), the revenue row is corrected when it does. An order is in `unpaid` until its
//! payment arrives. A record is too late when `ts + allowed_lateness < W`.
//!
//! ```sh
//! tidemark run orders --input orders=orders.ndjson --input payments=payments.ndjson
//! curl 'http://127.0.0.1:8080/api/v1/jobs/orders/outputs/unpaid?order_id=o-17'
//! ```

use tidemark::pipeline::prelude::*;

/// An order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Order {
    /// Unique order id.
    pub order_id: String,
    /// Product category.
    pub category: String,
    /// Order amount.
    pub amount: Num,
    /// Event time, ms.
    pub ts: u64,
}

impl Record for Order {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("order_id", "string"), ("category", "string"), ("amount", "number"), ("ts", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// A payment of an order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Payment {
    /// The order paid.
    pub order_id: String,
    /// Event time, ms.
    pub ts: u64,
}

impl Record for Payment {
    const FIELDS: &'static [(&'static str, &'static str)] = &[("order_id", "string"), ("ts", "int")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of `orders`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OrdersParams {
    /// The revenue windows (by payment time).
    pub window: WindowKind,
    /// How long after an order its payment may come.
    pub payment_timeout: u64,
    /// Out-of-orderness, lateness, retention and emission.
    #[serde(flatten)]
    pub time: EventTime,
}

impl Default for OrdersParams {
    fn default() -> Self {
        OrdersParams {
            window: WindowKind::Tumbling { size: 60_000 },
            payment_timeout: 3_600_000,
            time: EventTime::default(),
        }
    }
}

impl Params for OrdersParams {
    fn validate(&self) -> Result<(), ParamError> {
        self.window.validate()?;
        check_duration("payment_timeout", self.payment_timeout)?;
        self.time.validate()
    }
}

/// One row of `revenue`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RevenueRow {
    category: String,
    start: u64,
    end: u64,
    orders: u64,
    revenue: Num,
}

/// The `orders` pipeline.
pub struct Orders;

impl Pipeline for Orders {
    type Params = OrdersParams;

    fn description(&self) -> Description {
        Description::new("orders", "paid revenue per category per window, and the orders not yet paid")
            .input(InputDesc::of::<Order>("orders"))
            .input(InputDesc::of::<Payment>("payments"))
            .output(OutputDesc::new("revenue", &["category", "start"]))
            .output(OutputDesc::new("unpaid", &["order_id"]))
    }

    fn inputs(&self, params: &OrdersParams) -> Inputs {
        let options = params.time.input(Lateness::After(params.time.allowed_lateness));
        Inputs::new().with("orders", options.clone()).with("payments", options)
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &OrdersParams) -> Result<(), BuildError> {
        let lateness = params.time.allowed_lateness;
        let orders = job.input::<Order>("orders")?;
        let payments = job.input::<Payment>("payments")?;
        let timeout = params.payment_timeout;

        let paid = orders.clone().interval_join(
            payments,
            "paid",
            (0, timeout as i64),
            lateness,
            |o| o.order_id.clone(),
            |o| o.ts,
            |p| p.order_id.clone(),
            |p| p.ts,
        )?;
        let windowing = params.time.windowing(params.window);
        let revenue = paid
            .clone()
            .window_aggregate(
                "revenue",
                &windowing,
                |(_, o, _)| o.category.clone(),
                |(_, _, p)| p.ts,
                |(_, o, _)| o.amount,
                Stats,
            )
            .map(|(category, w, s)| RevenueRow {
                category,
                start: w.start,
                end: w.end,
                orders: s.count,
                revenue: s.sum,
            });
        job.output("revenue", revenue)?;

        // Orders leave `unpaid` when paid, or when their payment can no longer come.
        let until = move |o: &Order| o.ts + timeout + lateness + 1;
        let paid_ids = paid.expire(move |(_, o, _)| until(o)).map(|(id, _, _)| id).distinct();
        let unpaid = orders.expire(until).map(|o| (o.order_id.clone(), o)).antijoin(paid_ids).map(|(_, o)| o);
        job.output("unpaid", unpaid)
    }
}
