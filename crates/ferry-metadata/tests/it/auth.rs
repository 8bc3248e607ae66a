//! Users, roles, grants, tokens and the audit log: the same checks on every
//! backend.

use ferry_auth::audit::{self, Event};
use ferry_auth::{Grant, Permission as P, ResourceType as T};
use ferry_metadata::*;

fn new_user(name: &str, admin: bool) -> NewUser {
    NewUser {
        username: name.into(),
        password_hash: Some(format!("$argon2id$hash-of-{name}")),
        is_admin: admin,
        service: false,
        created_ms: 1,
    }
}

fn event(actor: &str, action: &str, time_ms: i64) -> Event {
    Event {
        time_ms,
        actor: actor.into(),
        token_id: None,
        action: action.into(),
        resource: "registered_model:iris".into(),
        outcome: "allowed".into(),
        source: "127.0.0.1".into(),
        reason: None,
    }
}

/// Two users, ana and bob (an admin), made and changed.
async fn users(s: &dyn MetadataStore) -> (User, User) {
    let ana = s.create_user(&new_user("ana", false)).await.unwrap();
    let bob = s.create_user(&new_user("bob", true)).await.unwrap();
    assert_ne!(ana.id, bob.id);
    let e = s.create_user(&new_user("ana", false)).await.unwrap_err();
    assert!(
        matches!(e, Error::AlreadyExists(ref m) if m == "User (username=ana) already exists."),
        "{e}"
    );
    assert_eq!(s.get_user("ana").await.unwrap().unwrap(), ana);
    assert!(s.get_user("nobody").await.unwrap().is_none());
    s.set_password("ana", "$argon2id$new").await.unwrap();
    s.set_admin("ana", true).await.unwrap();
    let got = s.get_user("ana").await.unwrap().unwrap();
    assert_eq!(
        (got.password_hash.as_deref(), got.is_admin),
        (Some("$argon2id$new"), true)
    );
    assert!(matches!(
        s.set_admin("nobody", true).await,
        Err(Error::NotFound(_))
    ));
    // The hash is never part of a user's JSON.
    assert!(!serde_json::to_string(&got).unwrap().contains("argon2id"));
    (ana, bob)
}

/// Roles hold grants; a user holds roles; grants_in is per workspace.
async fn roles_and_grants(s: &dyn MetadataStore, ana: &User, bob: &User) {
    let editors = s
        .create_role("team-a", "editors", Some("edit"))
        .await
        .unwrap();
    assert!(matches!(
        s.create_role("team-a", "editors", None).await,
        Err(Error::AlreadyExists(_))
    ));
    s.create_role("team-b", "editors", None).await.unwrap();
    let g = s
        .add_grant(editors.id, &Grant::new(T::Experiment, "*", P::Edit))
        .await
        .unwrap();
    assert!(matches!(
        s.add_grant(editors.id, &Grant::new(T::Experiment, "*", P::Read))
            .await,
        Err(Error::AlreadyExists(_))
    ));
    assert!(matches!(
        s.add_grant(editors.id, &Grant::new(T::Run, "abc", P::Read)).await,
        Err(Error::Invalid(ref m)) if m.contains("only wildcard")
    ));
    assert!(matches!(
        s.add_grant(999, &Grant::new(T::Experiment, "*", P::Read))
            .await,
        Err(Error::NotFound(_))
    ));
    s.assign(ana.id, editors.id).await.unwrap();
    assert!(matches!(
        s.assign(ana.id, editors.id).await,
        Err(Error::AlreadyExists(_))
    ));
    s.grant_user(
        ana.id,
        "team-a",
        &Grant::new(T::RegisteredModel, "iris", P::Manage),
    )
    .await
    .unwrap();
    s.grant_user(ana.id, "team-b", &Grant::new(T::Experiment, "4", P::Deny))
        .await
        .unwrap();
    let in_a = s.grants_in(ana.id, "team-a").await.unwrap();
    assert_eq!(
        in_a,
        vec![
            Grant::new(T::Experiment, "*", P::Edit),
            Grant::new(T::RegisteredModel, "iris", P::Manage)
        ]
    );
    assert_eq!(
        s.grants_in(ana.id, "team-b").await.unwrap(),
        vec![Grant::new(T::Experiment, "4", P::Deny)]
    );
    assert!(s.grants_in(bob.id, "team-a").await.unwrap().is_empty());
    let roles: Vec<String> = s
        .roles_of(ana.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(roles.len(), 3, "{roles:?}");
    assert!(roles.contains(&user_role_name(ana.id)));
    let listed = s.list_roles(Some("team-a")).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].grants[0].id, g.id);

    s.remove_grant(g.id).await.unwrap();
    assert!(matches!(
        s.remove_grant(g.id).await,
        Err(Error::NotFound(_))
    ));
    s.unassign(ana.id, editors.id).await.unwrap();
    assert!(matches!(
        s.unassign(ana.id, editors.id).await,
        Err(Error::NotFound(_))
    ));
    s.delete_role(editors.id).await.unwrap();
    assert!(s.get_role(editors.id).await.unwrap().is_none());
}

