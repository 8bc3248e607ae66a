//! MLflow 3.x's auth API, so `mlflow.server.get_app_client("basic-auth")`
//! and scripts written for it work against ferry: users under
//! `/api/2.0/mlflow/users/`, per-user grants under
//! `/api/3.0/mlflow/users/permissions/`, and roles under
//! `/api/3.0/mlflow/roles/`. Who may call what follows MLflow's validators
//! (see the module documentation of `rules`); answers are `200` with `{}`
//! where MLflow's are. Every change is in the audit log.

use super::{Audited, Caller, Gate};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use axum::Extension;
use axum::response::Json as Out;
use ferry_auth::{Action, Grant, Key, Permission, Requirement, ResourceType, Subject};
use ferry_metadata::{NewUser, Role, RoleGrant, User};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

type Ctx = (Extension<Caller>, Extension<Arc<Gate>>);

/// The routes, to be merged into the server's router.
pub fn routes() -> axum::Router<crate::Shared> {
    use axum::routing::{delete, get, patch, post};
    axum::Router::new()
        .route("/api/2.0/mlflow/users/create", post(create_user))
        .route("/api/2.0/mlflow/users/get", get(get_user))
        .route("/api/2.0/mlflow/users/current", get(current_user))
        .route("/api/2.0/mlflow/users/list", get(list_users))
        .route(
            "/api/2.0/mlflow/users/update-password",
            patch(update_password),
        )
        .route("/api/2.0/mlflow/users/update-admin", patch(update_admin))
        .route("/api/2.0/mlflow/users/delete", delete(delete_user))
        .route("/api/3.0/mlflow/users/permissions/grant", post(grant))
        .route("/api/3.0/mlflow/users/permissions/revoke", post(revoke))
        .route("/api/3.0/mlflow/users/permissions/get", get(get_permission))
        .route(
            "/api/3.0/mlflow/users/permissions/list",
            get(list_permissions),
        )
        .route(
            "/api/3.0/mlflow/users/current/permissions",
            get(current_permissions),
        )
        .route("/api/3.0/mlflow/users/roles/list", get(user_roles))
        .route("/api/3.0/mlflow/roles/create", post(create_role))
        .route("/api/3.0/mlflow/roles/get", get(get_role))
        .route("/api/3.0/mlflow/roles/list", get(list_roles))
        .route("/api/3.0/mlflow/roles/delete", delete(delete_role))
        .route("/api/3.0/mlflow/roles/update", patch(update_role))
        .route(
            "/api/3.0/mlflow/roles/permissions/update",
            patch(update_role_permission),
        )
        .route("/api/3.0/mlflow/roles/users/list", get(role_users))
        .route(
            "/api/3.0/mlflow/roles/permissions/add",
            post(add_role_permission),
        )
        .route(
            "/api/3.0/mlflow/roles/permissions/remove",
            delete(remove_role_permission),
        )
        .route(
            "/api/3.0/mlflow/roles/permissions/list",
            get(list_role_permissions),
        )
        .route("/api/3.0/mlflow/roles/assign", post(assign))
        .route("/api/3.0/mlflow/roles/unassign", delete(unassign))
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "is_admin": u.is_admin})
}

fn grant_json(g: &RoleGrant) -> Value {
    json!({
        "id": g.id,
        "role_id": g.role_id,
        "resource_type": g.grant.resource_type.as_str(),
        "resource_pattern": g.grant.pattern,
        "permission": g.grant.permission.as_str(),
    })
}

fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "workspace": r.workspace,
        "description": r.description,
        "permissions": r.grants.iter().map(grant_json).collect::<Vec<_>>(),
    })
}

impl Gate {
    /// Records a change made through the API and drops the caches.
    async fn changed_by(&self, caller: &Caller, action: &str, resource: String) {
        let what = Audited {
            action,
            resource,
            outcome: "allowed",
            source: None,
            reason: None,
        };
        self.audit(Some(caller), "", what).await;
        self.changed().await;
    }

