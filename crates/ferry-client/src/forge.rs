//! Pull-request comments on GitHub and GitLab through their REST APIs: the
//! one comment per pull request and pipeline that `ferry report --post`
//! keeps up to date. It is found by its marker (a line only ferry writes),
//! edited when it is there, created when it is not, so a pull request
//! pushed to ten times has one report, the latest.
//!
//! Where the API is and which pull request come from the CI system's own
//! variables (the operator's environment, never a run's records); every
//! part of a URL is checked before it is built, and the token is sent only
//! as a header, never written into an error.

use std::time::Duration;

/// Where a comment goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forge {
    /// A pull request of `repo` (`owner/name`) on GitHub's API at `api`
    /// (`https://api.github.com`, or an Enterprise server's `/api/v3`).
    GitHub {
        api: String,
        repo: String,
        number: u64,
    },
    /// A merge request of project `project` (its numeric id) on GitLab's
    /// API at `api` (`https://gitlab.com/api/v4`).
    GitLab { api: String, project: u64, iid: u64 },
}

/// What posting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The comment's id on the forge.
    pub id: u64,
    /// Created (`true`) or edited in place (`false`).
    pub created: bool,
    /// Where a person reads it, when the forge says.
    pub url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint} answered {status}: {message}")]
    Status {
        endpoint: String,
        status: u16,
        message: String,
    },
}

/// Pages of comments read at most, looking for the marker (100 each).
const MAX_PAGES: u32 = 30;

impl Forge {
    /// Checks what a URL will be built from: the API is https (or http on
    /// this machine, for a test's fake), the repository a plain
    /// `owner/name`.
    pub fn check(&self) -> Result<(), ForgeError> {
        let api = match self {
            Forge::GitHub { api, repo, .. } => {
                let parts: Vec<&str> = repo.split('/').collect();
                let part_ok = |p: &str| {
                    !p.is_empty()
                        && p != "."
                        && p != ".."
                        && p.len() <= 100
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                };
                if parts.len() != 2 || !parts.iter().all(|p| part_ok(p)) {
                    return Err(ForgeError::Invalid(format!(
                        "GITHUB_REPOSITORY `{repo}` is not `owner/name`"
                    )));
                }
                api
            }
            Forge::GitLab { api, .. } => api,
        };
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| api.starts_with(p));
        if !(api.starts_with("https://") || loopback)
            || api.contains(['?', '#', ' ', '@'])
            || api.len() <= "https://".len()
        {
            return Err(ForgeError::Invalid(format!(
                "the API URL `{api}` is not https:// (http:// only on this machine's loopback) or has a query, fragment or credentials"
            )));
        }
        Ok(())
    }

    fn comments_url(&self, page: u32) -> String {
        match self {
            Forge::GitHub { api, repo, number } => format!(
                "{}/repos/{repo}/issues/{number}/comments?per_page=100&page={page}",
                api.trim_end_matches('/')
            ),
            Forge::GitLab { api, project, iid } => format!(
                "{}/projects/{project}/merge_requests/{iid}/notes?per_page=100&page={page}&sort=asc&order_by=created_at",
                api.trim_end_matches('/')
            ),
        }
    }

    fn create_url(&self) -> String {
        let url = self.comments_url(1);
        url[..url.find('?').unwrap_or(url.len())].to_owned()
    }

    fn edit_url(&self, id: u64) -> String {
        match self {
            Forge::GitHub { api, repo, .. } => format!(
                "{}/repos/{repo}/issues/comments/{id}",
                api.trim_end_matches('/')
            ),
            Forge::GitLab { .. } => format!("{}/{id}", self.create_url()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Forge::GitHub { .. } => "GitHub",
            Forge::GitLab { .. } => "GitLab",
        }
    }
}