/// Tokens: kept as hashes, revoked once, and with their user.
async fn tokens_and_deletion(s: &dyn MetadataStore, ana: &User) {
    let t = Token {
        id: "0123456789abcdef".into(),
        user_id: ana.id,
        name: "ci".into(),
        workspace: Some("team-a".into()),
        role: Some("editor".into()),
        secret_hash: "ab".repeat(32),
        created_ms: 10,
        expires_ms: Some(100),
        revoked_ms: None,
    };
    s.create_token(&t).await.unwrap();
    assert!(matches!(
        s.create_token(&t).await,
        Err(Error::AlreadyExists(_))
    ));
    let got = s.get_token(&t.id).await.unwrap().unwrap();
    assert_eq!(got, t);
    assert!(got.live(99) && !got.live(100));
    assert!(
        !serde_json::to_string(&got)
            .unwrap()
            .contains(&t.secret_hash)
    );
    s.revoke_token(&t.id, 50).await.unwrap();
    s.revoke_token(&t.id, 60).await.unwrap();
    assert_eq!(
        s.get_token(&t.id).await.unwrap().unwrap().revoked_ms,
        Some(50)
    );
    assert!(matches!(
        s.revoke_token("nope", 1).await,
        Err(Error::NotFound(_))
    ));
    let t2 = Token {
        id: "fedcba9876543210".into(),
        revoked_ms: None,
        ..t.clone()
    };
    s.create_token(&t2).await.unwrap();

    s.delete_user("ana", 70).await.unwrap();
    assert!(s.get_user("ana").await.unwrap().is_none());
    assert!(s.grants_in(ana.id, "team-a").await.unwrap().is_empty());
    assert!(
        !s.list_roles(None)
            .await
            .unwrap()
            .iter()
            .any(|r| r.name == user_role_name(ana.id))
    );
    assert_eq!(
        s.get_token(&t2.id).await.unwrap().unwrap().revoked_ms,
        Some(70)
    );
    assert!(matches!(
        s.delete_user("ana", 71).await,
        Err(Error::NotFound(_))
    ));
}

