//! `ferry admin` (users and API tokens of a team server's store) and
//! `ferry audit` (its hash-chained log: list, verify, export). Both work on
//! a store directly (the project's, or `--store URL`, the one `ferry
//! server` is given), never through a server; every change is itself
//! written to the audit log, as the operator at this terminal.

use crate::cli::{AdminCommand, AuditCommand, Place};
use crate::ctx::Ctx;
use crate::exit::{self, store_err, usage};
use anyhow::Result;
use ferry_auth::audit::{self, Event};
use ferry_auth::secret;
use ferry_metadata::{AuditQuery, BlockingStore, NewUser, Token};

fn open(ctx: &Ctx, place: &Place, cmd: &str, create: bool) -> Result<BlockingStore> {
    let (url, _) = ctx.store_url(
        place,
        cmd,
        "users, tokens and the audit log are managed on the store itself",
        create,
    )?;
    Ok(BlockingStore::open(&url)?)
}

/// Who changed something from this machine's command line.
fn operator() -> String {
    ferry_metadata::cli_actor()
}

/// Records what an operator did (the outcome is always `allowed`: a
/// refused command changed nothing and is an error instead).
pub(crate) fn record(
    store: &BlockingStore,
    action: &str,
    resource: String,
    reason: Option<String>,
) -> Result<()> {
    let e = Event {
        time_ms: ferry_core::now_ms(),
        actor: operator(),
        token_id: None,
        action: action.to_owned(),
        resource,
        outcome: "allowed".into(),
        source: "local".into(),
        reason,
    };
    store
        .call(|s| Box::pin(async move { s.append_audit(&e).await }))
        .map_err(store_err)?;
    Ok(())
}

/// At `ferry server`'s start: when the store has no users and
/// `FERRY_ADMIN_PASSWORD` is set (a secret from the environment, as a
/// container is given one), makes the first server admin, named by
/// `FERRY_ADMIN_USERNAME` (default `admin`). Whether the store has users.
pub(crate) fn first_admin(store_url: &str) -> Result<bool> {
    let store = BlockingStore::open(store_url)?;
    let users = store
        .call(|s| Box::pin(async move { s.list_users().await }))
        .map_err(store_err)?;
    if !users.is_empty() {
        return Ok(true);
    }
    let Ok(password) = std::env::var("FERRY_ADMIN_PASSWORD") else {
        return Ok(false);
    };
    let username = std::env::var("FERRY_ADMIN_USERNAME").unwrap_or_else(|_| "admin".into());
    let hash = secret::hash_password(&password)
        .map_err(|e| usage(format!("FERRY_ADMIN_PASSWORD: {e}")))?;
    let u = NewUser {
        username: username.clone(),
        password_hash: Some(hash),
        is_admin: true,
        service: false,
        created_ms: ferry_core::now_ms(),
    };
    store
        .call(|s| Box::pin(async move { s.create_user(&u).await }))
        .map_err(store_err)?;
    record(&store, "user.create", format!("user:{username}"), None)?;
    eprintln!("created the first server admin `{username}` from FERRY_ADMIN_PASSWORD");
    Ok(true)
}

/// `ferry login URL`: a token from standard input, checked against the
/// server, kept for it.
pub(crate) fn login(url: &str) -> Result<u8> {
    let token = password_from_stdin()?;
    if token.trim().is_empty() {
        return Err(usage(
            "give the token on standard input (`ferry admin create-token` prints one)\nhint: `printf '%s\\n' \"$TOKEN\" | ferry login URL`",
        ));
    }
    let creds = ferry_client::Credentials::Bearer(token.trim().to_owned());
    let client =
        ferry_client::Client::with_credentials(url, &creds).map_err(|e| usage(e.to_string()))?;
    let who = client.whoami()?;
    let path = ferry_client::credentials::remember(client.url(), Some(token.trim()))?;
    eprintln!(
        "logged in to {} as `{who}` (token kept in {})",
        client.url(),
        path.display()
    );
    Ok(exit::OK)
}

/// `ferry logout URL`: forgets the kept token.
pub(crate) fn logout(url: &str) -> Result<u8> {
    let path = ferry_client::credentials::remember(url, None)?;
    eprintln!(
        "forgot the token for {} ({})",
        url.trim_end_matches('/'),
        path.display()
    );
    Ok(exit::OK)
}