/// Edits the comment holding `marker` on the pull request, or creates one,
/// to say `body` (which must hold the marker, so the next post finds it).
pub fn upsert_comment(
    forge: &Forge,
    token: &str,
    marker: &str,
    body: &str,
) -> Result<Posted, ForgeError> {
    forge.check()?;
    if !body.contains(marker) {
        return Err(ForgeError::Invalid(
            "the comment does not hold its marker".into(),
        ));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(60)))
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let call = Call {
        agent,
        forge,
        token,
    };
    let me = call.me()?;
    let found = call.find(marker, &me)?;
    let payload = serde_json::json!({ "body": body }).to_string();
    let (method, url) = match found {
        Some(id) => (
            match forge {
                Forge::GitHub { .. } => "PATCH",
                Forge::GitLab { .. } => "PUT",
            },
            forge.edit_url(id),
        ),
        None => ("POST", forge.create_url()),
    };
    let answer = call.send(method, &url, Some(&payload))?;
    let id = answer
        .get("id")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ForgeError::Status {
            endpoint: format!("{method} {}", path_of(&url)),
            status: 200,
            message: "the answer has no comment id".into(),
        })?;
    Ok(Posted {
        id,
        created: found.is_none(),
        url: answer
            .get("html_url")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
    })
}

fn no_field(endpoint: &str, field: &str) -> ForgeError {
    ForgeError::Status {
        endpoint: endpoint.to_owned(),
        status: 200,
        message: format!("the answer has no `{field}`"),
    }
}

/// The path of `url`, for errors (the API's host is the operator's, the
/// path says which call).
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split('?').next().unwrap_or(path)
}

/// Who posts: only a comment of theirs is edited (anyone can write the
/// marker into a comment of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Me {
    /// A GitHub login.
    Login(String),
    /// A GitLab user id.
    Id(u64),
}

/// The login GitHub Actions' own token comments as (it may not read
/// `/user`).
const ACTIONS_BOT: &str = "github-actions[bot]";

struct Call<'a> {
    agent: ureq::Agent,
    forge: &'a Forge,
    token: &'a str,
}

