//! `ferry server --hooks FILE`: which forges' webhooks trigger which
//! pipelines. The file names each secret's environment variable, never the
//! secret, so no secret is on a command line, in a file the team shares or
//! in a log:
//!
//! ```yaml
//! github:
//!   secret_env: FERRY_GITHUB_WEBHOOK_SECRET
//!   repositories:
//!     acme/churn: {pipeline: churn, branches: [main]}
//! gitlab:
//!   token_env: FERRY_GITLAB_WEBHOOK_TOKEN
//!   projects:
//!     acme/churn: {pipeline: churn, branches: [main], pull_requests: false}
//! deliver:
//!   - name: ci
//!     url: https://ci.example.com/ferry-events
//!     secret_env: FERRY_DELIVER_SECRET
//!     events: [model_version.created, rollout.promoted]
//! ```
//!
//! `deliver:` is the other way: where the registry's and rollouts' events
//! are posted (`ferry_tracking::deliver`), https (http to loopback only),
//! each endpoint named, signed with its own secret, taking the events it
//! lists (all when it lists none).
//!
//! Parsed in two phases (YAML to `ferry-spec`'s positioned tree, then
//! checked), every problem reported at once with its line, column and key
//! path; a variable that is not set is one of them.

use ferry_spec::{Kind, Node, Pos, key_path};
use ferry_tracking::deliver::{self, Endpoint, Event, SigningSecret};
use ferry_tracking::hooks::{Forge, Hooks, Repository, Secret};

/// What a hooks file configures: the forges whose webhooks come in (none
/// when it names no forge), and the endpoints events go out to.
#[derive(Debug, Default)]
pub struct HooksFile {
    pub inbound: Option<Hooks>,
    pub deliver: Vec<Endpoint>,
}

/// The shortest secret taken: a guessable one would let anyone queue runs.
pub const MIN_SECRET: usize = 16;

/// A mapping's entries: key, its position, value.
type Entries<'n> = Vec<(&'n str, Pos, &'n Node)>;

struct Check<'a> {
    file: &'a str,
    errors: Vec<(Pos, String)>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Check<'_> {
    fn err(&mut self, pos: Pos, path: &str, msg: impl std::fmt::Display) {
        let path = if path.is_empty() {
            String::new()
        } else {
            format!("{path}: ")
        };
        self.errors.push((pos, format!("{path}{msg}")));
    }

    /// A mapping's entries (key, its position, value); anything else is
    /// an error.
    fn map<'n>(&mut self, n: &'n Node, path: &str) -> Option<Entries<'n>> {
        match &n.kind {
            Kind::Map(m) => Some(m.iter().map(|(k, v)| (k.name.as_str(), k.pos, v)).collect()),
            other => {
                self.err(
                    n.pos,
                    path,
                    format!("expected a mapping, found {}", other.type_name()),
                );
                None
            }
        }
    }

    /// Keys not in `known` are errors.
    fn known(&mut self, m: &Entries<'_>, path: &str, known: &[&str]) {
        for &(k, pos, _) in m {
            if !known.contains(&k) {
                let at = key_path(path, k);
                let hint = if matches!(k, "secret" | "token") {
                    " (a secret is never written here: name the environment variable that holds it)"
                        .to_owned()
                } else {
                    format!(" (known: {})", known.join(", "))
                };
                self.err(pos, &at, format!("unknown key{hint}"));
            }
        }
    }

    fn text(&mut self, n: &Node, path: &str) -> Option<String> {
        match &n.kind {
            Kind::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            Kind::Str(_) => {
                self.err(n.pos, path, "is empty");
                None
            }
            other => {
                self.err(
                    n.pos,
                    path,
                    format!("expected a string, found {}", other.type_name()),
                );
                None
            }
        }
    }
}

impl Check<'_> {
    /// The secret in the environment variable `v` names (`at` its key
    /// path): a variable's name, set, at least [`MIN_SECRET`] long.
    fn secret(&mut self, v: &Node, at: &str) -> Option<String> {
        match self.text(v, at) {
            Some(name) if !env_name(&name) => {
                self.err(
                    v.pos,
                    at,
                    format!("`{name}` is not an environment variable's name (A-Z, 0-9, _)"),
                );
                None
            }
            Some(name) => match (self.env)(&name) {
                None => {
                    self.err(
                        v.pos,
                        at,
                        format!("the environment variable {name} is not set"),
                    );
                    None
                }
                Some(s) if s.len() < MIN_SECRET => {
                    self.err(v.pos, at, format!(
                        "the secret in {name} is shorter than {MIN_SECRET} characters (`openssl rand -hex 32` makes one)"
                    ));
                    None
                }
                Some(s) => Some(s),
            },
            None => None,
        }
    }
}

