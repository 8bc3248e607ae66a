//! Whether a user may do something: the grants of their roles in the
//! request's workspace, folded the way MLflow 3.x's auth app folds them,
//! with ferry's stricter defaults where MLflow's let requests through.
//!
//! The rules, in order:
//! 1. A server admin may do anything.
//! 2. A workspace admin (any role of theirs holding `(workspace, *, MANAGE)`)
//!    has `MANAGE` on every resource of the workspace, even over `DENY`.
//! 3. A requirement names its own key and a chain of fallbacks (a run's
//!    tier, then its experiment): the first key any grant matches decides,
//!    and the rest are not consulted.
//! 4. Within one key, every matching grant (an exact id or `*`) counts; any
//!    `DENY` wins, else the highest level.
//! 5. A positive grant never counts below the server's default permission.
//! 6. When no key has a grant, the default permission applies.

use crate::permission::{Action, Permission, ResourceType};

/// One grant: a level on a resource (`pattern` is an id or `*`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub resource_type: ResourceType,
    pub pattern: String,
    pub permission: Permission,
}

impl Grant {
    pub fn new(resource_type: ResourceType, pattern: &str, permission: Permission) -> Self {
        Self {
            resource_type,
            pattern: pattern.to_owned(),
            permission,
        }
    }

    fn matches(&self, key: &Key<'_>) -> bool {
        self.resource_type == key.resource_type && (self.pattern == "*" || self.pattern == key.id)
    }
}

/// A resource as a requirement names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    pub resource_type: ResourceType,
    pub id: &'a str,
}

impl<'a> Key<'a> {
    pub fn new(resource_type: ResourceType, id: &'a str) -> Self {
        Self { resource_type, id }
    }
}

/// What one route needs: `action` on `key`, where the first key of
/// `key` and then `fallback` that holds any grant decides.
#[derive(Debug, Clone)]
pub struct Requirement<'a> {
    pub key: Key<'a>,
    pub action: Action,
    pub fallback: Vec<Key<'a>>,
}

impl<'a> Requirement<'a> {
    pub fn on(key: Key<'a>, action: Action) -> Self {
        Self {
            key,
            action,
            fallback: Vec::new(),
        }
    }

    /// Also asks `parent` when no grant names `key`.
    pub fn or(mut self, parent: Key<'a>) -> Self {
        self.fallback.push(parent);
        self
    }
}

/// Who is asking: whether they administer the whole server, and every
/// grant their roles (their own included) hold in the request's workspace.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub is_admin: bool,
    pub grants: Vec<Grant>,
}

/// The server's settings that decide the rest.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// What a user with no grant on a resource gets. ferry's default is
    /// `NoPermissions` (teams isolated); MLflow's is `Read`.
    pub default_permission: Permission,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            default_permission: Permission::NoPermissions,
        }
    }
}

impl Subject {
    /// Whether one of the subject's roles administers the workspace.
    pub fn is_workspace_admin(&self) -> bool {
        self.grants.iter().any(|g| {
            g.resource_type == ResourceType::Workspace
                && g.pattern == "*"
                && g.permission == Permission::Manage
        })
    }

    /// Whether the subject is a member of the workspace (may create in it,
    /// and sees its resources in listings).
    pub fn is_member(&self) -> bool {
        self.is_admin
            || self
                .grants
                .iter()
                .any(|g| g.resource_type == ResourceType::Workspace && g.pattern == "*")
    }

    /// Every grant matching `key`, folded: any `DENY` wins, else the
    /// highest level; `None` when nothing names the key.
    pub fn fold(&self, key: Key<'_>) -> Option<Permission> {
        let mut best: Option<Permission> = None;
        for g in self.grants.iter().filter(|g| g.matches(&key)) {
            if g.permission == Permission::Deny {
                return Some(Permission::Deny);
            }
            if best.is_none_or(|b| g.permission.priority() > b.priority()) {
                best = Some(g.permission);
            }
        }
        best
    }

    /// The level that governs `req`: the first key in its chain that any
    /// grant names, floored at the default; the default when none does.
    pub fn effective(&self, policy: &Policy, req: &Requirement<'_>) -> Permission {
        if self.is_admin || self.is_workspace_admin() {
            return Permission::Manage;
        }
        let decided = std::iter::once(&req.key)
            .chain(&req.fallback)
            .find_map(|k| self.fold(*k));
        match decided {
            Some(p @ (Permission::Deny | Permission::NoPermissions)) => p,
            Some(p) if p.priority() < policy.default_permission.priority() => {
                policy.default_permission
            }
            Some(p) => p,
            None => policy.default_permission,
        }
    }

    /// Whether `req` is allowed.
    pub fn may(&self, policy: &Policy, req: &Requirement<'_>) -> bool {
        self.effective(policy, req).allows(req.action)
    }

