//! [`AuthStore`] over SQL: users, roles and their grants, assignments,
//! tokens, and the audit log with its head (schema 11). Ids are allocated
//! as the next number inside the writing transaction, as experiments' are.

use crate::row::{col_i64, col_opt_i64, col_opt_str, col_str, query_error};
use crate::{Error, Result, SqlStore};
use ferry_auth::audit::{Entry, Event};
use ferry_auth::{Grant, Permission, ResourceType};
use ferry_records::*;
use sqlx::any::AnyRow;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

fn user(r: &AnyRow) -> User {
    User {
        id: col_i64(r, "user_id"),
        username: col_str(r, "username"),
        is_admin: col_i64(r, "is_admin") != 0,
        password_hash: col_opt_str(r, "password_hash"),
        service: col_i64(r, "service") != 0,
        created_ms: col_i64(r, "created_ms"),
    }
}

/// A grant row; one whose type or level this ferry does not know (written
/// by a newer one) is an error rather than silently nothing.
fn grant(r: &AnyRow) -> Result<RoleGrant> {
    let bad = |e: ferry_auth::GrantError| Error::Invalid(format!("a stored grant: {e}"));
    Ok(RoleGrant {
        id: col_i64(r, "grant_id"),
        role_id: col_i64(r, "role_id"),
        grant: Grant {
            resource_type: ResourceType::parse(&col_str(r, "resource_type")).map_err(bad)?,
            pattern: col_str(r, "pattern"),
            permission: Permission::parse(&col_str(r, "permission")).map_err(bad)?,
        },
    })
}

fn token(r: &AnyRow) -> Token {
    Token {
        id: col_str(r, "token_id"),
        user_id: col_i64(r, "user_id"),
        name: col_str(r, "name"),
        workspace: col_opt_str(r, "workspace"),
        role: col_opt_str(r, "role"),
        secret_hash: col_str(r, "secret_hash"),
        created_ms: col_i64(r, "created_ms"),
        expires_ms: col_opt_i64(r, "expires_ms"),
        revoked_ms: col_opt_i64(r, "revoked_ms"),
    }
}

fn entry(r: &AnyRow) -> Entry {
    Entry {
        seq: col_i64(r, "seq") as u64,
        event: Event {
            time_ms: col_i64(r, "time_ms"),
            actor: col_str(r, "actor"),
            token_id: col_opt_str(r, "token_id"),
            action: col_str(r, "action"),
            resource: col_str(r, "resource"),
            outcome: col_str(r, "outcome"),
            source: col_str(r, "source"),
            reason: col_opt_str(r, "reason"),
        },
        prev: col_str(r, "prev"),
        hash: col_str(r, "hash"),
    }
}

/// The next id of `table`'s `column`, inside the writing transaction.
async fn next_id(tx: &mut Tx, table: &str, column: &str) -> Result<i64> {
    let sql = format!("SELECT COALESCE(MAX({column}), 0) AS n FROM {table}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut **tx)
        .await
        .map_err(query_error("allocate an id"))?;
    Ok(col_i64(&row, "n") + 1)
}

/// A unique constraint broken by an insert is `AlreadyExists(what)`.
fn exists(what: String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::AlreadyExists(what),
        _ => query_error("insert")(e),
    }
}

async fn commit(tx: Tx) -> Result<()> {
    tx.commit().await.map_err(query_error("commit"))
}

/// The roles user `$1` holds: directly, or through a group they are in.
const HELD_ROLES: &str = "SELECT role_id FROM auth_assignments WHERE user_id = $1 \
     UNION SELECT gr.role_id FROM auth_group_roles gr \
     JOIN auth_group_members m ON m.group_id = gr.group_id WHERE m.user_id = $1";

/// Bumps the auth generation, which servers poll to drop what they cached
/// of users, tokens, grants and workspaces.
const BUMP: &str = "UPDATE auth_generation SET n = n + 1 WHERE one = 1";

/// Commits a change to who may do what, with the generation bumped in the
/// same transaction.
async fn commit_changed(mut tx: Tx) -> Result<()> {
    bump(&mut tx).await?;
    commit(tx).await
}

