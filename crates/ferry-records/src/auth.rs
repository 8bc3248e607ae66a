//! Users, roles, grants, API tokens and the audit log, as a team server
//! keeps them, and the [`AuthStore`] interface over them. What a grant
//! means and who may do what is `ferry-auth`'s business; this is storage.
//!
//! As in MLflow 3.x's auth app, every grant is a row on a role; a user's
//! own grants are on a role of theirs named `__user_<id>__` in a workspace
//! ([`user_role_name`]), so one query finds every grant a user holds in a
//! workspace.

use crate::Result;
use ferry_auth::Grant;
use ferry_auth::audit::{Entry, Event};
use serde::Serialize;

/// A person or a service account. The password hash never leaves the
/// store's callers in a response (`Serialize` skips it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// A service account: tokens only, no password.
    pub service: bool,
    pub created_ms: i64,
}

/// A new user: `password_hash` from `ferry_auth::secret::hash_password`,
/// `None` for a service account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub service: bool,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleGrant {
    pub id: i64,
    pub role_id: i64,
    #[serde(flatten)]
    pub grant: Grant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub workspace: String,
    pub description: Option<String>,
    pub grants: Vec<RoleGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    pub id: i64,
    pub user_id: i64,
    pub role_id: i64,
}

/// The workspace of a resource that was given none, and of a request that
/// names none (MLflow's).
pub const DEFAULT_WORKSPACE: &str = "default";

/// The name of the role that holds a user's own grants in a workspace.
pub fn user_role_name(user_id: i64) -> String {
    format!("__user_{user_id}__")
}

/// A group of users defined in ferry: it holds roles as a user does, and
/// each member holds what its roles grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// Its members' user names, sorted.
    pub members: Vec<String>,
    /// The roles it holds, as `workspace/name`, sorted.
    pub roles: Vec<String>,
}