/// The first line of standard input: a password given without echo or
/// shell history (`--password-stdin`).
fn password_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// A duration like `30d`, `12h` or `90m`, in milliseconds.
pub(crate) fn duration_ms(s: &str) -> Result<i64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| usage(format!("`{s}` is not a duration (e.g. 30d, 12h, 90m)")))?;
    let ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => return Err(usage(format!("`{s}`: the unit is d, h or m"))),
    };
    n.checked_mul(ms)
        .filter(|v| *v > 0)
        .ok_or_else(|| usage(format!("`{s}` is not a positive duration")))
}

pub(crate) fn admin(ctx: &Ctx, cmd: AdminCommand) -> Result<u8> {
    match cmd {
        AdminCommand::CreateUser {
            username,
            admin,
            service,
            password_stdin,
            place,
        } => {
            if username.trim().is_empty() {
                return Err(usage("the username may not be empty"));
            }
            let password_hash = match (service, password_stdin) {
                (true, true) => {
                    return Err(usage(
                        "a service account has no password: it signs in with tokens (`ferry admin create-token`)",
                    ));
                }
                (true, false) => None,
                (false, true) => Some(
                    secret::hash_password(&password_from_stdin()?)
                        .map_err(|e| usage(e.to_string()))?,
                ),
                (false, false) => {
                    return Err(usage(
                        "give the password on standard input with --password-stdin (never as an argument)\nhint: `printf '%s\\n' \"$PASSWORD\" | ferry admin create-user NAME --password-stdin`",
                    ));
                }
            };
            let store = open(ctx, &place, "ferry admin create-user", true)?;
            let u = NewUser {
                username: username.clone(),
                password_hash,
                is_admin: admin,
                service,
                created_ms: ferry_core::now_ms(),
            };
            let made = store
                .call(|s| Box::pin(async move { s.create_user(&u).await }))
                .map_err(store_err)?;
            record(&store, "user.create", format!("user:{username}"), None)?;
            eprintln!(
                "created {}{} `{}` (id {})",
                if service { "service account" } else { "user" },
                if admin { ", a server admin," } else { "" },
                made.username,
                made.id
            );
            Ok(exit::OK)
        }
        AdminCommand::ListUsers { json, place } => {
            let store = open(ctx, &place, "ferry admin list-users", false)?;
            let users = store
                .call(|s| Box::pin(async move { s.list_users().await }))
                .map_err(store_err)?;
            if json {
                crate::ui::print_json(&users)?;
            } else if users.is_empty() {
                println!("no users: the server runs without authentication on loopback");
            } else {
                for u in users {
                    let kind = match (u.is_admin, u.service) {
                        (true, _) => "admin",
                        (false, true) => "service",
                        (false, false) => "user",
                    };
                    println!("{:<24} {kind}", crate::ui::printable(&u.username));
                }
            }
            Ok(exit::OK)
        }
        AdminCommand::DeleteUser { username, place } => {
            let store = open(ctx, &place, "ferry admin delete-user", false)?;
            let name = username.clone();
            store
                .call(|s| Box::pin(async move { s.delete_user(&name, ferry_core::now_ms()).await }))
                .map_err(store_err)?;
            record(&store, "user.delete", format!("user:{username}"), None)?;
            eprintln!("deleted user `{username}`; their tokens are revoked");
            Ok(exit::OK)
        }
        AdminCommand::CreateToken {
            username,
            name,
            workspace,
            role,
            expires_in,
            place,
        } => create_token(ctx, &username, &name, workspace, role, expires_in, &place),
        AdminCommand::AddMember {
            username,
            group,
            workspace,
            role,
            place,
        } => add_member(ctx, (&username, group), &workspace, &role, &place),
        cmd @ (AdminCommand::CreateGroup { .. }
        | AdminCommand::DeleteGroup { .. }
        | AdminCommand::AddToGroup { .. }
        | AdminCommand::RemoveFromGroup { .. }
        | AdminCommand::ListGroups { .. }) => group_command(ctx, cmd),
        AdminCommand::RevokeToken { id, place } => {
            let store = open(ctx, &place, "ferry admin revoke-token", false)?;
            let tid = id.clone();
            store
                .call(|s| Box::pin(async move { s.revoke_token(&tid, ferry_core::now_ms()).await }))
                .map_err(store_err)?;
            record(&store, "token.revoke", format!("token:{id}"), None)?;
            eprintln!("revoked token {id}");
            Ok(exit::OK)
        }
        AdminCommand::Deliveries {
            endpoint,
            state,
            limit,
            json,
            place,
        } => deliveries(ctx, endpoint, state, limit, json, &place),
    }
}