/// [`BUMP`] inside `tx` (a change elsewhere that moves grants or
/// workspaces: a registered model renamed or deleted).
pub(crate) async fn bump(tx: &mut Tx) -> Result<()> {
    sqlx::query(BUMP)
        .execute(&mut **tx)
        .await
        .map_err(query_error("bump the auth generation"))?;
    Ok(())
}

impl SqlStore {
    async fn user_id(&self, tx: &mut Tx, username: &str) -> Result<i64> {
        let row = sqlx::query("SELECT user_id FROM auth_users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut **tx)
            .await
            .map_err(query_error("find a user"))?;
        row.map(|r| col_i64(&r, "user_id"))
            .ok_or_else(|| Error::NotFound(format!("User with username={username} not found")))
    }

    async fn roles_where(&self, clause: &str, bind: Option<BindValue<'_>>) -> Result<Vec<Role>> {
        let sql = format!(
            "SELECT role_id, workspace, name, description FROM auth_roles {clause} ORDER BY role_id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        q = match bind {
            Some(BindValue::Int(i)) => q.bind(i),
            Some(BindValue::Text(s)) => q.bind(s.to_owned()),
            None => q,
        };
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list roles"))?;
        let mut roles: Vec<Role> = rows
            .iter()
            .map(|r| Role {
                id: col_i64(r, "role_id"),
                name: col_str(r, "name"),
                workspace: col_str(r, "workspace"),
                description: col_opt_str(r, "description"),
                grants: Vec::new(),
            })
            .collect();
        for role in &mut roles {
            let rows = sqlx::query(
                "SELECT grant_id, role_id, resource_type, pattern, permission FROM auth_role_grants \
                 WHERE role_id = $1 ORDER BY grant_id",
            )
            .bind(role.id)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list a role's grants"))?;
            role.grants = rows.iter().map(grant).collect::<Result<_>>()?;
        }
        Ok(roles)
    }

    /// Groups, with their members and roles, `clause` binding `bind`.
    async fn groups_where(&self, clause: &str, bind: Option<&str>) -> Result<Vec<Group>> {
        let sql = format!("SELECT group_id, name FROM auth_groups {clause} ORDER BY name");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(b) = bind {
            q = q.bind(b.to_owned());
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list groups"))?;
        let mut groups = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = col_i64(r, "group_id");
            let names = |sql: &'static str| async move {
                let rows = sqlx::query(sql)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_error("read a group"))?;
                let mut v: Vec<String> = rows.iter().map(|r| col_str(r, "n")).collect();
                v.sort();
                Ok::<_, Error>(v)
            };
            groups.push(Group {
                id,
                name: col_str(r, "name"),
                members: names(
                    "SELECT u.username AS n FROM auth_group_members m \
                     JOIN auth_users u ON u.user_id = m.user_id WHERE m.group_id = $1",
                )
                .await?,
                roles: names(
                    "SELECT r.workspace || '/' || r.name AS n FROM auth_group_roles g \
                     JOIN auth_roles r ON r.role_id = g.role_id WHERE g.group_id = $1",
                )
                .await?,
            });
        }
        Ok(groups)
    }

    /// Links a group to a user or a role (`table`'s `column`), once.
    async fn link_group(&self, table: &str, column: &str, group_id: i64, other: i64) -> Result<()> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let sql = format!(
            "INSERT INTO {table} (group_id, {column}) SELECT $1, $2 WHERE NOT EXISTS \
             (SELECT 1 FROM {table} WHERE group_id = $1 AND {column} = $2)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(group_id)
            .bind(other)
            .execute(&mut *tx)
            .await
            .map_err(query_error("link a group"))?;
        commit_changed(tx).await
    }

    /// Runs an update of one user's row: `NotFound` when there is no such user.
    async fn update_user(
        &self,
        q: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
        username: &str,
        what: &'static str,
    ) -> Result<()> {
        let done = q.execute(&self.pool).await.map_err(query_error(what))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "User with username={username} not found"
            )));
        }
        self.bump().await
    }

    /// [`BUMP`] on its own, after a change made without a transaction.
    async fn bump(&self) -> Result<()> {
        sqlx::query(BUMP)
            .execute(&self.pool)
            .await
            .map_err(query_error("bump the auth generation"))?;
        Ok(())
    }

    async fn insert_grant(&self, tx: &mut Tx, role_id: i64, g: &Grant) -> Result<RoleGrant> {
        ferry_auth::validate_grant(g.resource_type, &g.pattern, g.permission)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let id = next_id(tx, "auth_role_grants", "grant_id").await?;
        sqlx::query(
            "INSERT INTO auth_role_grants (grant_id, role_id, resource_type, pattern, permission) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(role_id)
        .bind(g.resource_type.as_str())
        .bind(g.pattern.clone())
        .bind(g.permission.as_str())
        .execute(&mut **tx)
        .await
        .map_err(exists(format!(
            "Permission on resource_type={}, resource_id={} already exists.",
            g.resource_type, g.pattern
        )))?;
        Ok(RoleGrant {
            id,
            role_id,
            grant: g.clone(),
        })
    }
}

