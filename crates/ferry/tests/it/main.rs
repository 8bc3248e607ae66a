//! CLI integration tests: drive the built `ferry` binary on temporary
//! projects with fast shell stages, including misbehaving ones.

#![allow(clippy::unwrap_used)]

mod support;

mod admin;
mod agent;
mod checks;
mod cli;
mod consistency;
mod cost;
mod deliveries;
mod deploy;
mod elsewhere;
mod example;
mod hardening;
mod misbehaving;
mod remote;
mod shared_cache;
mod slow_clients;
mod tidy;
mod webhooks;