fn get<'n>(m: &Entries<'n>, key: &str) -> Option<&'n Node> {
    m.iter().find(|(k, _, _)| *k == key).map(|&(_, _, v)| v)
}

/// A name that could be an environment variable's.
fn env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == b'_')
        && b.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Text a forge names things with: no spaces or control characters.
fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// One forge's section: its secret's variable and its repositories.
fn forge(
    cx: &mut Check<'_>,
    n: &Node,
    path: &str,
    secret_key: &str,
    repos_key: &str,
) -> Option<Forge> {
    let m = cx.map(n, path)?;
    cx.known(&m, path, &[secret_key, repos_key]);
    let secret = match get(&m, secret_key) {
        None => {
            cx.err(
                n.pos,
                path,
                format!(
                    "`{secret_key}` is missing: the environment variable that holds the secret"
                ),
            );
            None
        }
        Some(v) => cx.secret(v, &key_path(path, secret_key)).map(Secret::new),
    };
    let mut repositories = Vec::new();
    match get(&m, repos_key) {
        None => cx.err(
            n.pos,
            path,
            format!("`{repos_key}` is missing: which repositories run which pipeline"),
        ),
        Some(r) => {
            let rpath = key_path(path, repos_key);
            if let Some(entries) = cx.map(r, &rpath) {
                if entries.is_empty() {
                    cx.err(r.pos, &rpath, "names no repository");
                }
                for (k, pos, v) in entries {
                    let at = key_path(&rpath, k);
                    if !plain(k) || !k.contains('/') {
                        cx.err(
                            pos,
                            &at,
                            "a repository is named `owner/name` (GitLab: `group/project`)",
                        );
                    }
                    if let Some(repo) = repository(cx, k, v, &at) {
                        repositories.push(repo);
                    }
                }
            }
        }
    }
    Some(Forge {
        secret: secret?,
        repositories,
    })
}

fn repository(cx: &mut Check<'_>, name: &str, n: &Node, path: &str) -> Option<Repository> {
    let m = cx.map(n, path)?;
    cx.known(&m, path, &["pipeline", "branches", "pull_requests"]);
    let pipeline = match get(&m, "pipeline") {
        None => {
            cx.err(
                n.pos,
                path,
                "`pipeline` is missing: the pipeline (its ferry.yaml `name:`) the agent runs",
            );
            None
        }
        Some(p) => {
            let at = key_path(path, "pipeline");
            let p2 = cx.text(p, &at);
            match p2 {
                Some(s) if !plain(&s) => {
                    cx.err(
                        p.pos,
                        &at,
                        "a pipeline's name has no spaces or control characters",
                    );
                    None
                }
                other => other,
            }
        }
    };
    let mut branches = Vec::new();
    match get(&m, "branches") {
        None => cx.err(
            n.pos,
            path,
            "`branches` is missing: the branches whose pushes (and pull requests into them) run",
        ),
        Some(b) => {
            let at = key_path(path, "branches");
            match &b.kind {
                Kind::Seq(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        let ip = format!("{at}[{i}]");
                        match cx.text(item, &ip) {
                            Some(s) if !plain(&s) || s.starts_with("refs/") => cx.err(
                                item.pos,
                                &ip,
                                "a branch's name (`main`, not `refs/heads/main`), without spaces",
                            ),
                            Some(s) => branches.push(s),
                            None => {}
                        }
                    }
                }
                Kind::Seq(_) => cx.err(b.pos, &at, "names no branch"),
                other => cx.err(
                    b.pos,
                    &at,
                    format!("expected a list of branches, found {}", other.type_name()),
                ),
            }
        }
    }
    let pull_requests = match get(&m, "pull_requests") {
        None => true,
        Some(Node {
            kind: Kind::Bool(b),
            ..
        }) => *b,
        Some(other) => {
            cx.err(
                other.pos,
                &key_path(path, "pull_requests"),
                format!("expected true or false, found {}", other.kind.type_name()),
            );
            true
        }
    };
    Some(Repository {
        name: name.to_owned(),
        pipeline: pipeline?,
        branches,
        pull_requests,
    })
}

