//! The MLflow REST routes, one module per part of the API.

pub mod artifacts;
pub mod costs;
pub mod deployments;
pub mod experiments;
pub mod hooks;
pub mod models;
pub mod registry;
pub mod runs;