/// What a delivery is about, from its body: `churn/3`, `churn@production`,
/// `churn` (a rollout: `churn/3 (deployment d1a2)`).
fn subject(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let d = &v["data"];
    let s = |k: &str| d[k].as_str().unwrap_or_default();
    let name = d["name"].as_str().or(d["model"].as_str()).unwrap_or("?");
    let mut out = name.to_owned();
    if !s("alias").is_empty() {
        out.push_str(&format!("@{}", s("alias")));
    }
    let version = d["version"].as_str().or(d["candidate_version"].as_str());
    if let Some(v) = version.filter(|_| s("alias").is_empty()) {
        out.push_str(&format!("/{v}"));
    }
    crate::ui::printable(&out).into_owned()
}

/// `ferry admin deliveries`: what was delivered where, and how it went.
fn deliveries(
    ctx: &Ctx,
    endpoint: Option<String>,
    state: Option<String>,
    limit: usize,
    json: bool,
    place: &Place,
) -> Result<u8> {
    let store = open(ctx, place, "ferry admin deliveries", false)?;
    let q = ferry_metadata::DeliveryQuery {
        endpoint,
        state: state
            .as_deref()
            .and_then(ferry_metadata::DeliveryState::parse),
        limit: limit.max(1),
    };
    let list = store
        .call(|s| Box::pin(async move { s.deliveries(&q).await }))
        .map_err(store_err)?;
    if json {
        let mut out = Vec::with_capacity(list.len());
        for d in &list {
            let (ep, id) = (d.endpoint.clone(), d.event_id.clone());
            let attempts = store
                .call(|s| Box::pin(async move { s.delivery_attempts(&ep, &id).await }))
                .map_err(store_err)?;
            let mut v = serde_json::to_value(d)?;
            v["subject"] = subject(&d.body).into();
            v["attempt_log"] = serde_json::to_value(&attempts)?;
            out.push(v);
        }
        crate::ui::print_json(&out)?;
        return Ok(exit::OK);
    }
    if list.is_empty() {
        eprintln!(
            "no webhook deliveries (`deliver:` in `ferry server --hooks FILE` configures them)"
        );
        return Ok(exit::OK);
    }
    let w = |f: &dyn Fn(&ferry_metadata::WebhookDelivery) -> usize, min: usize| {
        list.iter().map(f).max().unwrap_or(0).max(min)
    };
    let subjects: Vec<String> = list.iter().map(|d| subject(&d.body)).collect();
    let (we, wv) = (
        w(&|d| d.endpoint.len(), "ENDPOINT".len()),
        w(&|d| d.event.len(), "EVENT".len()),
    );
    let ws = subjects.iter().map(String::len).max().unwrap_or(0).max(7);
    println!(
        "{:<19}  {:<we$}  {:<wv$}  {:<ws$}  {:<9}  {:>8}  LAST",
        "EVENT TIME (UTC)", "ENDPOINT", "EVENT", "SUBJECT", "STATE", "ATTEMPTS"
    );
    for (d, subject) in list.iter().zip(&subjects) {
        let last = match (&d.last_error, d.last_status, d.state) {
            (_, _, ferry_metadata::DeliveryState::Delivered) => format!(
                "{} at {}",
                d.last_status.map_or_else(|| "?".into(), |s| s.to_string()),
                crate::ui::time(d.delivered_ms.unwrap_or_default())
            ),
            (Some(e), _, ferry_metadata::DeliveryState::Pending) => format!(
                "{}; next at {}",
                crate::ui::printable(e),
                crate::ui::time(d.next_attempt_ms)
            ),
            (Some(e), _, _) => crate::ui::printable(e).into_owned(),
            (None, _, _) => "not tried yet".into(),
        };
        println!(
            "{:<19}  {:<we$}  {:<wv$}  {:<ws$}  {:<9}  {:>8}  {last}",
            crate::ui::time(d.event_ms),
            d.endpoint,
            d.event,
            subject,
            d.state.as_str(),
            d.attempts,
        );
    }
    Ok(exit::OK)
}

