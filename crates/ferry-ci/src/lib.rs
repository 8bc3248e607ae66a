//! The workflows `ferry ci export` writes for a team's CI, from what the
//! pipeline says of itself: triggered only by the pipeline's own inputs
//! (its spec, params, environment, the sources and data pointers its stages
//! read), ferry installed from its wheel, the remote's run cache restored,
//! what ran shared from the default branch only, the reports kept.
//!
//! Invariants: the text depends only on the [`Workflow`] it is given (the
//! same pipeline writes the same bytes, so re-exporting an unchanged
//! pipeline changes nothing); secrets appear only as `secrets.NAME`
//! references; every path and name written into the workflow is checked
//! first, so nothing the spec holds can become an expression or a command.

use std::fmt::Write as _;

/// Everything a workflow is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// The pipeline's name.
    pub pipeline: String,
    /// The project's folder inside the repository (`""`: its root).
    pub project_dir: String,
    /// The repository paths whose change starts the workflow (files, and
    /// folders as `dir/**`), sorted, each once.
    pub inputs: Vec<String>,
    /// The branch whose pushes share what ran (the default branch).
    pub branch: String,
    /// How ferry is installed: a `uv tool install` argument (the wheel's
    /// package with its version, or a wheel's URL).
    pub install: String,
    /// Secrets the run needs, as variables of the same name.
    pub secrets: Vec<String>,
    /// A team server the run records to (`ferry run --server`).
    pub server: Option<String>,
    /// Reports the stages write (project paths), kept as an artifact.
    pub reports: Vec<String>,
    /// Where the workflow file is, in the repository (it starts itself
    /// when it changes).
    pub file: String,
}

/// A workflow that cannot be written: every problem, each with what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<String>);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Invalid {}

/// Whether `s` can be written into a workflow as a plain scalar: letters,
/// digits and `/._-*@+=:` only (no `$`, quote, space, `#` or newline, so
/// no expression, comment or second line), not starting with a character
/// YAML gives a meaning to.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '*' | '@' | '+' | '=' | ':')
        })
        && !s.starts_with(['-', '*', '@', ':'])
}

/// A secret's name as GitHub allows it: letters, digits and `_`, not
/// starting with a digit or `GITHUB_`.
fn secret_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !s.to_ascii_uppercase().starts_with("GITHUB_")
}

impl Workflow {
    fn check(&self) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        let mut path = |what: &str, p: &str| {
            if !plain(p) || p.contains("..") || p.starts_with('/') {
                problems.push(format!(
                    "{what} `{p}` cannot be written into a workflow (letters, digits, `/._-*` only, inside the repository)"
                ));
            }
        };
        for p in &self.inputs {
            path("the input", p);
        }
        for p in &self.reports {
            path("the report", p);
        }
        if !self.project_dir.is_empty() {
            path("the project folder", &self.project_dir);
        }
        path("the workflow file", &self.file);
        path("the branch", &self.branch);
        if !plain(&self.install) {
            problems.push(format!(
                "the install source `{}` is not a package or URL",
                self.install
            ));
        }
        if let Some(s) = &self.server
            && !(plain(s) && (s.starts_with("https://") || s.starts_with("http://")))
        {
            problems.push(format!("the server `{s}` is not an http(s) URL"));
        }
        for s in &self.secrets {
            if !secret_name(s) {
                problems.push(format!("`{s}` is not a secret's name"));
            }
        }
        if !self
            .pipeline
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            problems.push(format!(
                "the pipeline's name `{}` cannot name a workflow",
                self.pipeline
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Invalid(problems))
        }
    }
}