impl Call<'_> {
    /// The token's user: `/user` on either forge; on GitHub a token that
    /// may not read it (Actions' own) comments as the Actions bot.
    fn me(&self) -> Result<Me, ForgeError> {
        let url = match self.forge {
            Forge::GitHub { api, .. } | Forge::GitLab { api, .. } => {
                format!("{}/user", api.trim_end_matches('/'))
            }
        };
        let answer = self.send("GET", &url, None);
        match (self.forge, answer) {
            (Forge::GitHub { .. }, Ok(v)) => v
                .get("login")
                .and_then(serde_json::Value::as_str)
                .map(|l| Me::Login(l.to_owned()))
                .ok_or_else(|| no_field("GET /user", "login")),
            (Forge::GitHub { .. }, Err(ForgeError::Status { status: 403, .. })) => {
                Ok(Me::Login(ACTIONS_BOT.to_owned()))
            }
            (Forge::GitLab { .. }, Ok(v)) => v
                .get("id")
                .and_then(serde_json::Value::as_u64)
                .map(Me::Id)
                .ok_or_else(|| no_field("GET /user", "id")),
            (_, Err(e)) => Err(e),
        }
    }

    /// The id of the first comment of `me` that holds `marker`.
    fn find(&self, marker: &str, me: &Me) -> Result<Option<u64>, ForgeError> {
        for page in 1..=MAX_PAGES {
            let answer = self.send("GET", &self.forge.comments_url(page), None)?;
            let Some(comments) = answer.as_array() else {
                return Err(ForgeError::Status {
                    endpoint: format!("GET {}", path_of(&self.forge.comments_url(page))),
                    status: 200,
                    message: "the answer is not a list of comments".into(),
                });
            };
            for c in comments {
                let body = c.get("body").and_then(serde_json::Value::as_str);
                let mine = match me {
                    Me::Login(l) => {
                        c.pointer("/user/login").and_then(serde_json::Value::as_str)
                            == Some(l.as_str())
                    }
                    Me::Id(id) => {
                        c.pointer("/author/id").and_then(serde_json::Value::as_u64) == Some(*id)
                            && c.get("system").and_then(serde_json::Value::as_bool) != Some(true)
                    }
                };
                if mine
                    && body.is_some_and(|b| b.contains(marker))
                    && let Some(id) = c.get("id").and_then(serde_json::Value::as_u64)
                {
                    return Ok(Some(id));
                }
            }
            if comments.len() < 100 {
                break;
            }
        }
        Ok(None)
    }

    /// The forge's headers: its way of sending the token, the JSON it speaks.
    fn headers<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let r = match self.forge {
            Forge::GitHub { .. } => r
                .header("authorization", format!("Bearer {}", self.token))
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28"),
            Forge::GitLab { .. } => r.header("private-token", self.token),
        };
        r.header("user-agent", concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .header("content-type", "application/json")
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&str>,
    ) -> Result<serde_json::Value, ForgeError> {
        let endpoint = format!("{method} {}", path_of(url));
        let sent = match (method, body) {
            ("GET", None) => self.headers(self.agent.get(url)).call(),
            ("POST", Some(b)) => self.headers(self.agent.post(url)).send(b),
            ("PATCH", Some(b)) => self.headers(self.agent.patch(url)).send(b),
            ("PUT", Some(b)) => self.headers(self.agent.put(url)).send(b),
            _ => {
                return Err(ForgeError::Invalid(format!(
                    "{endpoint}: not a call ferry makes"
                )));
            }
        };
        let mut resp = sent.map_err(|e| ForgeError::Transport {
            endpoint: endpoint.clone(),
            message: e.to_string().replace(self.token, "<token>"),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| ForgeError::Transport {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?;
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if !(200..300).contains(&status) {
            let said = value
                .get("message")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| text.chars().take(300).collect());
            let hint = match status {
                401 | 403 => format!(
                    " (the token cannot comment on {}'s pull requests: {})",
                    self.forge.name(),
                    match self.forge {
                        Forge::GitHub { .. } =>
                            "the workflow needs `permissions: pull-requests: write`",
                        Forge::GitLab { .. } =>
                            "GITLAB_TOKEN needs the api scope and at least the Reporter role",
                    }
                ),
                _ => String::new(),
            };
            return Err(ForgeError::Status {
                endpoint,
                status,
                message: format!("{}{hint}", said.replace(self.token, "<token>")),
            });
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github(repo: &str, api: &str) -> Forge {
        Forge::GitHub {
            api: api.into(),
            repo: repo.into(),
            number: 7,
        }
    }

    #[test]
    fn urls_are_built_from_checked_parts_only() {
        let g = github("acme/churn", "https://api.github.com/");
        g.check().unwrap();
        assert_eq!(
            g.comments_url(2),
            "https://api.github.com/repos/acme/churn/issues/7/comments?per_page=100&page=2"
        );
        assert_eq!(
            g.create_url(),
            "https://api.github.com/repos/acme/churn/issues/7/comments"
        );
        assert_eq!(
            g.edit_url(9),
            "https://api.github.com/repos/acme/churn/issues/comments/9"
        );
        let l = Forge::GitLab {
            api: "https://gitlab.com/api/v4".into(),
            project: 42,
            iid: 3,
        };
        l.check().unwrap();
        assert_eq!(
            l.edit_url(5),
            "https://gitlab.com/api/v4/projects/42/merge_requests/3/notes/5"
        );
        for bad in ["acme", "acme/churn/x", "../x", "acme/..", "a b/c", "a/c?x"] {
            assert!(
                github(bad, "https://api.github.com").check().is_err(),
                "{bad}"
            );
        }
        for bad in [
            "http://api.github.com",
            "ftp://x",
            "https://user:pw@x",
            "https://x/?q",
            "https://",
        ] {
            assert!(github("a/b", bad).check().is_err(), "{bad}");
        }
        github("a/b", "http://127.0.0.1:8080").check().unwrap();
    }

    #[test]
    fn an_error_names_the_call_not_the_host() {
        assert_eq!(
            path_of("https://api.github.com/repos/a/b/issues/7/comments?per_page=100"),
            "/repos/a/b/issues/7/comments"
        );
    }
}
