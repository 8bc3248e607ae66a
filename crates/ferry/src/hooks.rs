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
//! ```
//!
//! Parsed in two phases (YAML to `ferry-spec`'s positioned tree, then
//! checked), every problem reported at once with its line, column and key
//! path; a variable that is not set is one of them.

use ferry_spec::{Kind, Node, Pos};
use ferry_tracking::hooks::{Forge, Hooks, Repository, Secret};

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
                let at = join(path, k);
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

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
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
        Some(v) => {
            let at = join(path, secret_key);
            match cx.text(v, &at) {
                Some(name) if !env_name(&name) => {
                    cx.err(
                        v.pos,
                        &at,
                        format!("`{name}` is not an environment variable's name (A-Z, 0-9, _)"),
                    );
                    None
                }
                Some(name) => match (cx.env)(&name) {
                    None => {
                        cx.err(
                            v.pos,
                            &at,
                            format!("the environment variable {name} is not set"),
                        );
                        None
                    }
                    Some(s) if s.len() < MIN_SECRET => {
                        cx.err(v.pos, &at, format!(
                            "the secret in {name} is shorter than {MIN_SECRET} characters (`openssl rand -hex 32` makes one)"
                        ));
                        None
                    }
                    Some(s) => Some(Secret::new(s)),
                },
                None => None,
            }
        }
    };
    let mut repositories = Vec::new();
    match get(&m, repos_key) {
        None => cx.err(
            n.pos,
            path,
            format!("`{repos_key}` is missing: which repositories run which pipeline"),
        ),
        Some(r) => {
            let rpath = join(path, repos_key);
            if let Some(entries) = cx.map(r, &rpath) {
                if entries.is_empty() {
                    cx.err(r.pos, &rpath, "names no repository");
                }
                for (k, pos, v) in entries {
                    let at = join(&rpath, k);
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
            let at = join(path, "pipeline");
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
            let at = join(path, "branches");
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
                &join(path, "pull_requests"),
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

/// Parses a hooks file; `env` reads the secrets' variables. Every problem
/// at once, each `FILE:LINE:COLUMN: key.path: what`.
pub fn parse(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Hooks, Vec<String>> {
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
    if let Some(m) = cx.map(&root, "") {
        cx.known(&m, "", &["github", "gitlab"]);
        if get(&m, "github").is_none() && get(&m, "gitlab").is_none() {
            cx.err(root.pos, "", "names no forge: give `github:` or `gitlab:`");
        }
        if let Some(g) = get(&m, "github") {
            hooks.github = forge(&mut cx, g, "github", "secret_env", "repositories");
        }
        if let Some(g) = get(&m, "gitlab") {
            hooks.gitlab = forge(&mut cx, g, "gitlab", "token_env", "projects");
        }
    }
    if cx.errors.is_empty() {
        return Ok(hooks);
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
pub fn load(path: &std::path::Path) -> anyhow::Result<Hooks> {
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
        let h = parse("hooks.yaml", text, &env).unwrap_or_else(|e| panic!("{e:?}"));
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
            "hooks.yaml:10:1: bitbucket: unknown key (known: github, gitlab)",
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
        assert!(e[0].contains("names no forge"), "{e:?}");
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
}