enum BindValue<'a> {
    Int(i64),
    Text(&'a str),
}

#[async_trait::async_trait]
impl AuthStore for SqlStore {
    async fn create_user(&self, u: &NewUser) -> Result<User> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let id = next_id(&mut tx, "auth_users", "user_id").await?;
        sqlx::query(
            "INSERT INTO auth_users (user_id, username, password_hash, is_admin, service, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(u.username.clone())
        .bind(u.password_hash.clone())
        .bind(i64::from(u.is_admin))
        .bind(i64::from(u.service))
        .bind(u.created_ms)
        .execute(&mut *tx)
        .await
        .map_err(exists(format!("User (username={}) already exists.", u.username)))?;
        commit_changed(tx).await?;
        Ok(User {
            id,
            username: u.username.clone(),
            is_admin: u.is_admin,
            password_hash: u.password_hash.clone(),
            service: u.service,
            created_ms: u.created_ms,
        })
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM auth_users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("get a user"))?;
        Ok(row.as_ref().map(user))
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM auth_users ORDER BY user_id")
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("list users"))?;
        Ok(rows.iter().map(user).collect())
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> Result<()> {
        let q = sqlx::query("UPDATE auth_users SET password_hash = $1 WHERE username = $2")
            .bind(password_hash.to_owned())
            .bind(username.to_owned());
        self.update_user(q, username, "set a password").await
    }

    async fn set_admin(&self, username: &str, is_admin: bool) -> Result<()> {
        let q = sqlx::query("UPDATE auth_users SET is_admin = $1 WHERE username = $2")
            .bind(i64::from(is_admin))
            .bind(username.to_owned());
        self.update_user(q, username, "set the admin flag").await
    }

    async fn delete_user(&self, username: &str, now_ms: i64) -> Result<()> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let id = self.user_id(&mut tx, username).await?;
        let own = user_role_name(id);
        let fail = query_error("delete a user");
        sqlx::query(
            "DELETE FROM auth_role_grants WHERE role_id IN (SELECT role_id FROM auth_roles WHERE name = $1)",
        )
        .bind(own.clone())
        .execute(&mut *tx)
        .await
        .map_err(query_error("delete a user's grants"))?;
        sqlx::query(
            "DELETE FROM auth_assignments WHERE user_id = $1 OR role_id IN (SELECT role_id FROM auth_roles WHERE name = $2)",
        )
        .bind(id)
        .bind(own.clone())
        .execute(&mut *tx)
        .await
        .map_err(query_error("delete a user's roles"))?;
        sqlx::query("DELETE FROM auth_roles WHERE name = $1")
            .bind(own)
            .execute(&mut *tx)
            .await
            .map_err(query_error("delete a user's roles"))?;
        sqlx::query("DELETE FROM auth_group_members WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("take a user out of their groups"))?;
        sqlx::query(
            "UPDATE auth_tokens SET revoked_ms = $1 WHERE user_id = $2 AND revoked_ms IS NULL",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(query_error("revoke a user's tokens"))?;
        sqlx::query("DELETE FROM auth_users WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        commit_changed(tx).await
    }

    async fn create_role(
        &self,
        workspace: &str,
        name: &str,
        description: Option<&str>,
    ) -> Result<Role> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let id = next_id(&mut tx, "auth_roles", "role_id").await?;
        sqlx::query(
            "INSERT INTO auth_roles (role_id, workspace, name, description) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(workspace.to_owned())
        .bind(name.to_owned())
        .bind(description.map(str::to_owned))
        .execute(&mut *tx)
        .await
        .map_err(exists(format!(
            "Role (name={name}) already exists in workspace {workspace}."
        )))?;
        commit_changed(tx).await?;
        Ok(Role {
            id,
            name: name.to_owned(),
            workspace: workspace.to_owned(),
            description: description.map(str::to_owned),
            grants: Vec::new(),
        })
    }

    async fn get_role(&self, id: i64) -> Result<Option<Role>> {
        Ok(self
            .roles_where("WHERE role_id = $1", Some(BindValue::Int(id)))
            .await?
            .pop())
    }

    async fn list_roles(&self, workspace: Option<&str>) -> Result<Vec<Role>> {
        match workspace {
            Some(w) => {
                self.roles_where("WHERE workspace = $1", Some(BindValue::Text(w)))
                    .await
            }
            None => self.roles_where("", None).await,
        }
    }

    async fn delete_role(&self, id: i64) -> Result<()> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let done = sqlx::query("DELETE FROM auth_roles WHERE role_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("delete a role"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("Role with id={id} not found")));
        }
        for sql in [
            "DELETE FROM auth_role_grants WHERE role_id = $1",
            "DELETE FROM auth_assignments WHERE role_id = $1",
            "DELETE FROM auth_group_roles WHERE role_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("delete a role"))?;
        }
        commit_changed(tx).await
    }

    async fn update_role(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Role> {
        let Some(role) = self.get_role(id).await? else {
            return Err(Error::NotFound(format!("Role with id={id} not found")));
        };
        let name = name.unwrap_or(&role.name).to_owned();
        let description = description
            .map(str::to_owned)
            .or_else(|| role.description.clone());
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        sqlx::query("UPDATE auth_roles SET name = $1, description = $2 WHERE role_id = $3")
            .bind(name.clone())
            .bind(description)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(exists(format!(
                "Role with name={name} already exists in workspace {}.",
                role.workspace
            )))?;
        commit_changed(tx).await?;
        self.get_role(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Role with id={id} not found")))
    }

    async fn set_grant_permission(
        &self,
        grant_id: i64,
        permission: ferry_auth::Permission,
    ) -> Result<RoleGrant> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let done = sqlx::query("UPDATE auth_role_grants SET permission = $1 WHERE grant_id = $2")
            .bind(permission.as_str().to_owned())
            .bind(grant_id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("change a grant"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "Role permission with id={grant_id} not found"
            )));
        }
        let row = sqlx::query(
            "SELECT grant_id, role_id, resource_type, pattern, permission FROM auth_role_grants \
             WHERE grant_id = $1",
        )
        .bind(grant_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error("read a grant"))?;
        let changed = grant(&row)?;
        commit_changed(tx).await?;
        Ok(changed)
    }

    async fn role_assignments(&self, role_id: i64) -> Result<Vec<Assignment>> {
        let rows = sqlx::query(
            "SELECT assignment_id, user_id, role_id FROM auth_assignments \
             WHERE role_id = $1 ORDER BY assignment_id",
        )
        .bind(role_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("list a role's users"))?;
        Ok(rows
            .iter()
            .map(|r| Assignment {
                id: col_i64(r, "assignment_id"),
                user_id: col_i64(r, "user_id"),
                role_id: col_i64(r, "role_id"),
            })
            .collect())
    }

    async fn create_group(&self, name: &str) -> Result<Group> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let id = next_id(&mut tx, "auth_groups", "group_id").await?;
        sqlx::query("INSERT INTO auth_groups (group_id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(name.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(exists(format!("Group {name} already exists.")))?;
        commit_changed(tx).await?;
        self.get_group(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no group `{name}`")))
    }

    async fn get_group(&self, name: &str) -> Result<Option<Group>> {
        Ok(self
            .groups_where("WHERE name = $1", Some(name))
            .await?
            .pop())
    }

    async fn list_groups(&self) -> Result<Vec<Group>> {
        self.groups_where("", None).await
    }

    async fn delete_group(&self, name: &str) -> Result<()> {
        let Some(g) = self.get_group(name).await? else {
            return Err(Error::NotFound(format!("no group `{name}`")));
        };
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        for sql in [
            "DELETE FROM auth_group_members WHERE group_id = $1",
            "DELETE FROM auth_group_roles WHERE group_id = $1",
            "DELETE FROM auth_groups WHERE group_id = $1",
        ] {
            sqlx::query(sql)
                .bind(g.id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("delete a group"))?;
        }
        commit_changed(tx).await
    }

    async fn add_to_group(&self, group_id: i64, user_id: i64) -> Result<()> {
        self.link_group("auth_group_members", "user_id", group_id, user_id)
            .await
    }

    async fn remove_from_group(&self, group_id: i64, user_id: i64) -> Result<()> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        sqlx::query("DELETE FROM auth_group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(query_error("leave a group"))?;
        commit_changed(tx).await
    }

    async fn assign_group(&self, group_id: i64, role_id: i64) -> Result<()> {
        self.link_group("auth_group_roles", "role_id", group_id, role_id)
            .await
    }

    async fn group_roles(&self, name: &str) -> Result<Vec<Role>> {
        self.roles_where(
            "WHERE role_id IN (SELECT gr.role_id FROM auth_group_roles gr \
             JOIN auth_groups g ON g.group_id = gr.group_id WHERE g.name = $1)",
            Some(BindValue::Text(name)),
        )
        .await
    }

    async fn add_grant(&self, role_id: i64, g: &Grant) -> Result<RoleGrant> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let found = sqlx::query("SELECT role_id FROM auth_roles WHERE role_id = $1")
            .bind(role_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error("find a role"))?;
        if found.is_none() {
            return Err(Error::NotFound(format!("Role with id={role_id} not found")));
        }
        let made = self.insert_grant(&mut tx, role_id, g).await?;
        commit_changed(tx).await?;
        Ok(made)
    }

    async fn remove_grant(&self, grant_id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM auth_role_grants WHERE grant_id = $1")
            .bind(grant_id)
            .execute(&self.pool)
            .await
            .map_err(query_error("remove a grant"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "Role permission with id={grant_id} not found"
            )));
        }
        self.bump().await
    }

    async fn grant_user(&self, user_id: i64, workspace: &str, g: &Grant) -> Result<RoleGrant> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let name = user_role_name(user_id);
        let found =
            sqlx::query("SELECT role_id FROM auth_roles WHERE workspace = $1 AND name = $2")
                .bind(workspace.to_owned())
                .bind(name.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error("find a user's role"))?;
        let role_id = match found {
            Some(r) => col_i64(&r, "role_id"),
            None => {
                let id = next_id(&mut tx, "auth_roles", "role_id").await?;
                sqlx::query(
                    "INSERT INTO auth_roles (role_id, workspace, name, description) VALUES ($1, $2, $3, NULL)",
                )
                .bind(id)
                .bind(workspace.to_owned())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(query_error("make a user's role"))?;
                let aid = next_id(&mut tx, "auth_assignments", "assignment_id").await?;
                sqlx::query(
                    "INSERT INTO auth_assignments (assignment_id, user_id, role_id) VALUES ($1, $2, $3)",
                )
                .bind(aid)
                .bind(user_id)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(query_error("assign a user's role"))?;
                id
            }
        };
        let made = self.insert_grant(&mut tx, role_id, g).await?;
        commit_changed(tx).await?;
        Ok(made)
    }

    async fn assign(&self, user_id: i64, role_id: i64) -> Result<Assignment> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let id = next_id(&mut tx, "auth_assignments", "assignment_id").await?;
        sqlx::query(
            "INSERT INTO auth_assignments (assignment_id, user_id, role_id) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(user_id)
        .bind(role_id)
        .execute(&mut *tx)
        .await
        .map_err(exists(format!(
            "User with id={user_id} already has role {role_id}."
        )))?;
        commit_changed(tx).await?;
        Ok(Assignment {
            id,
            user_id,
            role_id,
        })
    }

    async fn unassign(&self, user_id: i64, role_id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM auth_assignments WHERE user_id = $1 AND role_id = $2")
            .bind(user_id)
            .bind(role_id)
            .execute(&self.pool)
            .await
            .map_err(query_error("unassign a role"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!(
                "User with id={user_id} does not have role {role_id}."
            )));
        }
        self.bump().await
    }

    async fn roles_of(&self, user_id: i64) -> Result<Vec<Role>> {
        let held = format!("WHERE role_id IN ({HELD_ROLES})");
        self.roles_where(&held, Some(BindValue::Int(user_id))).await
    }

    async fn grants_in(&self, user_id: i64, workspace: &str) -> Result<Vec<Grant>> {
        let rows = sqlx::query(
            "SELECT g.grant_id, g.role_id, g.resource_type, g.pattern, g.permission \
             FROM auth_role_grants g \
             JOIN auth_roles r ON r.role_id = g.role_id \
             WHERE r.workspace = $2 AND r.role_id IN (SELECT role_id FROM auth_assignments WHERE user_id = $1 \
               UNION SELECT gr.role_id FROM auth_group_roles gr \
               JOIN auth_group_members m ON m.group_id = gr.group_id WHERE m.user_id = $1) \
             ORDER BY g.grant_id",
        )
        .bind(user_id)
        .bind(workspace.to_owned())
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("read a user's grants"))?;
        rows.iter().map(|r| grant(r).map(|g| g.grant)).collect()
    }

    async fn create_token(&self, t: &Token) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_tokens (token_id, user_id, name, workspace, role, secret_hash, created_ms, expires_ms, revoked_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(t.id.clone())
        .bind(t.user_id)
        .bind(t.name.clone())
        .bind(t.workspace.clone())
        .bind(t.role.clone())
        .bind(t.secret_hash.clone())
        .bind(t.created_ms)
        .bind(t.expires_ms)
        .bind(t.revoked_ms)
        .execute(&self.pool)
        .await
        .map_err(exists(format!("Token {} already exists.", t.id)))?;
        self.bump().await
    }

    async fn get_token(&self, id: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT * FROM auth_tokens WHERE token_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("get a token"))?;
        Ok(row.as_ref().map(token))
    }

    async fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        let rows = sqlx::query(
            "SELECT * FROM auth_tokens WHERE user_id = $1 ORDER BY created_ms, token_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("list tokens"))?;
        Ok(rows.iter().map(token).collect())
    }

    async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE auth_tokens SET revoked_ms = COALESCE(revoked_ms, $1) WHERE token_id = $2",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(query_error("revoke a token"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("Token {id} not found")));
        }
        self.bump().await
    }

    async fn auth_generation(&self) -> Result<i64> {
        let row = sqlx::query("SELECT n FROM auth_generation WHERE one = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read the auth generation"))?;
        Ok(row.map_or(0, |r| col_i64(&r, "n")))
    }

    async fn set_workspace(&self, rt: ResourceType, id: &str, workspace: &str) -> Result<()> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        sqlx::query("DELETE FROM auth_workspaces WHERE resource_type = $1 AND resource_id = $2")
            .bind(rt.as_str())
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(query_error("set a workspace"))?;
        if workspace != DEFAULT_WORKSPACE {
            sqlx::query(
                "INSERT INTO auth_workspaces (resource_type, resource_id, workspace) VALUES ($1, $2, $3)",
            )
            .bind(rt.as_str())
            .bind(id.to_owned())
            .bind(workspace.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(query_error("set a workspace"))?;
        }
        commit_changed(tx).await
    }

    async fn workspace_of(&self, rt: ResourceType, id: &str) -> Result<String> {
        let row = sqlx::query(
            "SELECT workspace FROM auth_workspaces WHERE resource_type = $1 AND resource_id = $2",
        )
        .bind(rt.as_str())
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("read a workspace"))?;
        Ok(row.map_or_else(
            || DEFAULT_WORKSPACE.to_owned(),
            |r| col_str(&r, "workspace"),
        ))
    }

    async fn append_audit(&self, event: &Event) -> Result<Entry> {
        let mut tx = self.begin().await.map_err(query_error("begin"))?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE one = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(query_error("read the audit head"))?
            .map(|r| (col_i64(&r, "seq") as u64, col_str(&r, "hash")));
        let e =
            ferry_auth::audit::seal(head.as_ref().map(|(s, h)| (*s, h.as_str())), event.clone());
        sqlx::query(
            "INSERT INTO audit_log (seq, time_ms, actor, token_id, action, resource, outcome, source, reason, prev, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(e.seq as i64)
        .bind(e.event.time_ms)
        .bind(e.event.actor.clone())
        .bind(e.event.token_id.clone())
        .bind(e.event.action.clone())
        .bind(e.event.resource.clone())
        .bind(e.event.outcome.clone())
        .bind(e.event.source.clone())
        .bind(e.event.reason.clone())
        .bind(e.prev.clone())
        .bind(e.hash.clone())
        .execute(&mut *tx)
        .await
        .map_err(query_error("append to the audit log"))?;
        let sql = if head.is_some() {
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE one = 1"
        } else {
            "INSERT INTO audit_head (one, seq, hash) VALUES (1, $1, $2)"
        };
        sqlx::query(sql)
            .bind(e.seq as i64)
            .bind(e.hash.clone())
            .execute(&mut *tx)
            .await
            .map_err(query_error("move the audit head"))?;
        commit(tx).await?;
        Ok(e)
    }

    async fn audit_entries(&self, q: &AuditQuery) -> Result<Vec<Entry>> {
        // Only the filters given, so no parameter is a bare NULL whose type
        // PostgreSQL cannot infer.
        let mut clauses = Vec::new();
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        if q.since_ms.is_some() {
            clauses.push(format!("time_ms >= {}", param()));
        }
        if q.actor.is_some() {
            clauses.push(format!("actor = {}", param()));
        }
        if q.action.is_some() {
            let (exact, prefix) = (param(), param());
            clauses.push(format!(
                "(action = {exact} OR action LIKE {prefix} ESCAPE '\\')"
            ));
        }
        if q.before_seq.is_some() {
            clauses.push(format!("seq < {}", param()));
        }
        let limit = param();
        let sql = format!(
            "SELECT * FROM audit_log {} {} ORDER BY seq {} LIMIT {limit}",
            if clauses.is_empty() { "" } else { "WHERE" },
            clauses.join(" AND "),
            if q.newest_first { "DESC" } else { "ASC" }
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(t) = q.since_ms {
            query = query.bind(t);
        }
        if let Some(a) = &q.actor {
            query = query.bind(a.clone());
        }
        if let Some(a) = &q.action {
            let escaped = a
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            query = query.bind(a.clone()).bind(format!("{escaped}.%"));
        }
        if let Some(b) = q.before_seq {
            query = query.bind(b.min(i64::MAX as u64) as i64);
        }
        let limit = q.limit.map_or(i64::MAX, |l| l.min(i64::MAX as u64) as i64);
        let rows = query
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(query_error("read the audit log"))?;
        Ok(rows.iter().map(entry).collect())
    }

    async fn audit_head(&self) -> Result<Option<(u64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE one = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(query_error("read the audit head"))?;
        Ok(row.map(|r| (col_i64(&r, "seq") as u64, col_str(&r, "hash"))))
    }
}
