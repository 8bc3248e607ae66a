//! Temporary projects and a runner for the built binary.

use std::path::Path;
use std::process::{Command, Output};

pub struct Proj {
    pub dir: tempfile::TempDir,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<Output> for Out {
    fn from(o: Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

impl Proj {
    pub fn new(spec: &str) -> Self {
        let p = Proj {
            dir: tempfile::tempdir().unwrap(),
        };
        p.write("ferry.yaml", spec);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ferry_bin());
        c.args(args).current_dir(self.path()).env("NO_COLOR", "1");
        c
    }

    pub fn ferry(&self, args: &[&str]) -> Out {
        self.cmd(args).output().unwrap().into()
    }

    /// `ferry run` that must succeed.
    pub fn run_ok(&self) -> Out {
        let o = self.ferry(&["run"]);
        assert_eq!(o.code, 0, "{o:?}");
        o
    }

    /// Lines of `ferry status`, e.g. `train  will run: dep train.py changed`.
    pub fn status(&self) -> String {
        let o = self.ferry(&["status"]);
        assert_eq!(o.code, 0, "{o:?}");
        o.stdout
    }

    /// Stage -> status of the last `run --json`.
    pub fn run_json(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["run", "--json"];
        args.extend_from_slice(extra);
        let o = self.ferry(&args);
        let v: serde_json::Value =
            serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {o:?}"));
        (o.code, v)
    }
}

pub fn stage_statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

pub fn counter(p: &Proj, rel: &str) -> usize {
    p.read(rel).lines().count()
}

/// Runs git in `dir` as a test's author; its output, trimmed (a failure
/// fails the test with git's words).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}
