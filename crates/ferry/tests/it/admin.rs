//! `ferry admin` and `ferry audit` on a store, as an operator uses them:
//! users and tokens made and removed, each change in the audit log, and a
//! log edited behind ferry's back found by `audit verify`.

use crate::support::*;
use std::io::Write;
use std::process::Stdio;

fn with_stdin(p: &Proj, args: &[&str], input: &str) -> Out {
    with_env(p, args, &[], input)
}

/// Runs one statement on the project's store, behind ferry's back.
fn tamper(p: &Proj, sql: &'static str) {
    let url = format!("sqlite://{}", p.path().join(".ferry/ferry.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = ferry_metadata::SqlStore::open(&url).await.unwrap();
        s.raw_execute(sql).await.unwrap();
    });
}

/// `field` of every object of the JSON array a command printed.
fn each(o: &Out, field: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn users_and_tokens_are_managed_and_every_change_is_in_a_verifiable_log() {
    let p = Proj::new("");
    let o = p.ferry(&["admin", "create-user", "ana"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("--password-stdin (never as an argument)"),
        "{o:?}"
    );
    let o = with_stdin(
        &p,
        &["admin", "create-user", "ana", "--password-stdin"],
        "short\n",
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr
            .contains("Password must be at least 12 characters."),
        "{o:?}"
    );
    let o = with_stdin(
        &p,
        &["admin", "create-user", "ana", "--admin", "--password-stdin"],
        "a long enough password\n",
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = with_stdin(
        &p,
        &["admin", "create-user", "ana", "--password-stdin"],
        "another long password\n",
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("User (username=ana) already exists."),
        "{o:?}"
    );
    assert_eq!(
        p.ferry(&["admin", "create-user", "ci-bot", "--service"])
            .code,
        0
    );

    let o = p.ferry(&["admin", "list-users", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(each(&o, "username"), ["ana", "ci-bot"]);
    assert!(
        !o.stdout.contains("argon2"),
        "no hash leaves the store: {o:?}"
    );

    let o = p.ferry(&[
        "admin",
        "create-token",
        "ci-bot",
        "--name",
        "ci",
        "--role",
        "owner",
    ]);
    assert_eq!(o.code, 2, "{o:?}");
    let o = p.ferry(&[
        "admin",
        "create-token",
        "ci-bot",
        "--name",
        "ci",
        "--role",
        "editor",
        "--expires-in",
        "30d",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let token = o.stdout.trim();
    assert!(
        token.starts_with("ferry_") && token.len() == 6 + 16 + 1 + 64,
        "{token}"
    );
    let id = &token[6..22];
    let o = p.ferry(&["admin", "revoke-token", id]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        p.ferry(&["admin", "revoke-token", "0000000000000000"]).code,
        2
    );
    assert_eq!(p.ferry(&["admin", "delete-user", "ci-bot"]).code, 0);

    let o = p.ferry(&["audit", "list", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(
        each(&o, "action"),
        [
            "user.create",
            "user.create",
            "token.create",
            "token.revoke",
            "user.delete"
        ]
    );
    assert!(
        !o.stdout.contains(&token[23..]),
        "the secret is never logged"
    );
    let o = p.ferry(&["audit", "list", "--action", "token"]);
    assert_eq!(o.stdout.lines().count(), 2, "{o:?}");
    let o = p.ferry(&["audit", "verify"]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (0, "intact: 5 entries, each following the one before"),
        "{o:?}"
    );
    let o = p.ferry(&["audit", "export"]);
    assert_eq!(o.stdout.lines().count(), 5, "{o:?}");

    tamper(&p, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2");
    let o = p.ferry(&["audit", "verify", "--json"]);
    assert_eq!(o.code, 3, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["intact"], false);
    assert_eq!(
        v["break"],
        "entry 2 was edited: its contents no longer match its hash"
    );
    tamper(&p, "DELETE FROM audit_log WHERE seq = 2");
    let o = p.ferry(&["audit", "verify"]);
    assert_eq!(
        (o.code, o.stdout.trim()),
        (3, "TAMPERED: entries 2 to 2 are missing"),
        "{o:?}"
    );
}

/// `args` with `env` set (and no credentials from this environment) and
/// `input` on standard input.
fn with_env(p: &Proj, args: &[&str], env: &[(&str, &str)], input: &str) -> Out {
    let mut c = p.cmd(args);
    c.env_remove("FERRY_TOKEN")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env_remove("MLFLOW_TRACKING_USERNAME");
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn a_team_server_asks_who_is_there_and_ferry_login_keeps_a_token_owner_only() {
    let p = Proj::new("");
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("server.db").display());
    let o = with_stdin(
        &p,
        &[
            "admin",
            "create-user",
            "ana",
            "--password-stdin",
            "--store",
            &store,
        ],
        "ana-long-password\n",
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&[
        "admin",
        "add-member",
        "ana",
        "--workspace",
        "team-a",
        "--role",
        "editor",
        "--store",
        &store,
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("`ana` is now editor of workspace `team-a`"),
        "{o:?}"
    );
    let o = p.ferry(&[
        "admin",
        "create-token",
        "ana",
        "--name",
        "laptop",
        "--store",
        &store,
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let token = o.stdout.trim().to_owned();
    let artifacts = dir.path().join("artifacts");
    let server = crate::remote::Server::start_on(tempfile::tempdir().unwrap(), &store, &artifacts);
    let config = tempfile::tempdir().unwrap();
    let xdg = config.path().to_str().unwrap();
    let env = [("XDG_CONFIG_HOME", xdg)];

    let o = with_env(&p, &["models", "list", "--server", &server.url], &env, "");
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("You are not authenticated"), "{o:?}");
    assert!(o.stderr.contains("hint: set FERRY_TOKEN"), "{o:?}");

    let o = with_env(
        &p,
        &["login", &server.url],
        &env,
        "ferry_0000000000000000_nope\n",
    );
    assert_ne!(o.code, 0, "a token the server refuses is not kept: {o:?}");
    let o = with_env(&p, &["login", &server.url], &env, &format!("{token}\n"));
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("as `ana`"), "{o:?}");
    let file = config.path().join("ferry/credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let o = with_env(&p, &["models", "list", "--server", &server.url], &env, "");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(!o.stderr.contains(&token) && !o.stdout.contains(&token));

    assert_eq!(with_env(&p, &["logout", &server.url], &env, "").code, 0);
    let o = with_env(&p, &["models", "list", "--server", &server.url], &env, "");
    assert_ne!(o.code, 0, "{o:?}");
    // FERRY_TOKEN, and MLflow's username and password, work as well.
    let o = with_env(
        &p,
        &["models", "list", "--server", &server.url],
        &[("FERRY_TOKEN", &token)],
        "",
    );
    assert_eq!(o.code, 0, "{o:?}");
    let basic = [
        ("MLFLOW_TRACKING_USERNAME", "ana"),
        ("MLFLOW_TRACKING_PASSWORD", "ana-long-password"),
    ];
    let o = with_env(&p, &["models", "list", "--server", &server.url], &basic, "");
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn a_gateway_on_a_store_with_users_takes_a_predict_only_token_for_predictions_only() {
    let p = crate::deploy::two_versions();
    let o = with_stdin(
        &p,
        &["admin", "create-user", "svc", "--password-stdin"],
        "svc-long-password\n",
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&[
        "admin",
        "add-member",
        "svc",
        "--workspace",
        "default",
        "--role",
        "editor",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&[
        "admin",
        "create-token",
        "svc",
        "--name",
        "web",
        "--workspace",
        "default",
        "--role",
        "predictor",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let token = o.stdout.trim().to_owned();
    let gw = crate::deploy::Gateway::start(&p);
    let addr: std::net::SocketAddr = gw.addr.parse().unwrap();
    let send = |method: &str, path: &str, auth: Option<&str>, body: &str| {
        let auth = auth.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        crate::slow_clients::request(addr, &raw).0
    };
    let row = r#"{"instances": [[1.0, 2.0]]}"#;
    assert_eq!(send("GET", "/ping", None, ""), 200, "probes stay open");
    assert_eq!(send("POST", "/invocations", None, row), 401);
    assert_eq!(
        send("POST", "/invocations", Some("ferry_00_nope"), row),
        401
    );
    assert_eq!(send("POST", "/invocations", Some(&token), row), 200);
    assert_eq!(send("GET", "/metrics", Some(&token), ""), 403);
    drop(gw);
    let o = p.ferry(&["audit", "list", "--action", "gateway", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("\"gateway.metrics\""), "{o:?}");
}

#[test]
fn on_a_team_store_production_moves_by_hand_only_with_a_reason_and_every_move_is_audited() {
    let p = crate::deploy::two_versions();
    let o = with_stdin(
        &p,
        &["admin", "create-user", "ana", "--password-stdin"],
        "ana-long-password\n",
    );
    assert_eq!(o.code, 0, "{o:?}");
    // `production` by hand: refused without a reason, naming the flag.
    let o = p.ferry(&["models", "alias", "m/2", "production"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(
        o.stderr.contains("protected alias") && o.stderr.contains("--reason"),
        "{o:?}"
    );
    // Another alias moves freely; production with a reason.
    assert_eq!(p.ferry(&["models", "alias", "m/2", "staging"]).code, 0);
    let o = p.ferry(&["models", "alias", "m/2", "production", "--reason", "hotfix"]);
    assert_eq!(o.code, 0, "{o:?}");
    // A rollout of version 1 over 2: started, then promoted by hand, which
    // also needs a reason on a team's store.
    let o = p.ferry(&["deploy", "m/1", "--reason", "roll back the hotfix"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = p.ferry(&["deploy", "promote", "m"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("--reason"), "{o:?}");
    let o = p.ferry(&["deploy", "promote", "m", "--reason", "checked by hand"]);
    assert_eq!(o.code, 0, "{o:?}");

    let o = p.ferry(&["audit", "list", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    // What happened since the team's first user.
    let seen: Vec<(String, String)> = entries
        .iter()
        .skip_while(|e| e["action"] != "user.create")
        .skip(1)
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let reasons: Vec<(&str, &str)> = seen.iter().map(|(a, r)| (a.as_str(), r.as_str())).collect();
    assert_eq!(reasons[0], ("registered_model.alias.set", ""));
    assert_eq!(reasons[1], ("registered_model.alias.set", "hotfix"));
    assert_eq!(reasons[2].0, "deployment.start");
    assert!(
        reasons[2]
            .1
            .ends_with("canary started: roll back the hotfix"),
        "{reasons:?}"
    );
    assert_eq!(reasons[3].0, "deployment.promote");
    assert!(reasons[3].1.ends_with(": checked by hand"), "{reasons:?}");
    assert!(
        entries
            .iter()
            .all(|e| e["actor"].as_str().unwrap().starts_with("cli:"))
    );
    let o = p.ferry(&["audit", "verify"]);
    assert_eq!(o.code, 0, "{o:?}");
}

#[test]
fn ferry_deploy_works_through_a_team_server_with_the_callers_token_and_role() {
    let p = crate::deploy::two_versions();
    let store = format!("sqlite://{}", p.path().join(".ferry/ferry.db").display());
    for (user, role) in [("eve", "editor"), ("max", "maintainer")] {
        let o = with_stdin(
            &p,
            &["admin", "create-user", user, "--password-stdin"],
            &format!("{user}-long-password\n"),
        );
        assert_eq!(o.code, 0, "{o:?}");
        let o = p.ferry(&[
            "admin",
            "add-member",
            user,
            "--workspace",
            "default",
            "--role",
            role,
        ]);
        assert_eq!(o.code, 0, "{o:?}");
    }
    let token = |user: &str| {
        let o = p.ferry(&["admin", "create-token", user, "--name", "cli"]);
        assert_eq!(o.code, 0, "{o:?}");
        o.stdout.trim().to_owned()
    };
    let (eve, max) = (token("eve"), token("max"));
    let dir = tempfile::tempdir().unwrap();
    let server = crate::remote::Server::start_on(dir, &store, &p.path().join("artifacts"));
    let config = tempfile::tempdir().unwrap();
    let xdg = config.path().to_str().unwrap();
    let as_ = |token: &str, args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--server", &server.url]);
        with_env(
            &p,
            &v,
            &[("XDG_CONFIG_HOME", xdg), ("FERRY_TOKEN", token)],
            "",
        )
    };

    // Without credentials: told how to give them.
    let o = with_env(
        &p,
        &["deploy", "status", "m", "--server", &server.url],
        &[("XDG_CONFIG_HOME", xdg)],
        "",
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("hint: set FERRY_TOKEN"), "{o:?}");
    // An editor starts a rollout and follows it, by the server's rules.
    let o = as_(&eve, &["deploy", "m/2", "--reason", "new data"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("canary of m version 2 over version 1 recorded"),
        "{o:?}"
    );
    assert!(
        o.stderr
            .contains("warning: no gateway serves `m@production`"),
        "{o:?}"
    );
    let o = as_(&eve, &["deploy", "m/2"]);
    assert_eq!(o.code, 2, "one rollout at a time: {o:?}");
    let o = as_(&eve, &["deploy", "status", "m", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let s: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(s["deployment"]["phase"], "progressing");
    assert_eq!(s["events"][0]["kind"], "started");
    let o = as_(&eve, &["deploy", "status"]);
    assert!(
        o.stdout.contains("m: canary of version 2 over version 1"),
        "{o:?}"
    );
    // Promoting by hand is not an editor's; a maintainer's with a reason.
    let o = as_(&eve, &["deploy", "promote", "m", "--reason", "fine"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("Permission denied"), "{o:?}");
    let o = as_(&max, &["deploy", "promote", "m"]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("--reason"), "{o:?}");
    let o = as_(
        &max,
        &["deploy", "promote", "m", "--reason", "checked by hand"],
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr.contains("m version 2: promoted (checked by hand)"),
        "{o:?}"
    );
    let o = p.ferry(&["models", "show", "m@production", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("\"version\": 2"), "{o:?}");

    // Who did what, with which token, in the log.
    let o = p.ferry(&["audit", "list", "--action", "deployment", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    let by: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by,
        [("deployment.start", "eve"), ("deployment.promote", "max")]
    );
    assert!(
        entries.iter().all(|e| e["token_id"].is_string()),
        "{entries:?}"
    );
    assert_eq!(p.ferry(&["audit", "verify"]).code, 0);
}

#[test]
fn groups_are_made_filled_given_roles_and_listed_and_every_change_is_audited() {
    let p = Proj::new("");
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("team.db").display());
    let s = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--store", &store]);
        p.ferry(&v)
    };
    for u in ["ana", "ben"] {
        let o = with_stdin(
            &p,
            &[
                "admin",
                "create-user",
                u,
                "--password-stdin",
                "--store",
                &store,
            ],
            &format!("{u}-long-password\n"),
        );
        assert_eq!(o.code, 0, "{o:?}");
    }
    assert_eq!(s(&["admin", "create-group", "scientists"]).code, 0);
    let o = s(&["admin", "create-group", "scientists"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("already exists"), "{o:?}");
    for u in ["ana", "ben"] {
        let o = s(&["admin", "add-to-group", u, "scientists"]);
        assert_eq!(o.code, 0, "{o:?}");
    }
    let o = s(&[
        "admin",
        "add-member",
        "scientists",
        "--group",
        "--workspace",
        "team-a",
        "--role",
        "editor",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stderr
            .contains("group `scientists` is now editor of workspace `team-a`"),
        "{o:?}"
    );
    let o = s(&["admin", "add-to-group", "nobody", "scientists"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("no user `nobody`"), "{o:?}");
    assert_eq!(
        s(&["admin", "remove-from-group", "ben", "scientists"]).code,
        0
    );
    let o = s(&["admin", "list-groups", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "scientists");
    assert_eq!(v[0]["members"], serde_json::json!(["ana"]));
    assert_eq!(v[0]["roles"], serde_json::json!(["team-a/editor"]));
    let o = s(&["admin", "list-groups"]);
    assert_eq!(
        o.stdout.trim(),
        "scientists               members: ana  roles: team-a/editor"
    );
    assert_eq!(s(&["admin", "delete-group", "scientists"]).code, 0);
    let o = s(&["audit", "list", "--action", "group", "--json"]);
    let actions: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["resource"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "group.create group:scientists",
            "group.join group:scientists/ana",
            "group.join group:scientists/ben",
            "group.leave group:scientists/ben",
            "group.delete group:scientists",
        ]
    );
    assert_eq!(s(&["audit", "verify"]).code, 0);
}

#[test]
fn single_sign_on_flags_are_checked_before_a_server_starts() {
    let p = Proj::new("");
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap();
    let jwks = jwks.display().to_string();
    for cmd in [
        vec!["server", "--port", "0"],
        vec!["serve", "m", "--port", "0"],
    ] {
        let mut args = cmd.clone();
        args.extend([
            "--oidc-issuer",
            "https://idp.test",
            "--oidc-audience",
            "ferry",
            "--oidc-jwks",
            &jwks,
        ]);
        let o = p.ferry(&args);
        assert_eq!(o.code, 2, "{o:?}");
        assert!(
            o.stderr.contains("--oidc-jwks") && o.stderr.contains("no RSA or P-256 signing key"),
            "{o:?}"
        );
        let mut args = cmd.clone();
        args.extend([
            "--oidc-issuer",
            "https://idp.test",
            "--oidc-audience",
            "ferry",
            "--oidc-jwks",
            "/nonexistent/jwks.json",
        ]);
        let o = p.ferry(&args);
        assert_eq!(o.code, 2, "{o:?}");
        assert!(
            o.stderr.contains("cannot read `/nonexistent/jwks.json`"),
            "{o:?}"
        );
        let mut args = cmd.clone();
        args.extend(["--oidc-audience", "ferry"]);
        let o = p.ferry(&args);
        assert_eq!(o.code, 2, "{o:?}");
        assert!(o.stderr.contains("--oidc-issuer"), "{o:?}");
    }
}

#[test]
fn a_team_servers_budget_is_held_by_runs_through_it_and_let_over_by_a_maintainer_only() {
    let p = Proj::new(
        r#"
stages:
  train:
    cmd: sleep 0.5 && echo "$RANDOM" > b.txt
    outs: [b.txt]
    resources: {cpus: 4, memory: 16Gi}
"#,
    );
    let home = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", home.path().join("team.db").display());
    let on_store = |args: &[&str], input: &str| {
        let mut v = args.to_vec();
        v.extend(["--store", &store]);
        with_stdin(&p, &v, input)
    };
    for (user, role) in [
        ("eve", Some("editor")),
        ("max", Some("maintainer")),
        ("root", None),
    ] {
        let mut args = vec!["admin", "create-user", user, "--password-stdin"];
        if role.is_none() {
            args.push("--admin");
        }
        let o = on_store(&args, &format!("{user}-long-password\n"));
        assert_eq!(o.code, 0, "{o:?}");
        if let Some(role) = role {
            let o = on_store(
                &[
                    "admin",
                    "add-member",
                    user,
                    "--workspace",
                    "default",
                    "--role",
                    role,
                ],
                "",
            );
            assert_eq!(o.code, 0, "{o:?}");
        }
    }
    let token = |user: &str| {
        let o = on_store(&["admin", "create-token", user, "--name", "cli"], "");
        assert_eq!(o.code, 0, "{o:?}");
        o.stdout.trim().to_owned()
    };
    let (eve, max, root) = (token("eve"), token("max"), token("root"));
    let server = crate::remote::Server::start_on(
        tempfile::tempdir().unwrap(),
        &store,
        &home.path().join("artifacts"),
    );
    let config = tempfile::tempdir().unwrap();
    let xdg = config.path().to_str().unwrap();
    let as_ = |token: &str, args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--server", &server.url]);
        with_env(
            &p,
            &v,
            &[("XDG_CONFIG_HOME", xdg), ("FERRY_TOKEN", token)],
            "",
        )
    };

    // The maintainer's first run makes the pipeline's experiment (whoever
    // makes one manages it, as in MLflow), and its stages' costs go to the
    // server's ledger.
    let o = as_(&max, &["run"]);
    assert_eq!(o.code, 0, "{o:?}");
    let o = as_(&eve, &["cost", "--by", "team", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let lines: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(lines[0]["key"], "default", "{lines}");
    let c1 = lines[0]["cost_usd"].as_f64().unwrap();
    assert!(c1 > 0.0, "{lines}");

    // Budgets are the server admins' to set.
    let monthly = format!("{}", c1 * 1.5);
    let o = as_(&eve, &["budget", "set", "default", "--monthly", &monthly]);
    assert_eq!(o.code, 2, "{o:?}");
    assert!(o.stderr.contains("Permission denied"), "{o:?}");
    let o = as_(&root, &["budget", "set", "default", "--monthly", &monthly]);
    assert_eq!(o.code, 0, "{o:?}");

    // The next run is estimated from the server's history and refused.
    let o = as_(&eve, &["run", "--force"]);
    assert_eq!(o.code, 4, "{o:?}");
    assert!(
        o.stderr.contains("over budget: budget workspace:default")
            && o.stderr.contains("(its last run)"),
        "{o:?}"
    );
    // An editor may not let it over; a maintainer may, with a reason.
    let o = as_(&eve, &["run", "--force", "--over-budget", "please"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("Permission denied"), "{o:?}");
    let o = as_(
        &max,
        &["run", "--force", "--over-budget", "quarter-end retrain"],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = on_store(&["audit", "list", "--action", "budget", "--json"], "");
    let entries: Vec<serde_json::Value> = serde_json::from_str(&o.stdout).unwrap();
    let by: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(by[0].0, "budget.set", "{entries:?}");
    assert_eq!(by[0].1, "root", "{entries:?}");
    assert_eq!(
        by[1..],
        [
            ("budget.override", "eve", "denied", ""),
            ("budget.override", "max", "allowed", "quarter-end retrain"),
        ],
        "{entries:?}"
    );

    // Anyone reads the budgets: the spend is what the ledger sums.
    let o = as_(&eve, &["budget", "list", "--json"]);
    assert_eq!(o.code, 0, "{o:?}");
    let list: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let o = as_(&eve, &["cost", "--by", "team", "--json"]);
    let team: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(
        (list[0]["spent_usd"].as_f64().unwrap() - team[0]["cost_usd"].as_f64().unwrap()).abs()
            < 1e-12,
        "{list} {team}"
    );
    assert!(team[0]["cost_usd"].as_f64().unwrap() > c1 * 1.5, "{team}");
    assert_eq!(list[0]["held_usd"], 0.0, "{list}");
}
