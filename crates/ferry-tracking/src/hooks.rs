//! Webhooks from forges into the closed loop: a push to a branch, or a
//! pull (merge) request opened or given new commits, becomes a triggered
//! run of the pipeline at that commit (`ferry agent` claims and runs it).
//!
//! What is here is the part without HTTP: the configuration (`ferry server
//! --hooks FILE`, parsed by the binary), each forge's authentication
//! (GitHub's HMAC-SHA256 of the raw body, GitLab's token, both compared in
//! constant time), reading a delivery's body into a [`Delivery`] (a
//! missing or misshapen field is named), and [`decide`]: what to fire, or
//! why nothing. The route (`routes/hooks.rs`) reads the body, checks it,
//! and offers the firing to the store.
//!
//! Nothing from a body becomes a command, a path or a URL: the commit is
//! kept only when it is 40 hex digits ([`ferry_metadata::is_commit`]), the
//! rest is compared with the configuration or shown, cut short and with
//! control characters replaced.

use hmac::{KeyInit, Mac};
use serde_json::Value;

/// The largest delivery body taken (GitHub caps its own at 25 MB; a push
/// carries at most 20 commits' summaries, far below this).
pub const MAX_BODY: usize = 1 << 20;

/// GitHub's signature header: `sha256=<hex>` of the raw body.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
pub const GITHUB_EVENT: &str = "x-github-event";
pub const GITHUB_DELIVERY: &str = "x-github-delivery";
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
pub const GITLAB_EVENT: &str = "x-gitlab-event";
pub const GITLAB_UUID: &str = "x-gitlab-event-uuid";
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A forge's shared secret (GitHub's webhook secret, GitLab's token):
/// never shown, not even in `Debug`.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A repository (GitHub's `owner/name`, GitLab's `group/project`) whose
/// deliveries trigger a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub name: String,
    /// The pipeline its runs are queued for (the `name` of its ferry.yaml,
    /// which the agent of that project claims).
    pub pipeline: String,
    /// Pushes to these branches run, as do pull requests into them.
    pub branches: Vec<String>,
    /// Whether pull (merge) requests into those branches run.
    pub pull_requests: bool,
}

/// One forge's settings: its secret and its repositories.
#[derive(Debug, Clone)]
pub struct Forge {
    pub secret: Secret,
    pub repositories: Vec<Repository>,
}

impl Forge {
    /// The repository named so (forges compare names without case).
    pub fn repository(&self, name: &str) -> Option<&Repository> {
        self.repositories
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }
}

/// What `ferry server --hooks` was given: each forge it takes deliveries
/// from (a forge not configured answers 404).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub github: Option<Forge>,
    pub gitlab: Option<Forge>,
}

/// Which forge a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GitHub => "github",
            Kind::GitLab => "gitlab",
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn mac(secret: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length")
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as GitHub
/// sends it in `X-Hub-Signature-256`.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex(&m.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under the secret, compared
/// in constant time; `Err` says what is wrong with it (without the
/// secret or the signature it should have been).
pub fn github_verified(secret: &Secret, header: Option<&str>, body: &[u8]) -> Result<(), String> {
    let Some(header) = header else {
        return Err("no X-Hub-Signature-256 header: give the webhook its secret".into());
    };
    let sig = header
        .trim()
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or("X-Hub-Signature-256 is not `sha256=<hex>`")?;
    let mut m = mac(&secret.0);
    m.update(body);
    m.verify_slice(&sig)
        .map_err(|_| "the X-Hub-Signature-256 signature does not match the body".to_owned())
}

/// Whether `header` is the GitLab token, compared in constant time (the
/// digests of both, so neither its bytes nor its length leak).
pub fn gitlab_verified(secret: &Secret, header: Option<&str>) -> Result<(), String> {
    let Some(given) = header else {
        return Err("no X-Gitlab-Token header: give the webhook its secret token".into());
    };
    // blake3::Hash compares in constant time.
    if blake3::hash(given.as_bytes()) == blake3::hash(&secret.0) {
        Ok(())
    } else {
        Err("the X-Gitlab-Token does not match".into())
    }
}

/// A delivery's id as a trigger's key may carry it: letters, digits, `-`,
/// `_`, `.` and `:`, at most 128.
pub fn delivery_id(s: &str) -> Option<&str> {
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
    .then_some(s)
}

/// Text from a delivery, as shown in evidence and answers: at most 100
/// characters, control characters replaced.
pub fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(100).is_some() {
        out.push('…');
    }
    out
}

