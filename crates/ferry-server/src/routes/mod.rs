pub mod artifacts;
pub mod experiments;
pub mod runs;
