//! Rollouts, apart from the gateway that runs them: the state machine that
//! judges a candidate ([`canary`]: pure), and the rules for starting one
//! and for ending one by hand ([`rollout`]). `ferry-gateway` runs
//! rollouts with them; `ferry-tracking` (the team server's deployments
//! API) and `ferry deploy` start and end them with the same rules, so
//! neither needs the gateway's model runtimes.

pub mod canary;
pub mod rollout;