/// What a delivery asks, read from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Commits pushed to `reference` (`refs/heads/main`); `commit` is
    /// `None` when the ref was deleted.
    Push {
        repository: String,
        reference: String,
        commit: Option<String>,
        by: String,
    },
    /// A pull request (GitHub) or merge request (GitLab).
    Change {
        repository: String,
        number: i64,
        /// The forge's word: `opened`, `synchronize`, `open`, `update`, ...
        action: String,
        /// Whether the action brings a commit to run: opened, reopened or
        /// given new commits.
        runs: bool,
        /// The branch it would merge into.
        base: String,
        /// Its head commit.
        commit: String,
        /// Its commits come from another repository (a fork).
        from_fork: bool,
        by: String,
    },
}

/// A field of the body, by its dotted path.
fn at<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(body, |v, k| v.get(k))
}

fn text<'a>(body: &'a Value, path: &str) -> Result<&'a str, String> {
    at(body, path)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("field `{path}` is missing or not a string"))
}

fn opt_text<'a>(body: &'a Value, path: &str) -> Option<&'a str> {
    at(body, path).and_then(Value::as_str)
}

fn commit_at(body: &Value, path: &str) -> Result<String, String> {
    let c = text(body, path)?;
    if ferry_metadata::is_commit(c) {
        Ok(c.to_owned())
    } else {
        Err(format!(
            "field `{path}`: `{}` is not a commit id (40 hex digits)",
            shown(c)
        ))
    }
}

/// A deleted ref's "commit".
fn zeros(c: &str) -> bool {
    !c.is_empty() && c.bytes().all(|b| b == b'0')
}

fn json(body: &[u8]) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err("the body is not a JSON object".into())
    }
}

/// A GitHub `push` or `pull_request` event's body (`Ok(None)`: another
/// event, which is not acted on).
pub fn github_delivery(event: &str, body: &[u8]) -> Result<Option<Delivery>, String> {
    if !matches!(event, "push" | "pull_request") {
        return Ok(None);
    }
    let b = json(body)?;
    let repository = text(&b, "repository.full_name")?.to_owned();
    let sender = opt_text(&b, "sender.login");
    if event == "push" {
        let after = text(&b, "after")?;
        let deleted = zeros(after) || at(&b, "deleted").and_then(Value::as_bool) == Some(true);
        return Ok(Some(Delivery::Push {
            reference: text(&b, "ref")?.to_owned(),
            commit: if deleted {
                None
            } else {
                Some(commit_at(&b, "after")?)
            },
            by: shown(opt_text(&b, "pusher.name").or(sender).unwrap_or("someone")),
            repository,
        }));
    }
    let action = text(&b, "action")?.to_owned();
    let number = at(&b, "pull_request.number")
        .and_then(Value::as_i64)
        .ok_or("field `pull_request.number` is missing or not a number")?;
    let head_repo = opt_text(&b, "pull_request.head.repo.full_name");
    Ok(Some(Delivery::Change {
        runs: matches!(action.as_str(), "opened" | "synchronize" | "reopened"),
        base: text(&b, "pull_request.base.ref")?.to_owned(),
        commit: commit_at(&b, "pull_request.head.sha")?,
        from_fork: head_repo.is_none_or(|h| !h.eq_ignore_ascii_case(&repository)),
        by: shown(sender.unwrap_or("someone")),
        number,
        action,
        repository,
    }))
}