/// The workflow for GitHub Actions, as the text of its file.
pub fn github(w: &Workflow) -> Result<String, Invalid> {
    w.check()?;
    let mut y = String::new();
    let mut line = |indent: usize, text: &str| {
        let _ = writeln!(y, "{:indent$}{text}", "");
    };
    line(
        0,
        "# Written by `ferry ci export github` from ferry.yaml: run it again after",
    );
    line(
        0,
        "# changing the pipeline (an unchanged pipeline writes the same file).",
    );
    line(0, &format!("name: ferry {}", w.pipeline));
    line(0, "on:");
    line(2, "push:");
    line(4, &format!("branches: [{}]", w.branch));
    line(4, "paths:");
    for p in &w.inputs {
        line(6, &format!("- {p}"));
    }
    line(2, "pull_request:");
    line(4, "paths:");
    for p in &w.inputs {
        line(6, &format!("- {p}"));
    }
    line(2, "workflow_dispatch:");
    line(0, "permissions:");
    line(2, "contents: read");
    line(0, "concurrency:");
    line(
        2,
        &format!("group: ferry-{}-${{{{ github.ref }}}}", w.pipeline),
    );
    line(2, "cancel-in-progress: true");
    line(0, "jobs:");
    line(2, "pipeline:");
    line(4, "runs-on: ubuntu-latest");
    line(4, "timeout-minutes: 120");
    if !w.project_dir.is_empty() {
        line(4, "defaults:");
        line(6, "run:");
        line(8, &format!("working-directory: {}", w.project_dir));
    }
    let mut secrets = w.secrets.clone();
    if w.server.is_some() {
        secrets.push("FERRY_TOKEN".into());
    }
    secrets.sort();
    secrets.dedup();
    if !secrets.is_empty() {
        line(4, "env:");
        for s in &secrets {
            line(6, &format!("{s}: ${{{{ secrets.{s} }}}}"));
        }
    }
    line(4, "steps:");
    line(6, "- uses: actions/checkout@v4");
    line(6, "- uses: astral-sh/setup-uv@v6");
    line(8, "with:");
    line(10, "enable-cache: true");
    line(6, "- name: Install ferry");
    line(8, &format!("run: uv tool install {}", w.install));
    line(
        6,
        "- name: Run the pipeline (what the remote's run cache has is restored, not run)",
    );
    let server = w
        .server
        .as_ref()
        .map(|s| format!(" --server {s}"))
        .unwrap_or_default();
    line(8, &format!("run: ferry run --trigger ci{server}"));
    line(6, "- name: Share what ran, from the default branch only");
    line(8, "if: github.event_name == 'push'");
    line(8, "run: ferry push");
    if !w.reports.is_empty() {
        line(6, "- name: Keep the reports");
        line(8, "if: always()");
        line(8, "uses: actions/upload-artifact@v4");
        line(8, "with:");
        line(10, &format!("name: ferry-{}-reports", w.pipeline));
        line(10, "if-no-files-found: ignore");
        line(10, "path: |");
        for r in &w.reports {
            let p = if w.project_dir.is_empty() {
                r.clone()
            } else {
                format!("{}/{r}", w.project_dir)
            };
            line(12, &p);
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> Workflow {
        Workflow {
            pipeline: "iris".into(),
            project_dir: "examples/iris".into(),
            inputs: vec![
                ".github/workflows/ferry-iris.yml".into(),
                "examples/iris/data/iris.csv".into(),
                "examples/iris/ferry.yaml".into(),
                "examples/iris/params.yaml".into(),
                "examples/iris/prepare.py".into(),
            ],
            branch: "main".into(),
            install: "ferry-ml==0.1.0".into(),
            secrets: vec!["AWS_SECRET_ACCESS_KEY".into(), "AWS_ACCESS_KEY_ID".into()],
            server: Some("https://ferry.example.com".into()),
            reports: vec!["work/validate.html".into(), "work/validate.json".into()],
            file: ".github/workflows/ferry-iris.yml".into(),
        }
    }

    #[test]
    fn the_iris_workflow() {
        insta::assert_snapshot!(github(&iris()).unwrap());
    }

    #[test]
    fn the_same_pipeline_writes_the_same_bytes() {
        assert_eq!(github(&iris()).unwrap(), github(&iris()).unwrap());
    }

    #[test]
    fn nothing_from_the_spec_becomes_an_expression_or_a_command() {
        let mut w = iris();
        w.inputs.push("data/${{ github.token }}".into());
        w.inputs.push("a\nrun: curl evil".into());
        w.inputs.push("../outside".into());
        w.reports.push("work/x'y".into());
        w.secrets.push("GITHUB_TOKEN".into());
        w.secrets.push("A B".into());
        w.server = Some("https://x; curl evil".into());
        let e = github(&w).unwrap_err();
        assert_eq!(e.0.len(), 7, "{e}");
    }
}