async fn audit_log(s: &dyn MetadataStore) {
    assert_eq!(s.audit_head().await.unwrap(), None);
    for (i, (actor, action)) in [
        ("ana", "registered_model.alias.set"),
        ("bob", "user.create"),
        ("ana", "registered_model.alias_set"),
        ("ana", "registered_model.delete"),
    ]
    .iter()
    .enumerate()
    {
        let e = s
            .append_audit(&event(actor, action, 100 + i as i64))
            .await
            .unwrap();
        assert_eq!(e.seq, i as u64 + 1);
    }
    let all = s.audit_entries(&AuditQuery::default()).await.unwrap();
    let head = s.audit_head().await.unwrap().unwrap();
    assert_eq!(audit::verify(&all, Some((head.0, head.1.as_str()))), Ok(4));
    let by = |q: AuditQuery| async move {
        s.audit_entries(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by(AuditQuery {
            actor: Some("ana".into()),
            ..Default::default()
        })
        .await,
        [1, 3, 4]
    );
    assert_eq!(
        by(AuditQuery {
            since_ms: Some(102),
            ..Default::default()
        })
        .await,
        [3, 4]
    );
    // A prefix matches whole segments, and `_` is not a wildcard.
    assert_eq!(
        by(AuditQuery {
            action: Some("registered_model.alias".into()),
            ..Default::default()
        })
        .await,
        [1]
    );
    assert_eq!(
        by(AuditQuery {
            action: Some("registered_model".into()),
            ..Default::default()
        })
        .await,
        [1, 3, 4]
    );
    assert_eq!(
        by(AuditQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        [1, 2]
    );
    // Newest first, and on from a page's last entry.
    assert_eq!(
        by(AuditQuery {
            limit: Some(2),
            newest_first: true,
            ..Default::default()
        })
        .await,
        [4, 3]
    );
    assert_eq!(
        by(AuditQuery {
            limit: Some(2),
            newest_first: true,
            before_seq: Some(3),
            ..Default::default()
        })
        .await,
        [2, 1]
    );
}

/// Workspaces of resources, and the generation every change bumps.
async fn workspaces_and_generation(s: &dyn MetadataStore) {
    use ferry_auth::ResourceType as T;
    let g0 = s.auth_generation().await.unwrap();
    assert_eq!(s.workspace_of(T::Experiment, "7").await.unwrap(), "default");
    s.set_workspace(T::Experiment, "7", "team-a").await.unwrap();
    s.set_workspace(T::RegisteredModel, "7", "team-b")
        .await
        .unwrap();
    assert_eq!(s.workspace_of(T::Experiment, "7").await.unwrap(), "team-a");
    assert_eq!(
        s.workspace_of(T::RegisteredModel, "7").await.unwrap(),
        "team-b"
    );
    s.set_workspace(T::Experiment, "7", "default")
        .await
        .unwrap();
    assert_eq!(s.workspace_of(T::Experiment, "7").await.unwrap(), "default");
    let g1 = s.auth_generation().await.unwrap();
    assert!(g1 >= g0 + 3, "{g0} -> {g1}");
    // Every kind of change moves it; reading does not.
    let u = s.create_user(&new_user("gen", false)).await.unwrap();
    let g2 = s.auth_generation().await.unwrap();
    assert!(g2 > g1);
    s.list_users().await.unwrap();
    s.grants_in(u.id, "default").await.unwrap();
    assert_eq!(s.auth_generation().await.unwrap(), g2);
    s.set_admin("gen", true).await.unwrap();
    let g3 = s.auth_generation().await.unwrap();
    assert!(g3 > g2);
    s.append_audit(&event("gen", "x", 1)).await.unwrap();
    assert_eq!(
        s.auth_generation().await.unwrap(),
        g3,
        "an audit entry is no change of who may do what"
    );
    s.delete_user("gen", 2).await.unwrap();
    assert!(s.auth_generation().await.unwrap() > g3);
}

/// A registered model's workspace and the grants naming it follow a
/// rename; a deletion takes them away, so a model made later under the
/// name starts with none.
async fn grants_follow_a_model(s: &dyn MetadataStore) {
    use ferry_auth::{Grant, Permission, ResourceType as T};
    let u = s.create_user(&new_user("owner", false)).await.unwrap();
    s.create_registered_model("old", "", &[], 1).await.unwrap();
    s.set_workspace(T::RegisteredModel, "old", "team-a")
        .await
        .unwrap();
    let exact = Grant::new(T::RegisteredModel, "old", Permission::Manage);
    let wild = Grant::new(T::RegisteredModel, "*", Permission::Read);
    s.grant_user(u.id, "team-a", &exact).await.unwrap();
    s.grant_user(u.id, "team-a", &wild).await.unwrap();
    let g0 = s.auth_generation().await.unwrap();
    s.rename_registered_model("old", "new", 2).await.unwrap();
    assert!(s.auth_generation().await.unwrap() > g0);
    assert_eq!(
        s.workspace_of(T::RegisteredModel, "new").await.unwrap(),
        "team-a"
    );
    assert_eq!(
        s.workspace_of(T::RegisteredModel, "old").await.unwrap(),
        "default"
    );
    let mut held: Vec<String> = s
        .grants_in(u.id, "team-a")
        .await
        .unwrap()
        .iter()
        .map(|g| g.pattern.clone())
        .collect();
    held.sort();
    assert_eq!(held, ["*", "new"]);

    let g1 = s.auth_generation().await.unwrap();
    s.delete_registered_model("new").await.unwrap();
    assert!(s.auth_generation().await.unwrap() > g1);
    assert_eq!(
        s.workspace_of(T::RegisteredModel, "new").await.unwrap(),
        "default"
    );
    let held: Vec<String> = s
        .grants_in(u.id, "team-a")
        .await
        .unwrap()
        .iter()
        .map(|g| g.pattern.clone())
        .collect();
    assert_eq!(held, ["*"]);
}

/// A role renamed or described anew, a grant's level changed, and who
/// holds a role.
async fn roles_change_in_place(s: &dyn MetadataStore) {
    use ferry_auth::{Grant, Permission, ResourceType as T};
    let u = s.create_user(&new_user("holder", false)).await.unwrap();
    let r = s.create_role("team-z", "first", None).await.unwrap();
    s.create_role("team-z", "taken", None).await.unwrap();
    let g = s
        .add_grant(r.id, &Grant::new(T::Experiment, "*", Permission::Read))
        .await
        .unwrap();
    let g0 = s.auth_generation().await.unwrap();
    let renamed = s.update_role(r.id, Some("second"), None).await.unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.description.as_deref()),
        ("second", None)
    );
    let described = s.update_role(r.id, None, Some("why")).await.unwrap();
    assert_eq!(
        (described.name.as_str(), described.description.as_deref()),
        ("second", Some("why"))
    );
    assert!(matches!(
        s.update_role(r.id, Some("taken"), None).await,
        Err(ferry_metadata::Error::AlreadyExists(_))
    ));
    assert!(matches!(
        s.update_role(9999, Some("x"), None).await,
        Err(ferry_metadata::Error::NotFound(_))
    ));
    let changed = s
        .set_grant_permission(g.id, Permission::Edit)
        .await
        .unwrap();
    assert_eq!(
        (changed.id, changed.grant.permission),
        (g.id, Permission::Edit)
    );
    assert!(matches!(
        s.set_grant_permission(9999, Permission::Edit).await,
        Err(ferry_metadata::Error::NotFound(_))
    ));
    assert!(s.auth_generation().await.unwrap() > g0);
    assert!(s.role_assignments(r.id).await.unwrap().is_empty());
    s.assign(u.id, r.id).await.unwrap();
    let held = s.role_assignments(r.id).await.unwrap();
    assert_eq!(
        (held.len(), held[0].user_id, held[0].role_id),
        (1, u.id, r.id)
    );
}

