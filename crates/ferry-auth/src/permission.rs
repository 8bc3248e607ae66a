//! MLflow 3.x's permission levels and resource types, with the checks a
//! grant passes before it is stored (the messages are MLflow's, so scripts
//! written against its auth app read the same errors).

use std::fmt;

/// A level of access. `Read < Use < Edit < Manage`; `Deny` vetoes any grant
/// on the same key; `NoPermissions` is what "no grant" resolves to where
/// nothing is allowed by default (it is never granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    Read,
    Use,
    Edit,
    Manage,
    NoPermissions,
    Deny,
}

/// What a request wants to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Use,
    Update,
    Delete,
    Manage,
    /// Anything but an explicit `DENY` on the key.
    NotDenied,
}

impl Action {
    /// A small number for the action (1 to 6), for servers that remember
    /// decisions as numbers.
    pub fn code(self) -> u16 {
        match self {
            Action::Read => 1,
            Action::Use => 2,
            Action::Update => 3,
            Action::Delete => 4,
            Action::Manage => 5,
            Action::NotDenied => 6,
        }
    }
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Self::Read,
        Self::Use,
        Self::Edit,
        Self::Manage,
        Self::NoPermissions,
        Self::Deny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Use => "USE",
            Self::Edit => "EDIT",
            Self::Manage => "MANAGE",
            Self::NoPermissions => "NO_PERMISSIONS",
            Self::Deny => "DENY",
        }
    }

    /// Reads a level as MLflow spells it.
    pub fn parse(s: &str) -> Result<Self, GrantError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| GrantError::UnknownPermission(s.to_owned()))
    }

    /// The order grants are compared in: `Deny` below everything, then no
    /// permission, then the four levels.
    pub fn priority(self) -> i8 {
        match self {
            Self::Deny => -1,
            Self::NoPermissions => 0,
            Self::Read => 1,
            Self::Use => 2,
            Self::Edit => 3,
            Self::Manage => 4,
        }
    }

    /// Whether this level allows `action`. Deleting needs `Manage`: no
    /// level may delete without managing.
    pub fn allows(self, action: Action) -> bool {
        match action {
            Action::NotDenied => self != Self::Deny,
            Action::Read => self.priority() >= Self::Read.priority(),
            Action::Use => self.priority() >= Self::Use.priority(),
            Action::Update => self.priority() >= Self::Edit.priority(),
            Action::Delete | Action::Manage => self == Self::Manage,
        }
    }

    /// `allowed` in `users/permissions/get`: MLflow reports whether the
    /// level may *use* the resource, so `READ` answers false.
    pub fn can_use(self) -> bool {
        self.allows(Action::Use)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of resource a grant can name. Some take a resource id, the
/// others only `*` (the sub-resource tiers that override their parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Workspace,
    Experiment,
    RegisteredModel,
    Run,
    LoggedModel,
    RegisteredModelVersion,
    Trace,
    Deployment,
}

