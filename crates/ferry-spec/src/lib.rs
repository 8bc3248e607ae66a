//! ferry.yaml and params.yaml: parse, validate, and report every error at once.
//!
//! Two phases, as in vector's config compiler: [`node`] turns YAML into a tree
//! that remembers positions (serde-saphyr does the YAML, merge keys included);
//! [`load`] decodes that tree (unknown keys rejected with a suggestion, wrong
//! types named) and validates the whole (graph, params, gates, paths). Only
//! the validated [`Pipeline`] leaves this crate.
//!
//! Pure: files are read through the [`Files`] trait the caller implements.

mod cluster;
mod cost;
mod diag;
mod load;
mod monitor;
mod node;
mod pipeline;
pub mod remote;

pub use cluster::{ExecutorKind, Kubernetes, Placement, Toleration, is_dns_label};
pub use cost::CostConfig;
pub use diag::{Diagnostic, Diagnostics, SNIPPET_WIDTH, spec_text};
pub use load::{Files, load, normalize_path, parse_duration, render_value};
pub use monitor::{Alerts, Decay, DeployPolicy, ModelWatch, Monitor, Thresholds, Triggers};
pub use node::{Kind, Node, Pos, key_path, parse_yaml};
pub use pipeline::{
    Check, CheckKind, DRIFT_METHODS, Gate, Pipeline, PythonEnv, Register, SignatureSpec, Stage,
    path_within,
};
pub use remote::{Location, RemoteConfig};

/// The JSON Schema of ferry.yaml, for editors (`ferry schema`).
pub const JSON_SCHEMA: &str = include_str!("../ferry.schema.json");

/// Keys the loader accepts, by place, so tests can hold the schema to them.
pub mod keys {
    pub use crate::cluster::{KUBERNETES_KEYS, STAGE_KUBERNETES_KEYS, TOLERATION_KEYS};
    pub use crate::cost::{COST_KEYS, PRICE_KEYS, RESOURCES_KEYS};
    pub use crate::load::{
        CACHE_KEYS, ENV_KEYS, GATE_KEYS, PYTHON_KEYS, REGISTER_KEYS, REMOTE_KEYS, STAGE_KEYS,
        TOP_KEYS,
    };
    pub use crate::monitor::{
        ALERT_KEYS, DECAY_KEYS, DEPLOY_KEYS, MONITOR_KEYS, ON_KEYS, THRESHOLD_KEYS, WATCH_KEYS,
    };
}
