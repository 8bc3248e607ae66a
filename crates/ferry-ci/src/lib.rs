//! The files `ferry ci export` writes for a team's CI (GitHub Actions,
//! GitLab CI, Jenkins), from what the pipeline says of itself: triggered
//! only by the pipeline's own inputs (its spec, params, environment, the
//! sources and data pointers its stages read), ferry installed from its
//! wheel, the remote's run cache restored, what ran shared from the default
//! branch only, the reports kept.
//!
//! One [`Workflow`] holds what every system's file is made from, and the
//! parts they share are made here once: the check of every value, the
//! secrets the run needs, the reports' repository paths, the `ferry run`
//! command and the header. Each system's module (`github`, `gitlab`,
//! `jenkins`) only spells them in its own syntax.
//!
//! Invariants: the text depends only on the [`Workflow`] and [`System`] it
//! is given (the same pipeline writes the same bytes, so re-exporting an
//! unchanged pipeline changes nothing); secrets appear only by name (GitHub
//! `secrets.NAME`, GitLab's CI/CD variables named in a comment, Jenkins
//! `credentials('NAME')`), never a value; every path and name written into
//! the file is checked first to be a plain word (no `$`, quote, backslash,
//! brace, space, `#` or newline), so nothing the spec holds can become an
//! expression, a variable, a Groovy string's interpolation or a command.

mod github;
mod gitlab;
mod jenkins;

use std::fmt::Write as _;

/// The CI systems `ferry ci export` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// GitHub Actions: a workflow under `.github/workflows/`.
    Github,
    /// GitLab CI: a job in `.gitlab-ci.yml` (or a file it includes).
    Gitlab,
    /// Jenkins: a declarative `Jenkinsfile` for a Multibranch Pipeline job.
    Jenkins,
}

impl System {
    /// Every system, in the order the CLI lists them.
    pub const ALL: [System; 3] = [System::Github, System::Gitlab, System::Jenkins];

    /// The name `ferry ci export NAME` takes.
    pub fn name(self) -> &'static str {
        match self {
            System::Github => "github",
            System::Gitlab => "gitlab",
            System::Jenkins => "jenkins",
        }
    }

    /// The system named `name` (as [`System::name`] spells it).
    pub fn parse(name: &str) -> Option<System> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Where the file goes by default, from the repository's root. A
    /// repository has one `.gitlab-ci.yml` and one `Jenkinsfile`: a second
    /// pipeline's is written elsewhere (`--output`) and included from the
    /// first (GitLab) or named as its job's Script Path (Jenkins).
    pub fn default_file(self, pipeline: &str) -> String {
        match self {
            System::Github => format!(".github/workflows/ferry-{pipeline}.yml"),
            System::Gitlab => ".gitlab-ci.yml".to_owned(),
            System::Jenkins => "Jenkinsfile".to_owned(),
        }
    }

    /// The file's text for `w`, every value checked first.
    pub fn write(self, w: &Workflow) -> Result<String, Invalid> {
        w.check(self)?;
        Ok(match self {
            System::Github => github::write(w),
            System::Gitlab => gitlab::write(w),
            System::Jenkins => jenkins::write(w),
        })
    }

    /// Whether `text` is the file `ferry ci export` wrote for this system
    /// and `pipeline`: what it may overwrite (a `.gitlab-ci.yml` or
    /// `Jenkinsfile` of the team's own, or another pipeline's, it must not).
    pub fn wrote(self, text: &str, pipeline: &str) -> bool {
        let names = self.names(pipeline);
        text.strip_prefix(self.comment_marker())
            .and_then(|t| t.strip_prefix(' '))
            .is_some_and(|t| t.starts_with(HEADER))
            && text.lines().any(|l| l.trim() == names)
    }

    /// The line of the file that names the pipeline (unindented).
    fn names(self, pipeline: &str) -> String {
        match self {
            System::Github => format!("name: ferry {pipeline}"),
            System::Gitlab => format!("ferry-{pipeline}:"),
            System::Jenkins => format!("stage('ferry {pipeline}') {{"),
        }
    }

    fn comment_marker(self) -> &'static str {
        match self {
            System::Github | System::Gitlab => "#",
            System::Jenkins => "//",
        }
    }

    /// Secret names this system keeps for itself (prefixes).
    fn reserved(self) -> &'static [&'static str] {
        match self {
            System::Github => &["GITHUB_"],
            System::Gitlab => &["CI_", "GITLAB_"],
            System::Jenkins => &["JENKINS_", "BUILD_"],
        }
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a CI file is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// The pipeline's name.
    pub pipeline: String,
    /// The project's folder inside the repository (`""`: its root).
    pub project_dir: String,
    /// The repository paths whose change starts the run (files, and
    /// folders as `dir/**`), sorted, each once.
    pub inputs: Vec<String>,
    /// The branch whose pushes share what ran (the default branch).
    pub branch: String,
    /// How ferry is installed with uv: the wheel's package with its
    /// version, or a wheel's URL.
    pub install: String,
    /// Secrets the run needs, as variables of the same name.
    pub secrets: Vec<String>,
    /// A team server the run records to (`ferry run --server`).
    pub server: Option<String>,
    /// Reports the stages write (project paths), kept as an artifact.
    pub reports: Vec<String>,
    /// The environment's requirements file (a repository path), which keys
    /// the cache of Python packages where the system keeps one (GitLab).
    pub requirements: Option<String>,
    /// Where the file is, in the repository (it starts the run when it
    /// changes).
    pub file: String,
}