impl ResourceType {
    pub const ALL: [ResourceType; 8] = [
        Self::Workspace,
        Self::Experiment,
        Self::RegisteredModel,
        Self::Run,
        Self::LoggedModel,
        Self::RegisteredModelVersion,
        Self::Trace,
        Self::Deployment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Experiment => "experiment",
            Self::RegisteredModel => "registered_model",
            Self::Run => "run",
            Self::LoggedModel => "logged_model",
            Self::RegisteredModelVersion => "registered_model_version",
            Self::Trace => "trace",
            Self::Deployment => "deployment",
        }
    }

    pub fn parse(s: &str) -> Result<Self, GrantError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| GrantError::UnknownType(s.to_owned()))
    }

    /// Whether a grant on this type may name one resource, or only `*`.
    pub fn takes_ids(self) -> bool {
        matches!(
            self,
            Self::Experiment | Self::RegisteredModel | Self::Deployment
        )
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ResourceType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ResourceType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResourceType::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a grant was refused (each a 400 `INVALID_PARAMETER_VALUE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error(
        "Invalid permission '{0}'. Valid permissions are: ('READ', 'USE', 'EDIT', 'MANAGE', 'NO_PERMISSIONS', 'DENY')"
    )]
    UnknownPermission(String),
    #[error("Invalid resource type '{0}'. Valid resource types are: ({types})", types = type_list())]
    UnknownType(String),
    #[error("Invalid permission '{permission}' for resource_type='{resource_type}'. {accepted}")]
    NotForType {
        permission: Permission,
        resource_type: ResourceType,
        accepted: &'static str,
    },
    #[error("This resource type supports only wildcard ('*') grants.")]
    WildcardOnly,
    #[error("the resource id may not be empty")]
    EmptyId,
}

fn type_list() -> String {
    ResourceType::ALL
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a grant of `permission` on `(resource_type, pattern)` as MLflow's
/// auth app does before storing it.
pub fn validate_grant(
    resource_type: ResourceType,
    pattern: &str,
    permission: Permission,
) -> Result<(), GrantError> {
    if pattern.is_empty() {
        return Err(GrantError::EmptyId);
    }
    if pattern != "*" && !resource_type.takes_ids() {
        return Err(GrantError::WildcardOnly);
    }
    let fits = match resource_type {
        ResourceType::Workspace => matches!(permission, Permission::Use | Permission::Manage),
        _ => permission != Permission::NoPermissions,
    };
    if fits {
        Ok(())
    } else {
        Err(GrantError::NotForType {
            permission,
            resource_type,
            accepted: if resource_type == ResourceType::Workspace {
                "Workspace grants accept only: ('MANAGE', 'USE')."
            } else {
                "Resource-level grants accept only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE')."
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action as A;
    use Permission::*;

    #[test]
    fn each_level_allows_what_mlflow_s_table_says() {
        // read, use, update, delete, manage, not denied
        let table = [
            (Read, [true, false, false, false, false, true]),
            (Use, [true, true, false, false, false, true]),
            (Edit, [true, true, true, false, false, true]),
            (Manage, [true, true, true, true, true, true]),
            (NoPermissions, [false, false, false, false, false, true]),
            (Deny, [false, false, false, false, false, false]),
        ];
        for (level, expected) in table {
            let got = [
                A::Read,
                A::Use,
                A::Update,
                A::Delete,
                A::Manage,
                A::NotDenied,
            ]
            .map(|a| level.allows(a));
            assert_eq!(got, expected, "{level}");
        }
        assert!(!Read.can_use(), "`allowed` is can_use: READ answers false");
    }

    #[test]
    fn levels_and_types_round_trip_and_unknown_ones_are_named() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Ok(p));
        }
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::parse(t.as_str()), Ok(t));
        }
        let e = Permission::parse("ADMIN").unwrap_err().to_string();
        assert!(
            e.starts_with("Invalid permission 'ADMIN'. Valid permissions are:"),
            "{e}"
        );
        let e = ResourceType::parse("bucket").unwrap_err().to_string();
        assert!(e.contains("'bucket'") && e.contains("'experiment'"), "{e}");
    }

    #[test]
    fn grants_are_checked_as_mlflow_checks_them() {
        use ResourceType as T;
        assert_eq!(validate_grant(T::Experiment, "7", Edit), Ok(()));
        assert_eq!(validate_grant(T::Experiment, "*", Deny), Ok(()));
        assert_eq!(validate_grant(T::Run, "*", Read), Ok(()));
        assert_eq!(
            validate_grant(T::Run, "abc", Read),
            Err(GrantError::WildcardOnly)
        );
        assert_eq!(validate_grant(T::Workspace, "*", Manage), Ok(()));
        let e = validate_grant(T::Workspace, "*", Read)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Workspace grants accept only"), "{e}");
        let e = validate_grant(T::Experiment, "1", NoPermissions)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Invalid permission 'NO_PERMISSIONS' for resource_type='experiment'. Resource-level grants accept only: ('DENY', 'EDIT', 'MANAGE', 'READ', 'USE')."
        );
        assert_eq!(
            validate_grant(T::Experiment, "", Read),
            Err(GrantError::EmptyId)
        );
    }
}