/// The `deliver:` list: each endpoint's name (unique), URL, secret's
/// variable and events.
fn endpoints(cx: &mut Check<'_>, n: &Node) -> Vec<Endpoint> {
    let Kind::Seq(items) = &n.kind else {
        cx.err(
            n.pos,
            "deliver",
            format!(
                "expected a list of endpoints (`- name: ...`), found {}",
                n.kind.type_name()
            ),
        );
        return Vec::new();
    };
    if items.is_empty() {
        cx.err(n.pos, "deliver", "names no endpoint");
    }
    let mut out: Vec<Endpoint> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("deliver[{i}]");
        let Some(m) = cx.map(item, &path) else {
            continue;
        };
        cx.known(&m, &path, &["name", "url", "secret_env", "events"]);
        let missing = |cx: &mut Check<'_>, key: &str, what: &str| {
            cx.err(item.pos, &path, format!("`{key}` is missing: {what}"));
        };
        let name = match get(&m, "name") {
            None => {
                missing(
                    cx,
                    "name",
                    "the endpoint's name (`ci`), shown by `ferry admin deliveries`",
                );
                None
            }
            Some(v) => {
                let at = key_path(&path, "name");
                match cx.text(v, &at) {
                    Some(s) if !deliver::valid_name(&s) => {
                        cx.err(
                            v.pos,
                            &at,
                            format!("`{s}` is not a name: 1 to 64 of a-z, 0-9, _ and -"),
                        );
                        None
                    }
                    Some(s) if names.contains(&s) => {
                        cx.err(v.pos, &at, format!("`{s}` names another endpoint already"));
                        None
                    }
                    Some(s) => {
                        names.push(s.clone());
                        Some(s)
                    }
                    None => None,
                }
            }
        };
        let url = match get(&m, "url") {
            None => {
                missing(cx, "url", "where the events are posted (https://...)");
                None
            }
            Some(v) => {
                let at = key_path(&path, "url");
                match cx.text(v, &at) {
                    Some(u) => match deliver::check_url(&u) {
                        Ok(()) => Some(u),
                        Err(why) => {
                            cx.err(v.pos, &at, format!("the URL {why}"));
                            None
                        }
                    },
                    None => None,
                }
            }
        };
        let secret = match get(&m, "secret_env") {
            None => {
                missing(
                    cx,
                    "secret_env",
                    "the environment variable that holds the signing secret",
                );
                None
            }
            Some(v) => cx.secret(v, &key_path(&path, "secret_env")),
        };
        let events = match get(&m, "events") {
            None => Event::ALL.to_vec(),
            Some(v) => {
                let at = key_path(&path, "events");
                let mut events = Vec::new();
                match &v.kind {
                    Kind::Seq(list) if !list.is_empty() => {
                        for (j, e) in list.iter().enumerate() {
                            let ep = format!("{at}[{j}]");
                            if let Some(s) = cx.text(e, &ep) {
                                match Event::parse(&s) {
                                    Some(ev) if !events.contains(&ev) => events.push(ev),
                                    Some(_) => {}
                                    None => cx.err(
                                        e.pos,
                                        &ep,
                                        format!(
                                            "unknown event `{s}` (known: {})",
                                            Event::ALL
                                                .iter()
                                                .map(|e| e.name())
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        ),
                                    ),
                                }
                            }
                        }
                    }
                    Kind::Seq(_) => cx.err(
                        v.pos,
                        &at,
                        "names no event (leave `events` out for all of them)",
                    ),
                    other => cx.err(
                        v.pos,
                        &at,
                        format!("expected a list of events, found {}", other.type_name()),
                    ),
                }
                events
            }
        };
        if let (Some(name), Some(url), Some(secret)) = (name, url, secret) {
            out.push(Endpoint {
                name,
                url,
                secret: SigningSecret::new(secret),
                events,
            });
        }
    }
    out
}