/// A GitLab `Push Hook` or `Merge Request Hook` body (`Ok(None)`: another
/// event).
pub fn gitlab_delivery(event: &str, body: &[u8]) -> Result<Option<Delivery>, String> {
    if !matches!(event, "Push Hook" | "Merge Request Hook") {
        return Ok(None);
    }
    let b = json(body)?;
    let repository = text(&b, "project.path_with_namespace")?.to_owned();
    if event == "Push Hook" {
        // `checkout_sha` is null when the branch was deleted (`after` is
        // then all zeros).
        let after = text(&b, "after")?;
        let commit = match opt_text(&b, "checkout_sha") {
            Some(_) => Some(commit_at(&b, "checkout_sha")?),
            None if zeros(after) => None,
            None => Some(commit_at(&b, "after")?),
        };
        return Ok(Some(Delivery::Push {
            reference: text(&b, "ref")?.to_owned(),
            commit,
            by: shown(
                opt_text(&b, "user_username")
                    .or(opt_text(&b, "user_name"))
                    .unwrap_or("someone"),
            ),
            repository,
        }));
    }
    let action = text(&b, "object_attributes.action")?.to_owned();
    let number = at(&b, "object_attributes.iid")
        .and_then(Value::as_i64)
        .ok_or("field `object_attributes.iid` is missing or not a number")?;
    // An `update` brings commits only when it says what the head was
    // (`oldrev`); a new title or label is an update too.
    let new_commits = opt_text(&b, "object_attributes.oldrev").is_some();
    let project_id = |k: &str| at(&b, &format!("object_attributes.{k}")).and_then(Value::as_i64);
    Ok(Some(Delivery::Change {
        runs: matches!(action.as_str(), "open" | "reopen") || (action == "update" && new_commits),
        base: text(&b, "object_attributes.target_branch")?.to_owned(),
        commit: commit_at(&b, "object_attributes.last_commit.id")?,
        from_fork: project_id("source_project_id") != project_id("target_project_id"),
        by: shown(opt_text(&b, "user.username").unwrap_or("someone")),
        number,
        action,
        repository,
    }))
}

/// A run to queue for a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    pub pipeline: String,
    /// `push` or `pull_request` (the triggered run's kind, and the run's
    /// trigger).
    pub kind: &'static str,
    pub commit: String,
    /// `push to main by octocat (github delivery 72d3...)`.
    pub evidence: String,
    /// What the delivery was about, for a key when it has no id of its own
    /// and for the audit log: `push:refs/heads/main`, `pull_request:12`.
    pub about: String,
}

