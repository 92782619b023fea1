//! `components` — connected components of a graph whose edges come and go: a fixed
//! point computed incrementally, to show that loops are not specific to ML.
//!
//! - input `edges`: `{"src": string, "dst": string, "ts": int, "op": "add"|"remove"}`
//!   (`op` defaults to `add`). Edges are undirected; an edge is present while it has
//!   been added more times than removed. A self-loop `{"src": "a", "dst": "a"}` adds
//!   a node alone.
//! - params: `max_rounds` (default 1000: label propagation needs as many rounds as
//!   the longest shortest path in a component), plus `max_out_of_orderness`.
//! - output `components` (key `node`): `{"node", "component"}`, the component being
//!   its smallest node (string order); `sizes` (key `component`): `{"component",
//!   "size"}`; `dead_letter`.
//!
//! Each node starts labelled with itself; each round, every node takes the smallest
//! label among its own and its neighbours'. When an edge comes or goes, only the
//! labels it can change are recomputed: adding an edge between two components
//! relabels the one with the larger label; removing one that splits a component
//! relabels the part that lost its smallest node.
//!
//! ```sh
//! tidemark run components --input edges=edges.ndjson
//! ```

use tidemark::pipeline::prelude::*;

/// Whether an edge record adds or removes the edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The edge is added (once more).
    #[default]
    Add,
    /// The edge is removed (once).
    Remove,
}

/// One edge change.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// One end.
    pub src: Text,
    /// The other end.
    pub dst: Text,
    /// Event time, ms.
    pub ts: u64,
    /// Add or remove.
    #[serde(default)]
    pub op: Op,
}

impl Record for Edge {
    const FIELDS: &'static [(&'static str, &'static str)] =
        &[("src", "string"), ("dst", "string"), ("ts", "int"), ("op", "\"add\" or \"remove\" (optional)")];
    fn ts(&self) -> Time {
        self.ts
    }
}

/// The parameters of `components`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ComponentsParams {
    /// Most label-propagation rounds.
    pub max_rounds: u64,
    /// Out-of-orderness (nothing is ever too late: there are no windows).
    #[serde(flatten)]
    pub time: EventTime,
}

impl Default for ComponentsParams {
    fn default() -> Self {
        ComponentsParams { max_rounds: 1000, time: EventTime::default() }
    }
}

impl Params for ComponentsParams {
    fn validate(&self) -> Result<(), ParamError> {
        if !(1..=1_000_000).contains(&self.max_rounds) {
            return Err(ParamError::invalid(
                "max_rounds",
                format!("must be between 1 and 1000000, got {}", self.max_rounds),
            ));
        }
        self.time.validate()
    }
}

/// One row of `components`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ComponentRow {
    node: Text,
    component: Text,
}

/// One row of `sizes`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SizeRow {
    component: Text,
    size: u64,
}

/// The `components` pipeline.
pub struct Components;

impl Pipeline for Components {
    type Params = ComponentsParams;

    fn description(&self) -> Description {
        Description::new("components", "connected components of a graph whose edges are added and removed")
            .input(InputDesc::of::<Edge>("edges"))
            .output(OutputDesc::new("components", &["node"]))
            .output(OutputDesc::new("sizes", &["component"]))
    }

    fn inputs(&self, params: &ComponentsParams) -> Inputs {
        Inputs::new().with("edges", params.time.input(Lateness::Never))
    }

    fn build<'s>(&self, job: &mut Job<'s>, params: &ComponentsParams) -> Result<(), BuildError> {
        let stream = job.input::<Edge>("edges")?;
        // Each record adds or removes its edge; an edge is present while its count is
        // positive.
        let changes = stream.batched("edges").join_function(|e: Edge| {
            let diff = if e.op == Op::Add { 1 } else { -1 };
            [((e.src, e.dst), 0, diff)]
        });
        let present = changes.map(|edge| (edge, ())).reduce(|_, counts, out| {
            if counts[0].1 > 0 {
                out.push(((), 1));
            }
        });
        let edges = present.flat_map(|((a, b), ())| [(a.clone(), b.clone()), (b, a)]);
        let nodes = edges.clone().map(|(a, _)| a).distinct();

        let labels = iterate(nodes.map(|n| (n.clone(), n)), params.max_rounds, |lp, labels| {
            let edges = lp.enter(&edges);
            labels
                .clone()
                .join_map(edges, |_, label, neighbour| (neighbour.clone(), label.clone()))
                .concat(labels)
                .reduce(|_, labels, out| out.push((labels[0].0.clone(), 1)))
        });

        let sizes = labels
            .clone()
            .map(|(_, component)| component)
            .count()
            .map(|(component, size)| SizeRow { component, size: size as u64 });
        job.output("components", labels.map(|(node, component)| ComponentRow { node, component }))?;
        job.output("sizes", sizes)
    }
}
