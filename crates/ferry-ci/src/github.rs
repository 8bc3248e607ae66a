//! GitHub Actions: a workflow triggered by pushes to the default branch
//! and pull requests whose paths include an input, secrets as
//! `secrets.NAME`.

use crate::{System, Text, Workflow};

pub(crate) fn write(w: &Workflow) -> String {
    let mut y = Text::new(System::Github);
    y.line(0, &System::Github.names(&w.pipeline));
    y.line(0, "on:");
    y.line(2, "push:");
    y.line(4, &format!("branches: [{}]", w.branch));
    y.line(4, "paths:");
    for p in &w.inputs {
        y.line(6, &format!("- {p}"));
    }
    y.line(2, "pull_request:");
    y.line(4, "paths:");
    for p in &w.inputs {
        y.line(6, &format!("- {p}"));
    }
    y.line(2, "workflow_dispatch:");
    y.line(0, "permissions:");
    y.line(2, "contents: read");
    y.line(2, "pull-requests: write");
    y.line(0, "concurrency:");
    y.line(
        2,
        &format!("group: ferry-{}-${{{{ github.ref }}}}", w.pipeline),
    );
    y.line(2, "cancel-in-progress: true");
    y.line(0, "jobs:");
    y.line(2, "pipeline:");
    y.line(4, "runs-on: ubuntu-latest");
    y.line(4, "timeout-minutes: 120");
    if !w.project_dir.is_empty() {
        y.line(4, "defaults:");
        y.line(6, "run:");
        y.line(8, &format!("working-directory: {}", w.project_dir));
    }
    let secrets = w.secret_names();
    if !secrets.is_empty() {
        y.line(4, "env:");
        for s in secrets {
            y.line(6, &format!("{s}: ${{{{ secrets.{s} }}}}"));
        }
    }
    y.line(4, "steps:");
    y.line(6, "- uses: actions/checkout@v4");
    y.line(8, "with:");
    y.line(
        10,
        "fetch-depth: 0 # the report finds the base branch's run through its history",
    );
    y.line(6, "- uses: astral-sh/setup-uv@v6");
    y.line(8, "with:");
    y.line(10, "enable-cache: true");
    y.line(6, "- name: Install ferry");
    y.line(8, &format!("run: uv tool install {}", w.install));
    y.line(
        6,
        "- name: Run the pipeline (what the remote's run cache has is restored, not run)",
    );
    y.line(8, &format!("run: {}", w.run_command()));
    y.line(
        6,
        "- name: Say what the change does to the model, on the pull request",
    );
    y.line(8, "if: always() && github.event_name == 'pull_request'");
    y.line(
        8,
        "# A fork's pull request gets a token that cannot comment.",
    );
    y.line(8, "continue-on-error: true");
    y.line(8, "env:");
    y.line(10, "GITHUB_TOKEN: ${{ github.token }}");
    y.line(
        8,
        &format!(
            "run: {} --post >> \"$GITHUB_STEP_SUMMARY\"",
            w.report_command()
        ),
    );
    y.line(6, "- name: Share what ran, from the default branch only");
    y.line(8, "if: github.event_name == 'push'");
    y.line(8, "run: ferry push");
    let reports = w.report_paths();
    if !reports.is_empty() {
        y.line(6, "- name: Keep the reports");
        y.line(8, "if: always()");
        y.line(8, "uses: actions/upload-artifact@v4");
        y.line(8, "with:");
        y.line(10, &format!("name: ferry-{}-reports", w.pipeline));
        y.line(10, "if-no-files-found: ignore");
        y.line(10, "path: |");
        for r in &reports {
            y.line(12, r);
        }
    }
    y.text
}

#[cfg(test)]
mod tests {
    use crate::tests::iris_for;
    use crate::{System, github};

    #[test]
    fn the_iris_workflow() {
        insta::assert_snapshot!(github(&iris_for(System::Github)).unwrap());
    }

    #[test]
    fn a_secret_is_only_ever_a_reference() {
        let text = github(&iris_for(System::Github)).unwrap();
        for line in text.lines().filter(|l| l.contains("AWS_SECRET_ACCESS_KEY")) {
            assert_eq!(
                line.trim(),
                "AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}"
            );
        }
    }
}
