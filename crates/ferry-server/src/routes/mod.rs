pub mod artifacts;
pub mod experiments;
pub mod models;
pub mod registry;
pub mod runs;