/// `ferry admin create-group|delete-group|add-to-group|remove-from-group|list-groups`.
fn group_command(ctx: &Ctx, cmd: AdminCommand) -> Result<u8> {
    match cmd {
        AdminCommand::CreateGroup { name, place } => {
            let store = open(ctx, &place, "ferry admin create-group", false)?;
            let n = name.clone();
            store
                .call(|s| Box::pin(async move { s.create_group(&n).await }))
                .map_err(store_err)?;
            record(&store, "group.create", format!("group:{name}"), None)?;
            eprintln!("created group `{name}`");
            Ok(exit::OK)
        }
        AdminCommand::DeleteGroup { name, place } => {
            let store = open(ctx, &place, "ferry admin delete-group", false)?;
            let n = name.clone();
            store
                .call(|s| Box::pin(async move { s.delete_group(&n).await }))
                .map_err(store_err)?;
            record(&store, "group.delete", format!("group:{name}"), None)?;
            eprintln!("deleted group `{name}`; its members lost the roles it held");
            Ok(exit::OK)
        }
        AdminCommand::AddToGroup {
            username,
            group,
            place,
        } => group_member(ctx, &username, &group, true, &place),
        AdminCommand::RemoveFromGroup {
            username,
            group,
            place,
        } => group_member(ctx, &username, &group, false, &place),
        AdminCommand::ListGroups { json, place } => {
            let store = open(ctx, &place, "ferry admin list-groups", false)?;
            let groups = store
                .call(|s| Box::pin(async move { s.list_groups().await }))
                .map_err(store_err)?;
            if json {
                crate::ui::print_json(&groups)?;
            } else {
                for g in groups {
                    println!(
                        "{:<24} members: {}  roles: {}",
                        crate::ui::printable(&g.name),
                        crate::ui::printable(&g.members.join(", ")),
                        crate::ui::printable(&g.roles.join(", "))
                    );
                }
            }
            Ok(exit::OK)
        }
        // admin() sends only the group commands here.
        _ => Err(usage("not a group command")),
    }
}

/// Adds `username` to `group` (`join`) or takes them out.
fn group_member(ctx: &Ctx, username: &str, group: &str, join: bool, place: &Place) -> Result<u8> {
    let store = open(ctx, place, "ferry admin add-to-group", false)?;
    let (name, grp) = (username.to_owned(), group.to_owned());
    store
        .call(|s| {
            Box::pin(async move {
                let user = s
                    .get_user(&name)
                    .await?
                    .ok_or_else(|| ferry_metadata::Error::NotFound(format!("no user `{name}`")))?;
                let g = s
                    .get_group(&grp)
                    .await?
                    .ok_or_else(|| ferry_metadata::Error::NotFound(format!("no group `{grp}`")))?;
                if join {
                    s.add_to_group(g.id, user.id).await
                } else {
                    s.remove_from_group(g.id, user.id).await
                }
            })
        })
        .map_err(store_err)?;
    let action = if join { "group.join" } else { "group.leave" };
    record(&store, action, format!("group:{group}/{username}"), None)?;
    let how = if join { "is now in" } else { "is no longer in" };
    eprintln!("`{username}` {how} group `{group}`");
    Ok(exit::OK)
}

fn add_member(
    ctx: &Ctx,
    (username, group): (&str, bool),
    workspace: &str,
    role: &str,
    place: &Place,
) -> Result<u8> {
    if ferry_auth::builtin_role(role).is_none() {
        return Err(usage(format!(
            "`{role}` is not a built-in role (one of {})",
            ferry_auth::BUILTIN_ROLES.join(", ")
        )));
    }
    if workspace.trim().is_empty() {
        return Err(usage("--workspace: a workspace has a name"));
    }
    let store = open(ctx, place, "ferry admin add-member", false)?;
    let (name, ws, r) = (username.to_owned(), workspace.to_owned(), role.to_owned());
    store
        .call(|s| {
            Box::pin(async move {
                if group {
                    let g = s.get_group(&name).await?.ok_or_else(|| {
                        ferry_metadata::Error::NotFound(format!("no group `{name}`"))
                    })?;
                    let role = ferry_metadata::builtin_role_in(s, &ws, &r).await?;
                    if let Some(role) = role {
                        s.assign_group(g.id, role.id).await?;
                    }
                    return Ok(());
                }
                let user = s
                    .get_user(&name)
                    .await?
                    .ok_or_else(|| ferry_metadata::Error::NotFound(format!("no user `{name}`")))?;
                ferry_metadata::add_member(s, user.id, &ws, &r)
                    .await
                    .map(drop)
            })
        })
        .map_err(store_err)?;
    let who = if group {
        format!("group:{username}")
    } else {
        username.to_owned()
    };
    record(
        &store,
        "role.assign",
        format!("role:{workspace}/{role}/{who}"),
        None,
    )?;
    let what = if group { "group " } else { "" };
    eprintln!("{what}`{username}` is now {role} of workspace `{workspace}`");
    Ok(exit::OK)
}