    /// Whether every one of `reqs` is allowed (a route may need several).
    pub fn may_all(&self, policy: &Policy, reqs: &[Requirement<'_>]) -> bool {
        reqs.iter().all(|r| self.may(policy, r))
    }
}

/// The roles every workspace starts with, as grants: what `predictor`,
/// `viewer`, `editor`, `maintainer` and `admin` hold. Ordinary roles, so
/// MLflow's auth client lists and assigns them like any other. `predictor`
/// holds USE on registered models (which reads them, as MLflow's USE does)
/// and nothing else: a service that calls a gateway, which can neither
/// change the registry, see experiments, nor send feedback.
pub fn builtin_role(name: &str) -> Option<Vec<Grant>> {
    use Permission::*;
    use ResourceType as T;
    let all = |p: Permission| {
        [T::Experiment, T::RegisteredModel, T::Deployment]
            .into_iter()
            .map(move |t| Grant::new(t, "*", p))
    };
    let member = Grant::new(T::Workspace, "*", Use);
    Some(match name {
        "predictor" => vec![member, Grant::new(T::RegisteredModel, "*", Use)],
        "viewer" => std::iter::once(member).chain(all(Read)).collect(),
        "editor" => std::iter::once(member).chain(all(Edit)).collect(),
        "maintainer" => std::iter::once(member).chain(all(Manage)).collect(),
        "admin" => vec![Grant::new(T::Workspace, "*", Manage)],
        _ => return None,
    })
}

/// The names of [`builtin_role`]s, least to most (`predictor` only uses
/// models).
pub const BUILTIN_ROLES: [&str; 5] = ["predictor", "viewer", "editor", "maintainer", "admin"];

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use Permission::*;
    use ResourceType as T;

    fn subject(grants: &[(T, &str, Permission)]) -> Subject {
        Subject {
            is_admin: false,
            grants: grants
                .iter()
                .map(|(t, p, l)| Grant::new(*t, p, *l))
                .collect(),
        }
    }

    fn run_update<'a>(exp: &'a str) -> Requirement<'a> {
        Requirement::on(Key::new(T::Run, "*"), A::Update).or(Key::new(T::Experiment, exp))
    }

    const STRICT: Policy = Policy {
        default_permission: NoPermissions,
    };
    const MLFLOW: Policy = Policy {
        default_permission: Read,
    };

    #[test]
    fn deny_on_a_key_beats_any_grant_there_wildcard_or_exact() {
        let s = subject(&[(T::Experiment, "1", Manage), (T::Experiment, "*", Deny)]);
        assert_eq!(s.fold(Key::new(T::Experiment, "1")), Some(Deny));
        let s = subject(&[(T::Experiment, "*", Read), (T::Experiment, "1", Edit)]);
        assert_eq!(s.fold(Key::new(T::Experiment, "1")), Some(Edit));
        assert_eq!(s.fold(Key::new(T::Experiment, "2")), Some(Read));
        assert_eq!(s.fold(Key::new(T::RegisteredModel, "1")), None);
    }

    #[test]
    fn the_first_key_with_a_grant_decides_a_chain() {
        let owner = subject(&[(T::Experiment, "1", Manage)]);
        assert!(owner.may(&STRICT, &run_update("1")));
        assert!(!owner.may(&STRICT, &run_update("2")), "no grant on 2");
        // A run-tier grant overrides the experiment, downwards too.
        let limited = subject(&[(T::Experiment, "1", Manage), (T::Run, "*", Read)]);
        assert!(!limited.may(&STRICT, &run_update("1")));
        let blocked = subject(&[(T::Experiment, "1", Manage), (T::Run, "*", Deny)]);
        assert_eq!(blocked.effective(&STRICT, &run_update("1")), Deny);
    }

    #[test]
    fn the_default_applies_without_grants_and_floors_positive_ones() {
        let nobody = subject(&[]);
        let read = Requirement::on(Key::new(T::Experiment, "1"), A::Read);
        assert!(!nobody.may(&STRICT, &read), "ferry isolates by default");
        assert!(
            nobody.may(&MLFLOW, &read),
            "MLflow's default lets anyone read"
        );
        let edit_default = Policy {
            default_permission: Edit,
        };
        let reader = subject(&[(T::Experiment, "1", Read)]);
        assert_eq!(reader.effective(&edit_default, &read), Edit);
        let denied = subject(&[(T::Experiment, "1", Deny)]);
        assert_eq!(
            denied.effective(&edit_default, &read),
            Deny,
            "only DENY restricts below the default"
        );
    }

    #[test]
    fn admins_and_workspace_admins_manage_everything_even_over_deny() {
        let admin = Subject {
            is_admin: true,
            grants: Vec::new(),
        };
        assert_eq!(admin.effective(&STRICT, &run_update("9")), Manage);
        let ws_admin = subject(&[(T::Workspace, "*", Manage), (T::Experiment, "*", Deny)]);
        assert!(ws_admin.is_workspace_admin());
        assert!(ws_admin.may(&STRICT, &run_update("9")));
        let member = subject(&[(T::Workspace, "*", Use)]);
        assert!(member.is_member() && !member.is_workspace_admin());
        assert!(
            !member.may(&STRICT, &run_update("9")),
            "membership alone grants nothing on a resource"
        );
    }

    #[test]
    fn builtin_roles_grow_from_viewer_to_admin() {
        let may = |role: &str, action: A| {
            let s = Subject {
                is_admin: false,
                grants: builtin_role(role).unwrap(),
            };
            s.may(
                &STRICT,
                &Requirement::on(Key::new(T::RegisteredModel, "iris"), action),
            )
        };
        let actions = [A::Use, A::Read, A::Update, A::Delete];
        let table: Vec<Vec<bool>> = BUILTIN_ROLES
            .iter()
            .map(|r| actions.iter().map(|a| may(r, *a)).collect())
            .collect();
        assert_eq!(
            table,
            [
                [true, true, false, false],
                [false, true, false, false],
                [true, true, true, false],
                [true, true, true, true],
                [true, true, true, true]
            ]
        );
        assert!(builtin_role("owner").is_none());
    }
}
