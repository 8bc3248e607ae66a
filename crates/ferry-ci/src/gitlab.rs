//! GitLab CI: one job, run in merge request pipelines and in pushes to the
//! default branch whose `changes:` include an input (and when run by hand),
//! on a Python image with uv's cache kept between runs. Credentials are
//! the project's CI/CD variables, which GitLab hands to the job as
//! environment variables: the file only names the ones to define.

use crate::{System, Text, Workflow};

pub(crate) fn write(w: &Workflow) -> String {
    let name = format!("ferry-{}", w.pipeline);
    let mut y = Text::new(System::Gitlab);
    y.comment(&[
        "A repository has one .gitlab-ci.yml: to keep yours, write this job to".to_owned(),
        format!("another file (`--output ci/{name}.gitlab-ci.yml`) and include it:"),
        format!("  include: [{{local: ci/{name}.gitlab-ci.yml}}]"),
    ]);
    let secrets = w.secret_names();
    if !secrets.is_empty() {
        y.comment(&[
            "Define these CI/CD variables in the project's settings (masked; a".to_owned(),
            "protected one reaches protected branches only):".to_owned(),
            format!("  {}", secrets.join(", ")),
        ]);
    }
    y.comment(&[
        "GITLAB_TOKEN (a project access token with the api scope, masked) lets".to_owned(),
        "the job post what the change does to the model on the merge request.".to_owned(),
    ]);
    y.line(0, &System::Gitlab.names(&w.pipeline));
    y.line(2, "image: python:3.12-slim");
    y.line(2, "timeout: 2h");
    y.line(2, "interruptible: true");
    y.line(2, "rules:");
    let changes = |y: &mut Text| {
        y.line(6, "changes:");
        for p in &w.inputs {
            y.line(8, &format!("- {}", glob(p)));
        }
    };
    y.line(4, "- if: $CI_PIPELINE_SOURCE == \"merge_request_event\"");
    changes(&mut y);
    y.line(
        4,
        &format!(
            "- if: $CI_PIPELINE_SOURCE == \"push\" && $CI_COMMIT_BRANCH == \"{}\"",
            w.branch
        ),
    );
    changes(&mut y);
    y.line(4, "- if: $CI_PIPELINE_SOURCE == \"web\"");
    y.line(2, "variables:");
    y.line(4, "UV_CACHE_DIR: $CI_PROJECT_DIR/.uv-cache");
    y.line(4, "UV_LINK_MODE: copy");
    y.line(4, "UV_TOOL_BIN_DIR: /usr/local/bin");
    y.line(2, "cache:");
    // Keyed by the requirements where there are some (`prefix:` goes
    // only with `files:`), so a change of them starts a fresh cache.
    match &w.requirements {
        Some(r) => {
            y.line(4, "key:");
            y.line(6, "files:");
            y.line(8, &format!("- {r}"));
            y.line(6, &format!("prefix: {name}-uv"));
        }
        None => y.line(4, &format!("key: {name}-uv")),
    }
    y.line(4, "paths:");
    y.line(6, "- .uv-cache");
    y.line(2, "script:");
    y.line(4, "- pip install --quiet --root-user-action=ignore uv");
    y.line(4, &format!("- uv tool install {}", w.install));
    if !w.project_dir.is_empty() {
        y.line(4, &format!("- cd {}", w.project_dir));
    }
    y.line(4, &format!("- {}", w.run_command()));
    y.line(
        4,
        "- if [ \"$CI_PIPELINE_SOURCE\" = push ]; then ferry push; fi",
    );
    y.line(4, "- uv cache prune --ci");
    // After the script whatever came of it (a gate that failed too):
    // what the change does to the model, on the merge request.
    y.line(2, "after_script:");
    if !w.project_dir.is_empty() {
        y.line(4, &format!("- cd {}", w.project_dir));
    }
    y.line(
        4,
        &format!(
            "- if [ -n \"$CI_MERGE_REQUEST_IID\" ] && [ -n \"$GITLAB_TOKEN\" ]; then {} --post || true; fi",
            w.report_command()
        ),
    );
    let reports = w.report_paths();
    if !reports.is_empty() {
        y.line(2, "artifacts:");
        y.line(4, &format!("name: {name}-reports"));
        y.line(4, "when: always");
        y.line(4, "paths:");
        for r in &reports {
            y.line(6, &format!("- {r}"));
        }
    }
    y.text
}

/// An input as GitLab's `changes:` matches it: a folder's `dir/**` is
/// `dir/**/*` (its `**` alone would not cross a `/`).
fn glob(input: &str) -> String {
    match input.strip_suffix("/**") {
        Some(dir) => format!("{dir}/**/*"),
        None => input.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::glob;
    use crate::tests::iris_for;
    use crate::{System, gitlab};

    #[test]
    fn the_iris_job() {
        insta::assert_snapshot!(gitlab(&iris_for(System::Gitlab)).unwrap());
    }

    #[test]
    fn without_requirements_the_cache_has_one_key() {
        let mut w = iris_for(System::Gitlab);
        w.requirements = None;
        let text = gitlab(&w).unwrap();
        assert!(text.contains("\n    key: ferry-iris-uv\n"), "{text}");
    }

    #[test]
    fn a_folder_matches_every_file_below_it() {
        assert_eq!(glob("data/images/**"), "data/images/**/*");
        assert_eq!(glob("data/iris.csv"), "data/iris.csv");
    }

    #[test]
    fn only_gitlab_s_own_variables_are_expanded() {
        let mut w = iris_for(System::Gitlab);
        for bad in [
            "data/$CI_JOB_TOKEN",
            "data/${CI_JOB_TOKEN}",
            "x\" || $CI_COMMIT_BRANCH == \"",
            "data/a b",
        ] {
            w.inputs = vec![bad.into()];
            assert!(gitlab(&w).is_err(), "{bad}");
        }
        let mut w = iris_for(System::Gitlab);
        w.branch = "main\" || $CI_COMMIT_BRANCH =~ /.*/ || \"".into();
        assert!(gitlab(&w).is_err());

        // Every `$` in a file for a fair workflow is one of GitLab's own
        // variables or the token the file asks for, and no value of a
        // secret is written.
        let text = gitlab(&iris_for(System::Gitlab)).unwrap();
        let mut vars: Vec<&str> = text
            .split('$')
            .skip(1)
            .map(|s| {
                let end = s
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                &s[..end]
            })
            .collect();
        vars.sort_unstable();
        vars.dedup();
        assert_eq!(
            vars,
            [
                "CI_COMMIT_BRANCH",
                "CI_MERGE_REQUEST_IID",
                "CI_PIPELINE_SOURCE",
                "CI_PROJECT_DIR",
                "GITLAB_TOKEN"
            ]
        );
        assert!(!text.contains("AWS_ACCESS_KEY_ID:"), "{text}");
    }
}