/// A file that cannot be written: every problem, each with what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<String>);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Invalid {}

/// The workflow for GitHub Actions, as the text of its file.
pub fn github(w: &Workflow) -> Result<String, Invalid> {
    System::Github.write(w)
}

/// The job for GitLab CI, as the text of its file.
pub fn gitlab(w: &Workflow) -> Result<String, Invalid> {
    System::Gitlab.write(w)
}

/// The declarative pipeline for Jenkins, as the text of its Jenkinsfile.
pub fn jenkins(w: &Workflow) -> Result<String, Invalid> {
    System::Jenkins.write(w)
}

/// Whether `s` can be written into a CI file as it is: letters, digits and
/// `/._-*@+=:` only (no `$`, quote, backslash, brace, comma, space, `#` or
/// newline, so no expression, variable, interpolation, comment, second
/// word or second line in any of the three syntaxes or in a shell), not
/// starting with a character YAML gives a meaning to.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '*' | '@' | '+' | '=' | ':')
        })
        && !s.starts_with(['-', '*', '@', ':'])
}

/// A secret's name as the CI systems allow it: letters, digits and `_`,
/// not starting with a digit nor with a prefix the system keeps.
fn secret_name(s: &str, system: System) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && !system
            .reserved()
            .iter()
            .any(|p| s.to_ascii_uppercase().starts_with(p))
}

impl Workflow {
    fn check(&self, system: System) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        let mut path = |what: &str, p: &str| {
            if !plain(p) || p.contains("..") || p.starts_with('/') {
                problems.push(format!(
                    "{what} `{p}` cannot be written into a CI file (letters, digits, `/._-*` only, inside the repository)"
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
        if let Some(r) = &self.requirements {
            path("the requirements file", r);
        }
        path("the CI file", &self.file);
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
            if !secret_name(s, system) {
                problems.push(format!("`{s}` is not a secret's name in {system}"));
            }
        }
        if !self
            .pipeline
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            problems.push(format!(
                "the pipeline's name `{}` cannot name a CI job",
                self.pipeline
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Invalid(problems))
        }
    }

    /// The secrets the run reads, by name, sorted: the remotes' and, with
    /// a server, `FERRY_TOKEN`.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        if self.server.is_some() {
            names.push("FERRY_TOKEN");
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The reports as repository paths.
    fn report_paths(&self) -> Vec<String> {
        self.reports
            .iter()
            .map(|r| {
                if self.project_dir.is_empty() {
                    r.clone()
                } else {
                    format!("{}/{r}", self.project_dir)
                }
            })
            .collect()
    }

    /// The command that writes what the change does to the model as
    /// Markdown (against the base the pull request names; the base's runs
    /// are found on the server, where every branch's CI records them).
    fn report_command(&self) -> String {
        match &self.server {
            Some(s) => format!("ferry report --md --server {s}"),
            None => "ferry report --md".to_owned(),
        }
    }

    /// The command that runs the pipeline (what the remote's run cache has
    /// is restored, not run).
    fn run_command(&self) -> String {
        match &self.server {
            Some(s) => format!("ferry run --trigger ci --server {s}"),
            None => "ferry run --trigger ci".to_owned(),
        }
    }
}

/// How every file begins (after its comment marker).
const HEADER: &str = "Written by `ferry ci export ";

/// A file written line by line, each indented by so many spaces, in one
/// system's syntax: it begins with the header saying who wrote it.
struct Text {
    system: System,
    text: String,
}

impl Text {
    fn new(system: System) -> Text {
        let mut t = Text {
            system,
            text: String::new(),
        };
        t.comment(&[
            format!("{HEADER}{system}` from ferry.yaml: run it again after"),
            "changing the pipeline (an unchanged pipeline writes the same file).".to_owned(),
        ]);
        t
    }

    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.text, "{:indent$}{text}", "");
    }

