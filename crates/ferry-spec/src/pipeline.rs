//! The validated pipeline: what the rest of ferry works with. Every value
//! here has been checked; nothing downstream re-validates it.

use ferry_core::{ModelName, StageName};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The pipeline's name: `name:` or the project folder's name.
    pub name: String,
    /// The params file, relative to the project root.
    pub params_file: String,
    /// Every value of the params file, for gates (`params.model.C`).
    pub params: serde_json::Value,
    pub env: Option<PythonEnv>,
    /// In a topological order: every stage comes after the stages it needs.
    pub stages: Vec<Stage>,
    pub gates: Vec<Gate>,
    pub register: Option<Register>,
    /// Where the cache and run cache are shared (`remotes:`), in file order.
    pub remotes: Vec<crate::RemoteConfig>,
    /// How restores put cached files into the work tree (`cache.link`).
    pub link: ferry_core::LinkMode,
    /// The machine class stages run on and the prices (`cost:`).
    pub cost: crate::CostConfig,
    /// The workspace (team) whose pipeline this is: what its costs are
    /// counted against (`workspace:`, `default` without).
    pub workspace: String,
    /// The checks run on the served model (`monitor:`).
    pub monitor: Option<crate::Monitor>,
    /// What starts the pipeline besides a person (`on:`).
    pub triggers: Option<crate::Triggers>,
    /// How a triggered run's candidate is rolled out (`deploy:`).
    pub deploy: Option<crate::DeployPolicy>,
    /// What runs stage commands unless `ferry run --executor` says
    /// otherwise (`executor:`).
    pub executor: crate::ExecutorKind,
    /// How stages run as Kubernetes Jobs (`kubernetes:`).
    pub kubernetes: Option<crate::Kubernetes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonEnv {
    /// The requirements file, relative to the project root.
    pub requirements: String,
    /// The interpreter to build the environment from (`python3`).
    pub python: String,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: StageName,
    pub desc: Option<String>,
    /// The command with every `${param}` replaced by its value.
    pub cmd: String,
    /// Files and directories the stage reads, relative to the project root.
    pub deps: Vec<String>,
    /// Files and directories the stage writes (the metrics file among them).
    pub outs: Vec<String>,
    /// The params the stage uses, by dotted key, with their values.
    pub params: BTreeMap<String, serde_json::Value>,
    /// A JSON file of metrics the stage writes (also one of `outs`).
    pub metrics: Option<String>,
    pub timeout: Option<Duration>,
    pub retries: u32,
    /// What it asks for (`resources:`): charged on it, as a cluster bills.
    pub resources: Option<ferry_cost::Requested>,
    /// The most it may cost, in US dollars (`max_cost:`): stopped there.
    pub max_cost: Option<f64>,
    /// Where its pod goes and what it runs, as a Kubernetes Job
    /// (`kubernetes:`), over the pipeline's.
    pub placement: Option<crate::Placement>,
    /// Stages whose outputs this stage reads.
    pub upstream: Vec<StageName>,
    /// A built-in data check run by ferry itself (then `cmd` is a canonical
    /// description of it, which the fingerprint covers).
    pub check: Option<Check>,
}

/// A built-in check stage: `check: data` or `check: drift`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub kind: CheckKind,
    /// The JSON report the stage writes (an out), `reports/<stage>.json` by default.
    pub report: String,
    /// An HTML report to write too (an out).
    pub html: Option<String>,
    /// A failed check warns instead of failing the run.
    pub warn_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// Validate `data` against the suite `expect`.
    Data { data: String, expect: String },
    /// Compare `current` with `reference`.
    Drift {
        reference: String,
        current: String,
        method: Option<String>,
        threshold: Option<f64>,
        /// Per-column thresholds (`threshold: {f00: 0.2}`).
        thresholds: Vec<(String, f64)>,
        drift_share: f64,
        columns: Vec<String>,
    },
}

/// Drift methods a `check: drift` stage may name.
pub const DRIFT_METHODS: &[&str] = &[
    "ks",
    "chisquare",
    "z",
    "wasserstein",
    "jensenshannon",
    "psi",
    "domain_classifier",
];

#[derive(Debug, Clone)]
pub struct Gate {
    /// A name for output: `name:` or the expression itself.
    pub name: String,
    pub source: String,
    pub expr: ferry_gates::Expr,
}

#[derive(Debug, Clone)]
pub struct Register {
    pub model: ModelName,
    /// An out (or a path inside an out) of `producer`.
    pub artifact: String,
    pub alias: Option<String>,
    pub producer: StageName,
    /// The columns the model takes, recorded in the version's `MLmodel` and
    /// enforced by `ferry serve` (requests matched to them by name).
    pub signature: Option<SignatureSpec>,
}

/// Where a registered model's signature comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureSpec {
    /// Declared column by column.
    Columns(ferry_mlmodel::Signature),
    /// The columns (and types) of a table of the project, less `exclude`
    /// (e.g. the label), read when the version is registered.
    From { table: String, exclude: Vec<String> },
}

impl Pipeline {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.as_str() == name)
    }

    /// The stages `targets` need (themselves and everything upstream), in
    /// topological order. Empty `targets` means every stage.
    pub fn closure(&self, targets: &[StageName]) -> Vec<&Stage> {
        if targets.is_empty() {
            return self.stages.iter().collect();
        }
        let mut want: std::collections::BTreeSet<&str> =
            targets.iter().map(StageName::as_str).collect();
        for s in self.stages.iter().rev() {
            if want.contains(s.name.as_str()) {
                want.extend(s.upstream.iter().map(StageName::as_str));
            }
        }
        self.stages
            .iter()
            .filter(|s| want.contains(s.name.as_str()))
            .collect()
    }

    /// The stages downstream of `stage` (not including it).
    pub fn downstream(&self, stage: &str) -> Vec<&Stage> {
        let mut hit: std::collections::BTreeSet<&str> = [stage].into();
        let mut out = Vec::new();
        for s in &self.stages {
            if s.upstream.iter().any(|u| hit.contains(u.as_str())) {
                hit.insert(s.name.as_str());
                out.push(s);
            }
        }
        out
    }
}

/// True when `inner` is `outer` or lies inside the directory `outer`.
pub fn path_within(inner: &str, outer: &str) -> bool {
    inner == outer
        || (inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'/')
}