/// A group's roles reach its members' grants and memberships, and leave
/// with the member, the role or the group.
async fn groups_hold_roles(s: &dyn MetadataStore) {
    use ferry_auth::ResourceType as T;
    let u = s.create_user(&new_user("grouped", false)).await.unwrap();
    let g = s.create_group("data-team").await.unwrap();
    assert!(matches!(
        s.create_group("data-team").await,
        Err(ferry_metadata::Error::AlreadyExists(_))
    ));
    let role = ferry_metadata::builtin_role_in(s, "team-g", "editor")
        .await
        .unwrap()
        .unwrap();
    assert!(s.grants_in(u.id, "team-g").await.unwrap().is_empty());
    let g0 = s.auth_generation().await.unwrap();
    s.assign_group(g.id, role.id).await.unwrap();
    s.assign_group(g.id, role.id).await.unwrap();
    s.add_to_group(g.id, u.id).await.unwrap();
    s.add_to_group(g.id, u.id).await.unwrap();
    assert!(s.auth_generation().await.unwrap() > g0);
    let held = s.grants_in(u.id, "team-g").await.unwrap();
    assert!(
        held.iter().any(|gr| gr.resource_type == T::Experiment),
        "{held:?}"
    );
    assert_eq!(
        s.roles_of(u.id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.workspace.as_str())
            .collect::<Vec<_>>(),
        ["team-g"]
    );
    let listed = s.get_group("data-team").await.unwrap().unwrap();
    assert_eq!(
        (listed.members, listed.roles),
        (vec!["grouped".to_owned()], vec!["team-g/editor".to_owned()])
    );
    s.remove_from_group(g.id, u.id).await.unwrap();
    assert!(s.grants_in(u.id, "team-g").await.unwrap().is_empty());
    s.add_to_group(g.id, u.id).await.unwrap();
    s.delete_group("data-team").await.unwrap();
    assert!(s.grants_in(u.id, "team-g").await.unwrap().is_empty());
    assert!(
        s.list_groups()
            .await
            .unwrap()
            .iter()
            .all(|g| g.name != "data-team")
    );
}

pub async fn conformance(s: &dyn MetadataStore) {
    let (ana, bob) = users(s).await;
    roles_and_grants(s, &ana, &bob).await;
    tokens_and_deletion(s, &ana).await;
    audit_log(s).await;
    workspaces_and_generation(s).await;
    grants_follow_a_model(s).await;
    roles_change_in_place(s).await;
    groups_hold_roles(s).await;
}