/// What to fire for a delivery (`Err`: why nothing, in a sentence).
pub fn decide(
    forge: &Forge,
    kind: Kind,
    delivery: &Delivery,
    id: Option<&str>,
) -> Result<Fire, String> {
    let (repository, word) = match delivery {
        Delivery::Push { repository, .. } => (repository, "push"),
        Delivery::Change { repository, .. } => (repository, "pull_request"),
    };
    let Some(repo) = forge.repository(repository) else {
        return Err(format!(
            "repository `{}` is not in the hooks file",
            shown(repository)
        ));
    };
    let of = |what: String| match id {
        Some(id) => format!("{what} ({} delivery {id})", kind.as_str()),
        None => format!("{what} ({})", kind.as_str()),
    };
    match delivery {
        Delivery::Push {
            reference,
            commit,
            by,
            ..
        } => {
            let Some(branch) = reference.strip_prefix("refs/heads/") else {
                return Err(format!(
                    "`{}` is not a branch: only pushes to branches run",
                    shown(reference)
                ));
            };
            if !repo.branches.iter().any(|b| b == branch) {
                return Err(format!(
                    "branch `{}` of {} is not among those that run ({})",
                    shown(branch),
                    repo.name,
                    repo.branches.join(", ")
                ));
            }
            let Some(commit) = commit else {
                return Err(format!("branch `{}` was deleted", shown(branch)));
            };
            Ok(Fire {
                pipeline: repo.pipeline.clone(),
                kind: word,
                commit: commit.clone(),
                evidence: of(format!("push to {} by {by}", shown(branch))),
                about: format!("push:{}", shown(reference)),
            })
        }
        Delivery::Change {
            number,
            action,
            runs,
            base,
            commit,
            from_fork,
            by,
            ..
        } => {
            let name = match kind {
                Kind::GitHub => "pull request",
                Kind::GitLab => "merge request",
            };
            if !repo.pull_requests {
                return Err(format!(
                    "{name}s of {} do not run (`pull_requests: false`)",
                    repo.name
                ));
            }
            if !runs {
                return Err(format!(
                    "{name} #{number} `{}`: only one opened, reopened or given new commits runs",
                    shown(action)
                ));
            }
            if *from_fork {
                return Err(format!(
                    "{name} #{number} comes from a fork: its code is not run on this team's agents"
                ));
            }
            if !repo.branches.iter().any(|b| b == base) {
                return Err(format!(
                    "{name} #{number} is into `{}`, not a branch that runs ({})",
                    shown(base),
                    repo.branches.join(", ")
                ));
            }
            Ok(Fire {
                pipeline: repo.pipeline.clone(),
                kind: word,
                commit: commit.clone(),
                evidence: of(format!(
                    "{name} #{number} {} into {} by {by}",
                    shown(action),
                    shown(base)
                )),
                about: format!("pull_request:{number}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_published_test_vector() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        let secret = "It's a Secret to Everybody";
        let sig = github_signature(secret.as_bytes(), b"Hello, World!");
        assert_eq!(
            sig,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let s = Secret::new(secret);
        assert!(github_verified(&s, Some(&sig), b"Hello, World!").is_ok());
        assert!(
            github_verified(
                &s,
                Some(&sig.to_uppercase().replace("SHA256", "sha256")),
                b"Hello, World!"
            )
            .is_ok(),
            "hex in either case"
        );
        assert!(github_verified(&s, Some(&sig), b"Hello, World?").is_err());
        assert!(github_verified(&s, None, b"Hello, World!").is_err());
        for bad in [
            "",
            "sha256=",
            "sha1=757107ea",
            "sha256=zz",
            &sig[..sig.len() - 2],
        ] {
            assert!(
                github_verified(&s, Some(bad), b"Hello, World!").is_err(),
                "{bad}"
            );
        }
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn a_gitlab_token_is_the_configured_one_or_nothing() {
        let s = Secret::new("tok-123456789012345");
        assert!(gitlab_verified(&s, Some("tok-123456789012345")).is_ok());
        assert!(gitlab_verified(&s, Some("tok-12345678901234")).is_err());
        assert!(gitlab_verified(&s, Some("")).is_err());
        assert!(gitlab_verified(&s, None).is_err());
    }

    #[test]
    fn delivery_ids_and_shown_text_are_tame() {
        assert_eq!(
            delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        for bad in ["", "a b", "a/b", "x\n", &"a".repeat(129)] {
            assert_eq!(delivery_id(bad), None, "{bad}");
        }
        assert_eq!(shown("a\u{1b}[31mb"), "a?[31mb");
        assert_eq!(shown(&"x".repeat(150)).chars().count(), 101);
    }

    const SHA: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn forge() -> Forge {
        Forge {
            secret: Secret::new("s"),
            repositories: vec![Repository {
                name: "acme/churn".into(),
                pipeline: "churn".into(),
                branches: vec!["main".into()],
                pull_requests: true,
            }],
        }
    }

    fn push(reference: &str, after: &str) -> Vec<u8> {
        serde_json::json!({
            "ref": reference, "before": "0".repeat(40), "after": after,
            "repository": {"full_name": "Acme/Churn"},
            "pusher": {"name": "octocat"}, "sender": {"login": "octocat"},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_push_to_a_configured_branch_fires_at_its_commit() {
        let d = github_delivery("push", &push("refs/heads/main", SHA))
            .unwrap()
            .unwrap();
        let f = decide(&forge(), Kind::GitHub, &d, Some("72d3")).unwrap();
        assert_eq!(
            (f.pipeline.as_str(), f.kind, f.commit.as_str()),
            ("churn", "push", SHA)
        );
        assert_eq!(f.evidence, "push to main by octocat (github delivery 72d3)");
        let why = |reference: &str, after: &str| {
            let d = github_delivery("push", &push(reference, after))
                .unwrap()
                .unwrap();
            decide(&forge(), Kind::GitHub, &d, None).unwrap_err()
        };
        assert!(why("refs/heads/dev", SHA).contains("branch `dev`"));
        assert!(why("refs/tags/v1", SHA).contains("not a branch"));
        assert!(why("refs/heads/main", &"0".repeat(40)).contains("deleted"));
        let e = github_delivery("push", &push("refs/heads/main", "; rm -rf /")).unwrap_err();
        assert!(e.contains("field `after`"), "{e}");
        assert_eq!(github_delivery("issues", b"not even json"), Ok(None));
        let e = github_delivery("push", b"{\"ref\": 1}").unwrap_err();
        assert!(e.contains("repository.full_name"), "{e}");
        assert!(
            github_delivery("push", b"{oops")
                .unwrap_err()
                .contains("malformed JSON")
        );
    }

    fn pull(action: &str, head_repo: &str, base: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action, "number": 7,
            "pull_request": {"number": 7, "head": {"sha": SHA, "repo": {"full_name": head_repo}}, "base": {"ref": base}},
            "repository": {"full_name": "acme/churn"}, "sender": {"login": "hubot"},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_pull_request_runs_when_opened_or_given_commits_and_not_from_a_fork() {
        let go = |action: &str, head: &str, base: &str| {
            let d = github_delivery("pull_request", &pull(action, head, base))
                .unwrap()
                .unwrap();
            decide(&forge(), Kind::GitHub, &d, Some("d1"))
        };
        let f = go("synchronize", "acme/churn", "main").unwrap();
        assert_eq!((f.kind, f.commit.as_str()), ("pull_request", SHA));
        assert_eq!(
            f.evidence,
            "pull request #7 synchronize into main by hubot (github delivery d1)"
        );
        assert!(go("opened", "acme/churn", "main").is_ok());
        assert!(go("reopened", "acme/churn", "main").is_ok());
        assert!(
            go("closed", "acme/churn", "main")
                .unwrap_err()
                .contains("`closed`")
        );
        assert!(
            go("opened", "mallory/churn", "main")
                .unwrap_err()
                .contains("fork")
        );
        assert!(
            go("opened", "acme/churn", "dev")
                .unwrap_err()
                .contains("`dev`")
        );
        let mut no_prs = forge();
        no_prs.repositories[0].pull_requests = false;
        let d = github_delivery("pull_request", &pull("opened", "acme/churn", "main"))
            .unwrap()
            .unwrap();
        assert!(decide(&no_prs, Kind::GitHub, &d, None).is_err());
    }

    #[test]
    fn gitlab_pushes_and_merge_requests() {
        let body = serde_json::json!({
            "object_kind": "push", "ref": "refs/heads/main", "before": "0".repeat(40),
            "after": SHA, "checkout_sha": SHA, "user_username": "jsmith",
            "project": {"path_with_namespace": "acme/churn"},
        });
        let d = gitlab_delivery("Push Hook", body.to_string().as_bytes())
            .unwrap()
            .unwrap();
        let f = decide(&forge(), Kind::GitLab, &d, None).unwrap();
        assert_eq!(f.evidence, "push to main by jsmith (gitlab)");
        let deleted = serde_json::json!({
            "ref": "refs/heads/main", "after": "0".repeat(40), "checkout_sha": null,
            "project": {"path_with_namespace": "acme/churn"},
        });
        let d = gitlab_delivery("Push Hook", deleted.to_string().as_bytes())
            .unwrap()
            .unwrap();
        assert!(
            decide(&forge(), Kind::GitLab, &d, None)
                .unwrap_err()
                .contains("deleted")
        );
        let mr = |action: &str, oldrev: Option<&str>, source: i64| {
            let mut attrs = serde_json::json!({
                "iid": 3, "action": action, "target_branch": "main",
                "source_project_id": source, "target_project_id": 1,
                "last_commit": {"id": SHA},
            });
            if let Some(o) = oldrev {
                attrs["oldrev"] = o.into();
            }
            let body = serde_json::json!({
                "object_kind": "merge_request", "user": {"username": "jsmith"},
                "project": {"path_with_namespace": "acme/churn"}, "object_attributes": attrs,
            });
            let d = gitlab_delivery("Merge Request Hook", body.to_string().as_bytes())
                .unwrap()
                .unwrap();
            decide(&forge(), Kind::GitLab, &d, Some("u1"))
        };
        assert_eq!(
            mr("open", None, 1).unwrap().evidence,
            "merge request #3 open into main by jsmith (gitlab delivery u1)"
        );
        assert!(mr("update", Some(SHA), 1).is_ok());
        assert!(mr("update", None, 1).unwrap_err().contains("`update`"));
        assert!(mr("merge", None, 1).is_err());
        assert!(mr("open", None, 2).unwrap_err().contains("fork"));
        assert_eq!(gitlab_delivery("Tag Push Hook", b"{}"), Ok(None));
    }
}