    /// Lines of a comment.
    fn comment(&mut self, lines: &[String]) {
        let marker = self.system.comment_marker();
        for l in lines {
            self.line(0, &format!("{marker} {l}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn iris() -> Workflow {
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
            requirements: Some("examples/iris/requirements.txt".into()),
            file: ".github/workflows/ferry-iris.yml".into(),
        }
    }

    /// The Iris workflow as `system` has it: its own file among the inputs.
    pub(crate) fn iris_for(system: System) -> Workflow {
        let mut w = iris();
        let file = system.default_file("iris");
        w.inputs[0] = file.clone();
        w.inputs.sort();
        w.file = file;
        w
    }

    #[test]
    fn the_same_pipeline_writes_the_same_bytes() {
        for system in System::ALL {
            let w = iris_for(system);
            assert_eq!(system.write(&w).unwrap(), system.write(&w).unwrap());
        }
    }

    #[test]
    fn a_file_says_ferry_wrote_it_and_for_which_pipeline() {
        for system in System::ALL {
            let text = system.write(&iris_for(system)).unwrap();
            assert!(system.wrote(&text, "iris"), "{system}");
            assert!(!system.wrote(&text, "churn"), "{system}");
        }
        assert!(!System::Gitlab.wrote("stages: [build]\n", "iris"));
        assert!(!System::Jenkins.wrote("pipeline {\n}\n", "iris"));
        assert!(!System::Jenkins.wrote(&github(&iris()).unwrap(), "iris"));
    }

    #[test]
    fn systems_are_named_as_the_cli_takes_them() {
        for system in System::ALL {
            assert_eq!(System::parse(system.name()), Some(system));
        }
        assert_eq!(System::parse("circleci"), None);
        assert_eq!(System::Gitlab.default_file("iris"), ".gitlab-ci.yml");
        assert_eq!(System::Jenkins.default_file("iris"), "Jenkinsfile");
    }

    /// What a hostile spec could try, in every value the files hold.
    fn hostile(system: System) -> Workflow {
        let mut w = iris_for(system);
        w.inputs.push("data/${{ github.token }}".into());
        w.inputs.push("a\nrun: curl evil".into());
        w.inputs.push("../outside".into());
        w.reports.push("work/x'y".into());
        w.secrets.push("A B".into());
        w.server = Some("https://x; curl evil".into());
        w
    }

    #[test]
    fn nothing_from_the_spec_becomes_an_expression_or_a_command() {
        let mut w = hostile(System::Github);
        w.secrets.push("GITHUB_TOKEN".into());
        let e = github(&w).unwrap_err();
        assert_eq!(e.0.len(), 7, "{e}");
    }

    #[test]
    fn every_system_refuses_the_same_values() {
        for system in System::ALL {
            let e = system.write(&hostile(system)).unwrap_err();
            assert_eq!(e.0.len(), 6, "{system}: {e}");
        }
    }

    #[test]
    fn a_reserved_secret_name_is_refused_by_its_own_system() {
        for (system, name) in [
            (System::Github, "GITHUB_TOKEN"),
            (System::Gitlab, "CI_JOB_TOKEN"),
            (System::Gitlab, "GITLAB_USER_LOGIN"),
            (System::Jenkins, "JENKINS_URL"),
        ] {
            let mut w = iris_for(system);
            w.secrets.push(name.into());
            let e = system.write(&w).unwrap_err();
            assert_eq!(
                e.0,
                [format!("`{name}` is not a secret's name in {system}")]
            );
        }
    }
}
