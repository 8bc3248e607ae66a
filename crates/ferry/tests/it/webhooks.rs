//! `ferry server --hooks` and `ferry agent` together, as a team runs them:
//! GitHub posts a signed push of a commit the agent's clone does not have
//! yet; the server queues a run at it (once, however often the delivery is
//! replayed); the agent fetches the commit from `origin`, runs the pipeline
//! at it in a worktree it removes after, and the run records the commit.

use crate::support::*;
use std::io::{BufRead, Read, Write};
use std::path::Path;

const SECRET: &str = "It's a Secret to Everybody";

const SPEC: &str = r#"
name: churn
stages:
  train:
    cmd: mkdir -p work && cat msg.txt > work/model.txt
    deps: [msg.txt]
    outs: [work/model.txt]
"#;

/// `ferry server --hooks` in the project, with the secret in its
/// environment only; killed when dropped.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(p: &Proj, hooks: &Path) -> Self {
        let mut child = p
            .cmd(&["server", "--port", "0", "--hooks"])
            .arg(hooks)
            .env("FERRY_GITHUB_WEBHOOK_SECRET", SECRET)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the server ended: {said:?}"))
                .unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
            said.push(line);
        };
        let banner: Vec<String> = lines.by_ref().take(2).map(Result::unwrap).collect();
        assert!(
            banner
                .iter()
                .any(|l| l.contains(&format!("github webhooks: http://{addr}/hooks/github"))),
            "{banner:?}"
        );
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    /// POSTs a delivery; the status and body.
    fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        let mut req = format!(
            "POST /hooks/github HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(o: &Out) -> serde_json::Value {
    assert_eq!(o.code, 0, "{o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"))
}

#[test]
fn a_signed_push_runs_the_pipeline_at_the_pushed_commit() {
    // A team's repository (`origin`), the agent's clone of it (the
    // project), and a developer's clone that pushes a new commit.
    let p = Proj::new(SPEC);
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin.git");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "-q", "--bare", "-b", "main"]);
    p.write("msg.txt", "one\n");
    p.write(".gitignore", ".ferry/\nwork/\n");
    git(p.path(), &["init", "-q", "-b", "main"]);
    git(p.path(), &["add", "."]);
    git(p.path(), &["commit", "-qm", "one"]);
    let first = git(p.path(), &["rev-parse", "HEAD"]);
    git(
        p.path(),
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    git(p.path(), &["push", "-q", "origin", "main"]);
    let dev = tmp.path().join("dev");
    git(
        tmp.path(),
        &["clone", "-q", origin.to_str().unwrap(), "dev"],
    );
    std::fs::write(dev.join("msg.txt"), "two\n").unwrap();
    git(&dev, &["commit", "-qam", "two"]);
    git(&dev, &["push", "-q", "origin", "main"]);
    let pushed = git(&dev, &["rev-parse", "HEAD"]);
    assert_ne!(first, pushed);

    let hooks = tmp.path().join("hooks.yaml");
    std::fs::write(
        &hooks,
        "github:\n  secret_env: FERRY_GITHUB_WEBHOOK_SECRET\n  repositories:\n    acme/churn: {pipeline: churn, branches: [main]}\n",
    )
    .unwrap();
    let server = Server::start(&p, &hooks);
    let body = serde_json::json!({
        "ref": "refs/heads/main", "before": first, "after": pushed,
        "repository": {"full_name": "acme/churn", "default_branch": "main"},
        "pusher": {"name": "octocat"}, "sender": {"login": "octocat"},
        "head_commit": {"id": pushed, "message": "two"},
    })
    .to_string();
    let sig = ferry_tracking::hooks::github_signature(SECRET.as_bytes(), body.as_bytes());
    let delivery = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", delivery),
        ("X-Hub-Signature-256", sig.as_str()),
    ];
    let (status, answer) = server.post(&headers, body.as_bytes());
    assert_eq!(status, 202, "{answer}");
    // Replayed: acknowledged, nothing more queued. Unsigned: refused.
    let (status, answer) = server.post(&headers, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("duplicate"), "{answer}");
    let (status, _) = server.post(&headers[..2], body.as_bytes());
    assert_eq!(status, 401);

    // The agent's tick claims the run, fetches the commit, runs it in a
    // worktree and removes it.
    let t = json(&p.ferry(&["agent", "--once", "--json"]));
    assert_eq!(t["ran"][0]["kind"], "push", "{t}");
    assert_eq!(t["ran"][0]["commit"], pushed.as_str(), "{t}");
    let ran = &t["ran"][1];
    assert_eq!(ran["succeeded"], true, "{t}");
    assert!(
        ran["message"]
            .as_str()
            .unwrap()
            .ends_with(&format!("(at commit {})", &pushed[..12])),
        "{t}"
    );
    let run_id = ran["run_id"].as_str().unwrap();
    let show = json(&p.ferry(&["runs", "show", run_id, "--json"]));
    let shown = show.to_string();
    assert!(
        shown.contains(&format!("\"git_commit\":\"{pushed}\"")),
        "{shown}"
    );
    assert!(shown.contains("\"trigger\":\"push\""), "{shown}");
    // The project's own work tree is as it was: the run was the commit's.
    assert_eq!(p.read("msg.txt"), "one\n");
    assert_eq!(p.read("work/model.txt"), "");
    let left: Vec<_> = std::fs::read_dir(p.path().join(".ferry/worktrees"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(git(p.path(), &["worktree", "list"]).lines().count(), 1);

    let h = json(&p.ferry(&["monitor", "history", "--json"]));
    let triggers = h["triggers"].as_array().unwrap();
    assert_eq!(triggers.len(), 1, "{h}");
    assert_eq!(triggers[0]["state"], "succeeded");
    assert_eq!(triggers[0]["commit"], pushed.as_str());
    assert_eq!(
        triggers[0]["evidence"],
        format!("push to main by octocat (github delivery {delivery})")
    );
    drop(server);
}

#[test]
fn a_hooks_file_with_problems_stops_the_server_before_it_listens() {
    let p = Proj::new(SPEC);
    p.write(
        "hooks.yaml",
        "github:\n  secret_env: FERRY_TEST_NOT_SET_ANYWHERE\n  repositories:\n    churn: {pipeline: churn}\n",
    );
    let o = p.ferry(&["server", "--port", "0", "--hooks", "hooks.yaml"]);
    assert_eq!(o.code, 2, "{o:?}");
    for said in [
        "hooks.yaml:2:15: github.secret_env: the environment variable FERRY_TEST_NOT_SET_ANYWHERE is not set",
        "hooks.yaml:4:5: github.repositories.churn: a repository is named `owner/name`",
        "`branches` is missing",
        "3 errors in the hooks file",
    ] {
        assert!(o.stderr.contains(said), "{said}\n{o:?}");
    }
}