    async fn target(&self, username: &str) -> ApiResult<User> {
        self.store()
            .get_user(username)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("User with username={username} not found")))
    }

    /// Whether the caller administers `workspace`.
    async fn administers(&self, caller: &Caller, workspace: &str) -> ApiResult<bool> {
        let s = self.subject(caller, workspace).await?;
        Ok(s.is_admin || s.is_workspace_admin())
    }

    /// Whether the caller administers any workspace.
    async fn administers_any(&self, caller: &Caller) -> ApiResult<bool> {
        if caller.is_admin() {
            return Ok(true);
        }
        for ws in self.memberships(caller.user.id).await?.iter() {
            if self.administers(caller, ws).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A field MLflow's API requires.
fn required<T>(v: Option<T>, field: &str) -> ApiResult<T> {
    v.ok_or_else(|| ApiError::missing(field))
}

/// A permission named in a request, valid for a grant of `rt` on `pattern`.
fn grant_level(rt: ResourceType, pattern: &str, permission: &str) -> ApiResult<Permission> {
    let level = Permission::parse(permission).map_err(|e| ApiError::invalid(e.to_string()))?;
    ferry_auth::validate_grant(rt, pattern, level).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(level)
}

fn require(ok: bool) -> ApiResult<()> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

#[derive(Deserialize)]
struct NewUserBody {
    username: Option<String>,
    password: Option<String>,
}

async fn create_user(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<NewUserBody>,
) -> ApiResult<Out<Value>> {
    require(gate.administers_any(&caller).await?)?;
    let username = required(b.username, "username")?;
    let password = required(b.password, "password")?;
    if username.is_empty() || password.is_empty() {
        return Err(ApiError::invalid("Username and password cannot be empty."));
    }
    let hash = hash(&password).await?;
    let user = gate
        .store()
        .create_user(&NewUser {
            username: username.clone(),
            password_hash: Some(hash),
            is_admin: false,
            service: false,
            created_ms: ferry_core::now_ms(),
        })
        .await?;
    gate.changed_by(&caller, "user.create", format!("user:{username}"))
        .await;
    Ok(Out(json!({ "user": user_json(&user) })))
}

/// The argon2id hash of a new password, off the async threads.
async fn hash(password: &str) -> ApiResult<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || ferry_auth::secret::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize)]
struct UsernameQuery {
    username: Option<String>,
}

async fn get_user(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<UsernameQuery>,
) -> ApiResult<Out<Value>> {
    let username = required(q.username, "username")?;
    require(caller.is_admin() || caller.user.username == username)?;
    let user = gate.target(&username).await?;
    Ok(Out(json!({ "user": user_json(&user) })))
}

async fn current_user((Extension(caller), _): Ctx) -> Out<Value> {
    Out(json!({ "user": user_json(&caller.user), "is_basic_auth": true }))
}

/// Every user for an admin; a user who is not sees only themselves (user
/// names are not for other teams to enumerate).
async fn list_users((Extension(caller), Extension(gate)): Ctx) -> ApiResult<Out<Value>> {
    let users = if caller.is_admin() {
        gate.store().list_users().await?
    } else {
        vec![caller.user.as_ref().clone()]
    };
    let mut out = Vec::with_capacity(users.len());
    for u in &users {
        let roles: Vec<Value> = gate
            .store()
            .roles_of(u.id)
            .await?
            .iter()
            .map(role_json)
            .collect();
        let mut v = user_json(u);
        v["roles"] = Value::Array(roles);
        out.push(v);
    }
    Ok(Out(json!({ "users": out })))
}

