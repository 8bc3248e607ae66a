//! Who may do what on a team's `ferry server` and `ferry serve`, without
//! any I/O: MLflow 3.x's permission levels and resource types
//! ([`permission`]), their resolution from a user's grants ([`resolve`]),
//! passwords and API tokens ([`secret`]), the `Authorization` header and
//! MLflow's refusals ([`credentials`]) and the hash-chained audit log
//! ([`audit`]). The servers keep users, roles and entries in the store and
//! ask this crate for every decision, so the rules live in one place and
//! are tested without a server.

pub mod audit;
pub mod credentials;
pub mod oidc;
pub mod permission;
pub mod resolve;
pub mod secret;

pub use permission::{Action, GrantError, Permission, ResourceType, validate_grant};
pub use resolve::{BUILTIN_ROLES, Grant, Key, Policy, Requirement, Subject, builtin_role};
