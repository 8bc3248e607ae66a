//! CLI integration tests: drive the built `ferry` binary on temporary
//! projects with fast shell stages, including misbehaving ones.

mod support;

mod cli;
mod example;
mod misbehaving;