/// An API token as stored: its secret only as a hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    /// The public id (the `<id>` in `ferry_<id>_<secret>`).
    pub id: String,
    pub user_id: i64,
    /// What its owner called it (`ci`, `laptop`).
    pub name: String,
    /// The workspace it is limited to, if any.
    pub workspace: Option<String>,
    /// The built-in role it is limited to, if any (at most the owner's).
    pub role: Option<String>,
    #[serde(skip)]
    pub secret_hash: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl Token {
    /// Whether the token may be used at `now_ms`.
    pub fn live(&self, now_ms: i64) -> bool {
        self.revoked_ms.is_none() && self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// Which audit entries to read, oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since_ms: Option<i64>,
    pub actor: Option<String>,
    /// A prefix of the action (`registered_model.alias` finds every move).
    pub action: Option<String>,
    /// Entries before this one (a page's cursor).
    pub before_seq: Option<u64>,
    /// The newest first (else the oldest).
    pub newest_first: bool,
    pub limit: Option<u64>,
}

#[async_trait::async_trait]
pub trait AuthStore: Send + Sync {
    /// `AlreadyExists` when the name is taken.
    async fn create_user(&self, u: &NewUser) -> Result<User>;
    async fn get_user(&self, username: &str) -> Result<Option<User>>;
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn set_password(&self, username: &str, password_hash: &str) -> Result<()>;
    async fn set_admin(&self, username: &str, is_admin: bool) -> Result<()>;
    /// Removes the user, their own roles and assignments, and revokes
    /// their tokens (kept, for the audit log's references).
    async fn delete_user(&self, username: &str, now_ms: i64) -> Result<()>;

    /// `AlreadyExists` when the workspace has a role of that name.
    async fn create_role(
        &self,
        workspace: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Role>;
    async fn get_role(&self, id: i64) -> Result<Option<Role>>;
    /// Every role (with `None`), or those of one workspace.
    async fn list_roles(&self, workspace: Option<&str>) -> Result<Vec<Role>>;
    async fn delete_role(&self, id: i64) -> Result<()>;
    /// `AlreadyExists` when the role grants on that resource already.
    /// Renames a role or changes its description (`None`: unchanged);
    /// `AlreadyExists` when its workspace has a role of the new name.
    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role>;
    async fn add_grant(&self, role_id: i64, grant: &Grant) -> Result<RoleGrant>;
    /// Changes one grant's permission (its resource stays).
    async fn set_grant_permission(
        &self,
        grant_id: i64,
        permission: ferry_auth::Permission,
    ) -> Result<RoleGrant>;
    /// Who holds a role (directly; see the groups holding it in
    /// [`AuthStore::list_groups`]).
    async fn role_assignments(&self, role_id: i64) -> Result<Vec<Assignment>>;

    /// Makes a group; `AlreadyExists` for a name taken.
    async fn create_group(&self, name: &str) -> Result<Group>;
    async fn get_group(&self, name: &str) -> Result<Option<Group>>;
    async fn list_groups(&self) -> Result<Vec<Group>>;
    /// Removes a group, its memberships and the roles it held.
    async fn delete_group(&self, name: &str) -> Result<()>;
    /// Adds a user to a group (nothing when they are in it).
    async fn add_to_group(&self, group_id: i64, user_id: i64) -> Result<()>;
    async fn remove_from_group(&self, group_id: i64, user_id: i64) -> Result<()>;
    /// Gives a group a role (nothing when it holds it).
    async fn assign_group(&self, group_id: i64, role_id: i64) -> Result<()>;
    /// The roles the group `name` holds (none for no such group): what a
    /// user the identity provider puts in it holds.
    async fn group_roles(&self, name: &str) -> Result<Vec<Role>>;
    async fn remove_grant(&self, grant_id: i64) -> Result<()>;
    /// Grants to the user's own role in `workspace` (made when missing).
    async fn grant_user(&self, user_id: i64, workspace: &str, grant: &Grant) -> Result<RoleGrant>;
    /// `AlreadyExists` when the user has the role.
    async fn assign(&self, user_id: i64, role_id: i64) -> Result<Assignment>;
    async fn unassign(&self, user_id: i64, role_id: i64) -> Result<()>;
    /// The roles a user holds, directly or through a group.
    async fn roles_of(&self, user_id: i64) -> Result<Vec<Role>>;
    /// Every grant of every role the user holds in `workspace`, their own
    /// and their groups' included: what `ferry_auth::Subject` is made of.
    /// One query.
    async fn grants_in(&self, user_id: i64, workspace: &str) -> Result<Vec<Grant>>;

    async fn create_token(&self, t: &Token) -> Result<()>;
    async fn get_token(&self, id: &str) -> Result<Option<Token>>;
    async fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>>;
    /// `NotFound` when no such token exists.
    async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<()>;

    /// A number that changes whenever users, roles, grants, tokens or
    /// workspaces do: what a server's caches of them are valid for.
    async fn auth_generation(&self) -> Result<i64>;
    /// Puts a resource (an experiment id, a registered model's name) in a
    /// workspace.
    async fn set_workspace(
        &self,
        resource_type: ferry_auth::ResourceType,
        id: &str,
        workspace: &str,
    ) -> Result<()>;
    /// The workspace of a resource: [`DEFAULT_WORKSPACE`] when it was put
    /// in none (or does not exist).
    async fn workspace_of(
        &self,
        resource_type: ferry_auth::ResourceType,
        id: &str,
    ) -> Result<String>;

    /// Seals `event` after the newest entry and stores it with the new
    /// head, in one transaction.
    async fn append_audit(&self, event: &Event) -> Result<Entry>;
    async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<Entry>>;
    /// The newest entry's sequence number and hash, kept apart from the
    /// entries (what catches the newest ones being removed).
    async fn audit_head(&self) -> Result<Option<(u64, String)>>;
}

/// The login name, as Python's `getpass.getuser()` (and so the MLflow
/// client) finds it: `LOGNAME`, `USER`, then `USERNAME`.
pub fn login_name() -> Option<String> {
    ["LOGNAME", "USER", "USERNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
}

/// Who an audit entry names for a change made on the store itself (the
/// command line, no server in between): `cli:<login name>`.
pub fn cli_actor() -> String {
    let who = login_name().unwrap_or_else(|| "unknown".into());
    format!("cli:{who}")
}

/// The built-in role `name` (predictor, viewer, editor, maintainer, admin) of
/// `workspace`, made with its grants the first time it is needed; `None`
/// for a name that is not built in. A role of that name someone made by
/// hand is returned as it is.
pub async fn builtin_role_in(
    store: &dyn AuthStore,
    workspace: &str,
    name: &str,
) -> Result<Option<Role>> {
    let Some(grants) = ferry_auth::builtin_role(name) else {
        return Ok(None);
    };
    let existing = |roles: Vec<Role>| roles.into_iter().find(|r| r.name == name);
    if let Some(r) = existing(store.list_roles(Some(workspace)).await?) {
        return Ok(Some(r));
    }
    let description = format!("ferry's built-in {name} role");
    let role = match store.create_role(workspace, name, Some(&description)).await {
        Ok(r) => r,
        // Made by someone else meanwhile.
        Err(crate::Error::AlreadyExists(_)) => {
            return Ok(existing(store.list_roles(Some(workspace)).await?));
        }
        Err(e) => return Err(e),
    };
    for g in &grants {
        store.add_grant(role.id, g).await?;
    }
    store.get_role(role.id).await
}

/// Makes `user_id` a member of `workspace` with the built-in `role`
/// (nothing when they hold it already). `None` for an unknown role name.
pub async fn add_member(
    store: &dyn AuthStore,
    user_id: i64,
    workspace: &str,
    role: &str,
) -> Result<Option<Role>> {
    let Some(r) = builtin_role_in(store, workspace, role).await? else {
        return Ok(None);
    };
    match store.assign(user_id, r.id).await {
        Ok(_) | Err(crate::Error::AlreadyExists(_)) => Ok(Some(r)),
        Err(e) => Err(e),
    }
}
