//! The closed loop: a served model's monitor checks over its prediction
//! log and feedback ([`checks`], reading [`log`]), the alerts they send
//! ([`alert`]: a signed, Slack-compatible webhook) and the Prometheus
//! rules for the same conditions ([`rules`]), and the agent ([`agent`])
//! that runs them on a schedule, fires the pipeline's triggers, runs the
//! triggered runs and rolls their candidates out. Time is read from one
//! [`ferry_core::clock::Clock`].

pub mod agent;
pub mod alert;
pub mod checks;
pub mod log;
pub mod rules;