#[derive(Deserialize)]
struct PasswordBody {
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

async fn update_password(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<PasswordBody>,
) -> ApiResult<Out<Value>> {
    let username = required(b.username, "username")?;
    let password = required(b.password, "password")?;
    let own = caller.user.username == username;
    require(own || caller.is_admin())?;
    if own {
        let current = b.current_password.ok_or_else(|| {
            ApiError::invalid("Current password is required when changing your own password.")
        })?;
        let stored = caller.user.password_hash.clone().unwrap_or_default();
        let (given, new) = (current.clone(), password.clone());
        let matches = tokio::task::spawn_blocking(move || {
            ferry_auth::secret::verify_password(&stored, &given)
        })
        .await
        .unwrap_or(false);
        if !matches {
            return Err(ApiError::invalid("Current password does not match."));
        }
        if new == current {
            return Err(ApiError::invalid(
                "New password must differ from the current password.",
            ));
        }
    }
    gate.target(&username).await?;
    let h = hash(&password).await?;
    gate.store().set_password(&username, &h).await?;
    gate.forget_password(&username);
    gate.changed_by(&caller, "user.password", format!("user:{username}"))
        .await;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
struct AdminBody {
    username: Option<String>,
    is_admin: Option<bool>,
}

async fn update_admin(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<AdminBody>,
) -> ApiResult<Out<Value>> {
    require(caller.is_admin())?;
    let username = required(b.username, "username")?;
    let is_admin = required(b.is_admin, "is_admin")?;
    gate.store().set_admin(&username, is_admin).await?;
    gate.forget_password(&username);
    gate.changed_by(&caller, "user.admin", format!("user:{username}"))
        .await;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
struct UsernameBody {
    username: Option<String>,
}

async fn delete_user(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<UsernameBody>,
) -> ApiResult<Out<Value>> {
    require(caller.is_admin())?;
    let username = required(b.username, "username")?;
    if username == caller.user.username {
        return Err(ApiError::bad_request(
            "Users cannot delete their own account. Ask another admin to delete this user instead.",
        ));
    }
    gate.store()
        .delete_user(&username, ferry_core::now_ms())
        .await?;
    gate.forget_password(&username);
    gate.changed_by(&caller, "user.delete", format!("user:{username}"))
        .await;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
struct GrantBody {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    permission: Option<String>,
}

/// A resource named by type and id, and the workspace its grants live in.
struct Target {
    rt: ResourceType,
    id: String,
    workspace: String,
}

impl Gate {
    async fn resource(&self, caller: &Caller, rt: &str, id: &str) -> ApiResult<Target> {
        let rt = ResourceType::parse(rt).map_err(|e| ApiError::invalid(e.to_string()))?;
        if rt == ResourceType::Workspace {
            return Err(ApiError::invalid(
                "resource_type 'workspace' is not supported by the per-user permission convenience APIs. Use a role's permissions for workspace-wide grants.",
            ));
        }
        let workspace = match (rt, id) {
            (_, "*") => caller.workspace.clone(),
            (ResourceType::Experiment | ResourceType::RegisteredModel, _) => {
                self.workspace(rt, id).await?
            }
            _ => {
                return Err(ApiError::invalid(
                    "This resource type supports only wildcard ('*') grants.",
                ));
            }
        };
        Ok(Target {
            rt,
            id: id.to_owned(),
            workspace,
        })
    }

    /// MLflow's rule for granting: `*` needs an admin of the workspace, a
    /// resource needs MANAGE on it.
    async fn may_grant(&self, caller: &Caller, t: &Target) -> ApiResult<bool> {
        if t.id == "*" {
            return self.administers(caller, &t.workspace).await;
        }
        let s = self.subject(caller, &t.workspace).await?;
        Ok(s.may(
            self.policy(),
            &Requirement::on(Key::new(t.rt, &t.id), Action::Manage),
        ))
    }
}

/// What grant and revoke share: the resource, the caller's right to grant
/// on it, and the user it is for.
async fn grant_for(gate: &Gate, caller: &Caller, b: &GrantBody) -> ApiResult<(Target, User)> {
    let rt = required(b.resource_type.as_deref(), "resource_type")?;
    let id = required(b.resource_id.as_deref(), "resource_id")?;
    let t = gate.resource(caller, rt, id).await?;
    require(gate.may_grant(caller, &t).await?)?;
    let user = gate
        .target(required(b.username.as_deref(), "username")?)
        .await?;
    Ok((t, user))
}

async fn grant(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<GrantBody>,
) -> ApiResult<Out<Value>> {
    let permission = required(b.permission.as_deref(), "permission")?;
    let (t, user) = grant_for(&gate, &caller, &b).await?;
    let level = grant_level(t.rt, &t.id, permission)?;
    let username = &user.username;
    gate.store()
        .grant_user(user.id, &t.workspace, &Grant::new(t.rt, &t.id, level))
        .await
        .map_err(|e| match e {
            ferry_metadata::Error::AlreadyExists(_) => ferry_metadata::Error::AlreadyExists(format!(
                "Permission for user={username} on resource_type={}, resource_id={} already exists.",
                t.rt, t.id
            )),
            e => e,
        })?;
    let resource = format!("{}:{}/{username}={}", t.rt, t.id, level.as_str());
    gate.changed_by(&caller, "permission.grant", resource).await;
    Ok(Out(json!({})))
}

async fn revoke(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<GrantBody>,
) -> ApiResult<Out<Value>> {
    let (t, user) = grant_for(&gate, &caller, &b).await?;
    let (username, rt, id) = (&user.username, t.rt, &t.id);
    let own = ferry_metadata::user_role_name(user.id);
    let found = gate
        .store()
        .roles_of(user.id)
        .await?
        .into_iter()
        .filter(|r| r.name == own && r.workspace == t.workspace)
        .flat_map(|r| r.grants)
        .find(|g| g.grant.resource_type == t.rt && g.grant.pattern == t.id);
    let Some(g) = found else {
        return Err(ApiError::not_found(format!(
            "Permission for user={username} on resource_type={rt}, resource_id={id} not found."
        )));
    };
    gate.store().remove_grant(g.id).await?;
    gate.changed_by(
        &caller,
        "permission.revoke",
        format!("{}:{}/{username}", t.rt, t.id),
    )
    .await;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
struct PermissionQuery {
    username: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
}

async fn get_permission(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<PermissionQuery>,
) -> ApiResult<Out<Value>> {
    let username = required(q.username, "username")?;
    let rt = required(q.resource_type, "resource_type")?;
    let id = required(q.resource_id, "resource_id")?;
    let t = gate.resource(&caller, &rt, &id).await?;
    let own = caller.user.username == username;
    require(own || gate.administers(&caller, &t.workspace).await?)?;
    let user = gate.target(&username).await?;
    let subject = Subject {
        is_admin: false,
        grants: gate.store().grants_in(user.id, &t.workspace).await?,
    };
    let level = subject.effective(
        gate.policy(),
        &Requirement::on(Key::new(t.rt, &t.id), Action::Read),
    );
    Ok(Out(json!({
        "allowed": level.allows(Action::Use),
        "permission": level.as_str(),
    })))
}

/// Every grant of every role of `user`, as MLflow lists them.
async fn permissions_of(gate: &Gate, user: &User) -> ApiResult<Value> {
    let mut rows = Vec::new();
    for r in gate.store().roles_of(user.id).await? {
        for g in &r.grants {
            rows.push(json!({
                "role_id": r.id,
                "role_name": r.name,
                "workspace": r.workspace,
                "resource_type": g.grant.resource_type.as_str(),
                "resource_pattern": g.grant.pattern,
                "permission": g.grant.permission.as_str(),
            }));
        }
    }
    Ok(json!({ "is_admin": user.is_admin, "permissions": rows }))
}

async fn list_permissions(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<UsernameQuery>,
) -> ApiResult<Out<Value>> {
    let username = required(q.username, "username")?;
    require(caller.is_admin() || caller.user.username == username)?;
    let user = gate.target(&username).await?;
    Ok(Out(permissions_of(&gate, &user).await?))
}

async fn current_permissions((Extension(caller), Extension(gate)): Ctx) -> ApiResult<Out<Value>> {
    Ok(Out(permissions_of(&gate, &caller.user).await?))
}

async fn user_roles(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<UsernameQuery>,
) -> ApiResult<Out<Value>> {
    let username = required(q.username, "username")?;
    let user = gate.target(&username).await?;
    let mut roles = Vec::new();
    for r in gate.store().roles_of(user.id).await? {
        if caller.is_admin()
            || caller.user.username == username
            || gate.administers(&caller, &r.workspace).await?
        {
            roles.push(role_json(&r));
        }
    }
    Ok(Out(json!({ "roles": roles })))
}

#[derive(Deserialize)]
struct RoleBody {
    workspace: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

async fn create_role(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<RoleBody>,
) -> ApiResult<Out<Value>> {
    let workspace = b.workspace.unwrap_or_else(|| caller.workspace.clone());
    let name = required(b.name, "name")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid("Role name cannot be empty."));
    }
    if workspace.trim().is_empty() {
        return Err(ApiError::invalid("Workspace cannot be empty."));
    }
    if name.starts_with("__user_") {
        return Err(ApiError::invalid(
            "Role names starting with '__user_' are reserved.",
        ));
    }
    require(gate.administers(&caller, &workspace).await?)?;
    let role = gate
        .store()
        .create_role(&workspace, &name, b.description.as_deref())
        .await?;
    gate.changed_by(&caller, "role.create", format!("role:{workspace}/{name}"))
        .await;
    Ok(Out(json!({ "role": role_json(&role) })))
}

#[derive(Deserialize)]
struct RoleQuery {
    role_id: Option<String>,
}

fn role_id(v: Option<String>) -> ApiResult<i64> {
    let v = required(v, "role_id")?;
    v.trim()
        .parse()
        .map_err(|_| ApiError::invalid(format!("Invalid value '{v}' for parameter 'role_id'.")))
}

/// The role, when the caller administers its workspace (MLflow answers a
/// non-admin 403 for a role that does not exist, so nothing is learnt).
async fn managed_role(gate: &Gate, caller: &Caller, id: i64) -> ApiResult<Role> {
    match gate.store().get_role(id).await? {
        Some(r) if gate.administers(caller, &r.workspace).await? => Ok(r),
        None if caller.is_admin() => {
            Err(ApiError::not_found(format!("Role with id={id} not found")))
        }
        _ => Err(ApiError::forbidden()),
    }
}

/// The role, when the caller has any role in its workspace.
async fn viewable_role(gate: &Gate, caller: &Caller, id: i64) -> ApiResult<Role> {
    match gate.store().get_role(id).await? {
        Some(r)
            if caller.is_admin()
                || gate
                    .memberships(caller.user.id)
                    .await?
                    .contains(&r.workspace) =>
        {
            Ok(r)
        }
        None if caller.is_admin() => {
            Err(ApiError::not_found(format!("Role with id={id} not found")))
        }
        _ => Err(ApiError::forbidden()),
    }
}

async fn get_role(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<RoleQuery>,
) -> ApiResult<Out<Value>> {
    let role = viewable_role(&gate, &caller, role_id(q.role_id)?).await?;
    Ok(Out(json!({ "role": role_json(&role) })))
}

async fn list_roles(
    (Extension(caller), Extension(gate)): Ctx,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> ApiResult<Out<Value>> {
    let wanted: Vec<String> = url_pairs(q.as_deref())
        .filter(|(k, _)| k == "workspace")
        .map(|(_, v)| v)
        .collect();
    if wanted.iter().any(|w| w.trim().is_empty()) {
        return Err(ApiError::invalid("Workspace cannot be empty."));
    }
    let mine = gate.memberships(caller.user.id).await?;
    if wanted.is_empty() {
        require(caller.is_admin())?;
    } else {
        require(caller.is_admin() || wanted.iter().all(|w| mine.contains(w)))?;
    }
    let roles: Vec<Value> = gate
        .store()
        .list_roles(None)
        .await?
        .iter()
        .filter(|r| wanted.is_empty() || wanted.contains(&r.workspace))
        .map(role_json)
        .collect();
    Ok(Out(json!({ "roles": roles })))
}

fn url_pairs(q: Option<&str>) -> impl Iterator<Item = (String, String)> + '_ {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
}

#[derive(Deserialize)]
struct RoleIdBody {
    #[serde(default, deserialize_with = "super::id")]
    role_id: Option<String>,
}

async fn delete_role(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<RoleIdBody>,
) -> ApiResult<Out<Value>> {
    let role = managed_role(&gate, &caller, role_id(b.role_id)?).await?;
    gate.store().delete_role(role.id).await?;
    gate.changed_by(
        &caller,
        "role.delete",
        format!("role:{}/{}", role.workspace, role.name),
    )
    .await;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
struct RoleGrantBody {
    #[serde(default, deserialize_with = "super::id")]
    role_id: Option<String>,
    resource_type: Option<String>,
    resource_pattern: Option<String>,
    permission: Option<String>,
}

async fn add_role_permission(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<RoleGrantBody>,
) -> ApiResult<Out<Value>> {
    let role = managed_role(&gate, &caller, role_id(b.role_id)?).await?;
    let rt = required(b.resource_type, "resource_type")?;
    let rt = ResourceType::parse(&rt).map_err(|e| ApiError::invalid(e.to_string()))?;
    let pattern = required(b.resource_pattern, "resource_pattern")?;
    let level = required(b.permission, "permission")?;
    let level = Permission::parse(&level).map_err(|e| ApiError::invalid(e.to_string()))?;
    ferry_auth::validate_grant(rt, &pattern, level)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let made = gate
        .store()
        .add_grant(role.id, &Grant::new(rt, &pattern, level))
        .await?;
    let resource = format!(
        "role:{}/{}:{rt}:{pattern}={}",
        role.workspace,
        role.name,
        level.as_str()
    );
    gate.changed_by(&caller, "role.permission.add", resource)
        .await;
    Ok(Out(json!({ "role_permission": grant_json(&made) })))
}

#[derive(Deserialize)]
struct RoleGrantIdBody {
    #[serde(default, deserialize_with = "super::id")]
    role_permission_id: Option<String>,
}

/// The grant `raw` names and the role holding it, when the caller
/// manages that role (404 for an admin asking for none, else 403).
async fn managed_grant(
    gate: &Gate,
    caller: &Caller,
    raw: Option<String>,
) -> ApiResult<(Role, RoleGrant)> {
    let raw = required(raw, "role_permission_id")?;
    let id: i64 = raw.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "Invalid value '{raw}' for parameter 'role_permission_id'."
        ))
    })?;
    let owner = gate
        .store()
        .list_roles(None)
        .await?
        .into_iter()
        .find_map(|r| {
            let g = r.grants.iter().find(|g| g.id == id).cloned()?;
            Some((r.id, g))
        });
    match owner {
        Some((role, g)) => Ok((managed_role(gate, caller, role).await?, g)),
        None if caller.is_admin() => Err(ApiError::not_found(format!(
            "Role permission with id={id} not found"
        ))),
        None => Err(ApiError::forbidden()),
    }
}

async fn remove_role_permission(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<RoleGrantIdBody>,
) -> ApiResult<Out<Value>> {
    let (role, g) = managed_grant(&gate, &caller, b.role_permission_id).await?;
    gate.store().remove_grant(g.id).await?;
    let resource = format!("role:{}/{}:{}", role.workspace, role.name, g.id);
    gate.changed_by(&caller, "role.permission.remove", resource)
        .await;
    Ok(Out(json!({})))
}

#[derive(Deserialize)]
struct GrantUpdateBody {
    #[serde(default, deserialize_with = "super::id")]
    role_permission_id: Option<String>,
    permission: Option<String>,
}

/// `PATCH roles/permissions/update`: another level for a role's grant, checked
/// as adding it would be.
async fn update_role_permission(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<GrantUpdateBody>,
) -> ApiResult<Out<Value>> {
    let (role, g) = managed_grant(&gate, &caller, b.role_permission_id).await?;
    let level = required(b.permission, "permission")?;
    let level = Permission::parse(&level).map_err(|e| ApiError::invalid(e.to_string()))?;
    ferry_auth::validate_grant(g.grant.resource_type, &g.grant.pattern, level)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let changed = gate.store().set_grant_permission(g.id, level).await?;
    let resource = format!(
        "role:{}/{}:{}={}",
        role.workspace,
        role.name,
        g.id,
        level.as_str()
    );
    gate.changed_by(&caller, "role.permission.update", resource)
        .await;
    Ok(Out(json!({ "role_permission": grant_json(&changed) })))
}

#[derive(Deserialize)]
struct RoleUpdateBody {
    #[serde(default, deserialize_with = "super::id")]
    role_id: Option<String>,
    name: Option<Value>,
    description: Option<Value>,
}

/// `PATCH roles/update`: a role's name or description, as MLflow checks them.
async fn update_role(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<RoleUpdateBody>,
) -> ApiResult<Out<Value>> {
    let role = managed_role(&gate, &caller, role_id(b.role_id)?).await?;
    if b.name.is_none() && b.description.is_none() {
        return Err(ApiError::invalid(
            "At least one of 'name' or 'description' must be provided to update a role.",
        ));
    }
    let name = match &b.name {
        None => None,
        Some(Value::String(n)) if !n.trim().is_empty() => Some(n.as_str()),
        Some(_) => return Err(ApiError::invalid("Role name cannot be empty.")),
    };
    let description = match &b.description {
        None => None,
        Some(Value::String(d)) => Some(d.as_str()),
        Some(_) => return Err(ApiError::invalid("Role description must be a string.")),
    };
    // A user's own grants live in a role of theirs that is not renamed.
    if role.name.starts_with("__user_") || name.is_some_and(|n| n.starts_with("__user_")) {
        return Err(ApiError::invalid(
            "Roles named __user_<id>__ hold one user's own grants and are not renamed.",
        ));
    }
    let updated = gate.store().update_role(role.id, name, description).await?;
    let resource = format!("role:{}/{}", updated.workspace, updated.name);
    gate.changed_by(&caller, "role.update", resource).await;
    Ok(Out(json!({ "role": role_json(&updated) })))
}

/// `GET roles/users/list`: who holds a role (those who manage it may ask).
async fn role_users(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<RoleQuery>,
) -> ApiResult<Out<Value>> {
    let role = managed_role(&gate, &caller, role_id(q.role_id)?).await?;
    let rows: Vec<Value> = gate
        .store()
        .role_assignments(role.id)
        .await?
        .iter()
        .map(|a| json!({"id": a.id, "user_id": a.user_id, "role_id": a.role_id}))
        .collect();
    Ok(Out(json!({ "assignments": rows })))
}

async fn list_role_permissions(
    (Extension(caller), Extension(gate)): Ctx,
    Query(q): Query<RoleQuery>,
) -> ApiResult<Out<Value>> {
    let role = viewable_role(&gate, &caller, role_id(q.role_id)?).await?;
    let rows: Vec<Value> = role.grants.iter().map(grant_json).collect();
    Ok(Out(json!({ "role_permissions": rows })))
}

#[derive(Deserialize)]
struct AssignBody {
    username: Option<String>,
    #[serde(default, deserialize_with = "super::id")]
    role_id: Option<String>,
}

async fn assign(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<AssignBody>,
) -> ApiResult<Out<Value>> {
    let role = managed_role(&gate, &caller, role_id(b.role_id)?).await?;
    let username = required(b.username, "username")?;
    let user = gate.target(&username).await?;
    let a = gate.store().assign(user.id, role.id).await?;
    let resource = format!("role:{}/{}/{username}", role.workspace, role.name);
    gate.changed_by(&caller, "role.assign", resource).await;
    Ok(Out(
        json!({ "assignment": {"id": a.id, "user_id": a.user_id, "role_id": a.role_id} }),
    ))
}

async fn unassign(
    (Extension(caller), Extension(gate)): Ctx,
    Json(b): Json<AssignBody>,
) -> ApiResult<Out<Value>> {
    let role = managed_role(&gate, &caller, role_id(b.role_id)?).await?;
    let username = required(b.username, "username")?;
    let user = gate.target(&username).await?;
    gate.store().unassign(user.id, role.id).await?;
    let resource = format!("role:{}/{}/{username}", role.workspace, role.name);
    gate.changed_by(&caller, "role.unassign", resource).await;
    Ok(Out(json!({})))
}