/// Parses a hooks file; `env` reads the secrets' variables. Every problem
/// at once, each `FILE:LINE:COLUMN: key.path: what`.
pub fn parse(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HooksFile, Vec<String>> {
    let root = ferry_spec::parse_yaml(text).map_err(|e| {
        vec![format!(
            "{file}:{}:{}: {}",
            e.pos.line, e.pos.column, e.message
        )]
    })?;
    let mut cx = Check {
        file,
        errors: Vec::new(),
        env,
    };
    let mut hooks = Hooks::default();
    let mut out = HooksFile::default();
    if let Some(m) = cx.map(&root, "") {
        cx.known(&m, "", &["github", "gitlab", "deliver"]);
        if ["github", "gitlab", "deliver"]
            .iter()
            .all(|k| get(&m, k).is_none())
        {
            cx.err(
                root.pos,
                "",
                "names nothing: give `github:` or `gitlab:` (webhooks in) or `deliver:` (events out)",
            );
        }
        if let Some(g) = get(&m, "github") {
            hooks.github = forge(&mut cx, g, "github", "secret_env", "repositories");
        }
        if let Some(g) = get(&m, "gitlab") {
            hooks.gitlab = forge(&mut cx, g, "gitlab", "token_env", "projects");
        }
        if let Some(d) = get(&m, "deliver") {
            out.deliver = endpoints(&mut cx, d);
        }
    }
    if cx.errors.is_empty() {
        if hooks.github.is_some() || hooks.gitlab.is_some() {
            out.inbound = Some(hooks);
        }
        return Ok(out);
    }
    let mut errors = std::mem::take(&mut cx.errors);
    errors.sort_by_key(|(p, _)| (p.line, p.column));
    Err(errors
        .into_iter()
        .map(|(p, m)| format!("{}:{}:{}: {m}", cx.file, p.line, p.column))
        .collect())
}

/// Reads and parses `--hooks FILE`, the secrets from this process's
/// environment; a usage error lists every problem.
pub fn load(path: &std::path::Path) -> anyhow::Result<HooksFile> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| crate::exit::usage(format!("--hooks: cannot read {shown}: {e}")))?;
    let text = ferry_spec::spec_text(&shown, &bytes).map_err(|d| {
        crate::exit::usage(
            d.items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    parse(&shown, &text, &|k| std::env::var(k).ok()).map_err(|errors| {
        let n = errors.len();
        crate::exit::usage(format!(
            "{}\n{n} error{} in the hooks file",
            errors.join("\n"),
            if n == 1 { "" } else { "s" }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "GH_SECRET" => Some("It's a Secret to Everybody".into()),
            "GL_TOKEN" => Some("glpat-hook-token-0123456789".into()),
            "SHORT" => Some("hunter2".into()),
            _ => None,
        }
    }

    #[test]
    fn a_full_file_parses() {
        let text = "\
github:
  secret_env: GH_SECRET
  repositories:
    acme/churn: {pipeline: churn, branches: [main, release]}
gitlab:
  token_env: GL_TOKEN
  projects:
    acme/ml/churn: {pipeline: churn, branches: [main], pull_requests: false}
";
        let f = parse("hooks.yaml", text, &env).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(f.deliver.is_empty());
        let h = f.inbound.unwrap_or_else(|| panic!("inbound"));
        let g = h.github.unwrap_or_else(|| panic!("github"));
        assert_eq!(
            g.repositories,
            [Repository {
                name: "acme/churn".into(),
                pipeline: "churn".into(),
                branches: vec!["main".into(), "release".into()],
                pull_requests: true,
            }]
        );
        let l = h.gitlab.unwrap_or_else(|| panic!("gitlab"));
        assert!(!l.repositories[0].pull_requests);
        assert_eq!(format!("{:?}", l.secret), "Secret(<redacted>)");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() {
        let text = "\
github:
  secret: hunter2
  secret_env: MISSING_VAR
  repositories:
    churn: {pipeline: churn, branches: []}
    acme/x: {branches: [refs/heads/main], pull_requests: maybe}
gitlab:
  token_env: SHORT
  projects: []
bitbucket: {}
";
        let e = parse("hooks.yaml", text, &env).unwrap_err();
        let want = [
            "hooks.yaml:2:3: github.secret: unknown key (a secret is never written here",
            "hooks.yaml:3:15: github.secret_env: the environment variable MISSING_VAR is not set",
            "hooks.yaml:5:5: github.repositories.churn: a repository is named `owner/name`",
            "hooks.yaml:5:40: github.repositories.churn.branches: names no branch",
            "hooks.yaml:6:13: github.repositories.acme/x: `pipeline` is missing",
            "hooks.yaml:6:25: github.repositories.acme/x.branches[0]: a branch's name",
            "hooks.yaml:6:58: github.repositories.acme/x.pull_requests: expected true or false",
            "hooks.yaml:8:14: gitlab.token_env: the secret in SHORT is shorter than 16",
            "hooks.yaml:9:13: gitlab.projects: expected a mapping, found a list",
            "hooks.yaml:10:1: bitbucket: unknown key (known: github, gitlab, deliver)",
        ];
        for (got, want) in e.iter().zip(want) {
            assert!(
                got.starts_with(want),
                "{got}\n  does not start with\n{want}\n\nall: {e:#?}"
            );
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
        assert!(
            !e.iter().any(|l| l.contains("hunter2")),
            "no secret is echoed"
        );
    }

    #[test]
    fn an_empty_file_or_bad_yaml_says_so() {
        let e = parse("h.yaml", "", &env).unwrap_err();
        assert!(e[0].contains("expected a mapping"), "{e:?}");
        let e = parse("h.yaml", "{}", &env).unwrap_err();
        assert!(e[0].contains("names nothing"), "{e:?}");
        let e = parse("h.yaml", "github: [", &env).unwrap_err();
        assert!(e[0].starts_with("h.yaml:1:"), "{e:?}");
        let e = parse(
            "h.yaml",
            "github: {secret_env: lower, repositories: {a/b: {pipeline: p, branches: [main]}}}",
            &env,
        )
        .unwrap_err();
        assert!(e[0].contains("not an environment variable's name"), "{e:?}");
    }

    fn deliver_env(k: &str) -> Option<String> {
        match k {
            "CI_SECRET" => Some("whsec-0123456789abcdef".into()),
            "AUDIT_SECRET" => Some("another-secret-0123456789".into()),
            other => env(other),
        }
    }

    #[test]
    fn deliver_endpoints_parse_with_all_events_by_default() {
        let text = "\
deliver:
  - name: ci
    url: https://ci.example.com/ferry-events?token=abc
    secret_env: CI_SECRET
    events: [model_version.created, model_version_alias.created, rollout.promoted, rollout.rolled_back]
  - name: local-audit
    url: http://127.0.0.1:9000/hook
    secret_env: AUDIT_SECRET
";
        let f = parse("hooks.yaml", text, &deliver_env).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(f.inbound.is_none(), "no forge: /hooks/* stays 404");
        let [ci, audit] = &f.deliver[..] else {
            panic!("{:?}", f.deliver)
        };
        assert_eq!(ci.name, "ci");
        assert_eq!(
            ci.events,
            [
                Event::ModelVersionCreated,
                Event::ModelVersionAliasCreated,
                Event::RolloutPromoted,
                Event::RolloutRolledBack
            ]
        );
        assert_eq!(audit.events, Event::ALL);
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("token=abc") && !shown.contains("whsec"),
            "neither URL nor secret in Debug: {shown}"
        );
    }

    #[test]
    fn every_bad_endpoint_is_reported_with_its_position() {
        let text = "\
deliver:
  - name: ci
    url: ftp://ci.example.com/x
    secret_env: CI_SECRET
  - name: ci
    url: http://ci.example.com/x
    secret_env: NOT_SET
    events: [model_version.created, model_version.deleted]
  - name: Bad Name
    url: https://user:pw@ci.example.com/
    secret_env: SHORT
    secret: hunter2
  - url: https://ci.example.com/
    events: []
";
        let e = parse("hooks.yaml", text, &deliver_env).unwrap_err();
        let want = [
            "hooks.yaml:3:10: deliver[0].url: the URL is not an https:// URL",
            "hooks.yaml:5:11: deliver[1].name: `ci` names another endpoint already",
            "hooks.yaml:6:10: deliver[1].url: the URL is http:// to another machine",
            "hooks.yaml:7:17: deliver[1].secret_env: the environment variable NOT_SET is not set",
            "hooks.yaml:8:37: deliver[1].events[1]: unknown event `model_version.deleted` (known: registered_model.created, ",
            "hooks.yaml:9:11: deliver[2].name: `Bad Name` is not a name",
            "hooks.yaml:10:10: deliver[2].url: the URL names credentials before the host",
            "hooks.yaml:11:17: deliver[2].secret_env: the secret in SHORT is shorter than 16",
            "hooks.yaml:12:5: deliver[2].secret: unknown key (a secret is never written here",
            "hooks.yaml:13:5: deliver[3]: `name` is missing",
            "hooks.yaml:13:5: deliver[3]: `secret_env` is missing",
            "hooks.yaml:14:13: deliver[3].events: names no event",
        ];
        for (got, want) in e.iter().zip(want) {
            assert!(
                got.starts_with(want),
                "{got}\n  does not start with\n{want}\n\nall: {e:#?}"
            );
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
        assert!(!e.iter().any(|l| l.contains("hunter2") || l.contains("pw@")));
        let e = parse("h.yaml", "deliver: {ci: {}}", &deliver_env).unwrap_err();
        assert!(e[0].contains("expected a list of endpoints"), "{e:?}");
        let e = parse("h.yaml", "deliver: []", &deliver_env).unwrap_err();
        assert!(e[0].contains("names no endpoint"), "{e:?}");
    }
}