fn create_token(
    ctx: &Ctx,
    username: &str,
    name: &str,
    workspace: Option<String>,
    role: Option<String>,
    expires_in: String,
    place: &Place,
) -> Result<u8> {
    if let Some(r) = &role
        && ferry_auth::builtin_role(r).is_none()
    {
        return Err(usage(format!(
            "`{r}` is not a role a token can be limited to (one of {})",
            ferry_auth::BUILTIN_ROLES.join(", ")
        )));
    }
    let ttl = duration_ms(&expires_in)?;
    let store = open(ctx, place, "ferry admin create-token", false)?;
    let who = username.to_owned();
    let user = store
        .call(|s| Box::pin(async move { s.get_user(&who).await }))
        .map_err(store_err)?
        .ok_or_else(|| usage(format!("no user `{username}`")))?;
    let issued = secret::issue_token().map_err(|e| anyhow::anyhow!(e))?;
    let now = ferry_core::now_ms();
    let t = Token {
        id: issued.id.clone(),
        user_id: user.id,
        name: name.to_owned(),
        workspace,
        role,
        secret_hash: issued.secret_hash,
        created_ms: now,
        expires_ms: Some(now + ttl),
        revoked_ms: None,
    };
    store
        .call(|s| Box::pin(async move { s.create_token(&t).await }))
        .map_err(store_err)?;
    record(
        &store,
        "token.create",
        format!("token:{}", issued.id),
        Some(format!("for {username}: {name}")),
    )?;
    eprintln!(
        "token {} for `{username}`, valid {expires_in}; it is shown once (stdout), keep it in a secret store",
        issued.id
    );
    println!("{}", issued.text);
    Ok(exit::OK)
}

pub(crate) fn audit(ctx: &Ctx, cmd: AuditCommand) -> Result<u8> {
    match cmd {
        AuditCommand::List {
            since,
            actor,
            action,
            limit,
            json,
            place,
        } => {
            let store = open(ctx, &place, "ferry audit list", false)?;
            let since_ms = since
                .as_deref()
                .map(|s| duration_ms(s).map(|d| ferry_core::now_ms() - d))
                .transpose()?;
            let q = AuditQuery {
                since_ms,
                actor,
                action,
                limit,
                ..Default::default()
            };
            let entries = store
                .call(|s| Box::pin(async move { s.audit_entries(&q).await }))
                .map_err(store_err)?;
            if json {
                crate::ui::print_json(&entries)?;
                return Ok(exit::OK);
            }
            for e in &entries {
                let ev = &e.event;
                let p = crate::ui::printable;
                println!(
                    "{:>6}  {}  {:<16} {:<28} {:<28} {}{}",
                    e.seq,
                    crate::ui::time(ev.time_ms),
                    p(&ev.actor),
                    p(&ev.action),
                    p(&ev.resource),
                    p(&ev.outcome),
                    ev.reason
                        .as_deref()
                        .map(|r| format!(" ({})", p(r)))
                        .unwrap_or_default()
                );
            }
            Ok(exit::OK)
        }
        AuditCommand::Verify { json, place } => {
            let store = open(ctx, &place, "ferry audit verify", false)?;
            let entries = store
                .call(|s| Box::pin(async move { s.audit_entries(&AuditQuery::default()).await }))
                .map_err(store_err)?;
            let head = store
                .call(|s| Box::pin(async move { s.audit_head().await }))
                .map_err(store_err)?;
            let verdict = audit::verify(&entries, head.as_ref().map(|(s, h)| (*s, h.as_str())));
            if json {
                let v = match &verdict {
                    Ok(n) => serde_json::json!({"intact": true, "entries": n}),
                    Err(b) => {
                        serde_json::json!({"intact": false, "entries": entries.len(), "break": b.to_string()})
                    }
                };
                crate::ui::print_json(&v)?;
            } else {
                match &verdict {
                    Ok(n) => println!("intact: {n} entries, each following the one before"),
                    Err(b) => println!("TAMPERED: {b}"),
                }
            }
            Ok(if verdict.is_ok() {
                exit::OK
            } else {
                exit::of_check(false)
            })
        }
        AuditCommand::Export { place } => {
            let store = open(ctx, &place, "ferry audit export", false)?;
            let entries = store
                .call(|s| Box::pin(async move { s.audit_entries(&AuditQuery::default()).await }))
                .map_err(store_err)?;
            let mut out = std::io::stdout().lock();
            for e in &entries {
                use std::io::Write;
                writeln!(out, "{}", serde_json::to_string(e)?)?;
            }
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_ms("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(duration_ms("12h").unwrap(), 12 * 3_600_000);
        assert_eq!(duration_ms("90m").unwrap(), 90 * 60_000);
        for bad in ["", "d", "30", "30s", "-1d", "0d", "99999999999999999d"] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }
}
