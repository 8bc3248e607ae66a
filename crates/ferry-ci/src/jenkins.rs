//! Jenkins: a declarative Jenkinsfile for a Multibranch Pipeline job. One
//! stage runs on the default branch and on change requests when the
//! build's changes include an input (`changeset`, an Ant glob); a build
//! whose changes Jenkins does not know (a branch's or change request's
//! first, one started by hand) runs too. Credentials by ID only
//! (`credentials('NAME')`). Every Groovy string is single-quoted and holds
//! no quote, backslash or `$` (older Declarative versions evaluate a
//! `changeset` pattern as a GString), so none is interpolated or ends early.

use crate::{System, Text, Workflow};

/// Where ferry and uv are installed, in the job's workspace.
const TOOLS: &str = ".ferry-ci";

pub(crate) fn write(w: &Workflow) -> String {
    let mut g = Text::new(System::Jenkins);
    g.comment(&[
        "For a Multibranch Pipeline job whose agents have python3 (with venv).".to_owned(),
        "A repository has one Jenkinsfile: written elsewhere (`--output`), it is".to_owned(),
        "the job's Script Path.".to_owned(),
    ]);
    let secrets = w.secret_names();
    if !secrets.is_empty() {
        g.comment(&[
            "Add these credentials (Secret text), each with its name as its ID:".to_owned(),
            secrets.join(", "),
        ]);
    }
    g.line(0, "pipeline {");
    g.line(4, "agent any");
    g.line(4, "options {");
    g.line(8, "timeout(time: 120, unit: 'MINUTES')");
    g.line(8, "disableConcurrentBuilds(abortPrevious: true)");
    g.line(4, "}");
    if !secrets.is_empty() {
        g.line(4, "environment {");
        for s in &secrets {
            g.line(8, &format!("{s} = credentials('{s}')"));
        }
        g.line(4, "}");
    }
    g.line(4, "stages {");
    g.line(8, &System::Jenkins.names(&w.pipeline));
    g.line(12, "when {");
    g.line(16, "allOf {");
    g.line(20, "anyOf {");
    g.line(24, &format!("branch '{}'", w.branch));
    g.line(24, "changeRequest()");
    g.line(20, "}");
    g.line(20, "anyOf {");
    g.line(
        24,
        "// a build whose changes Jenkins does not know: a branch's first, one started by hand",
    );
    g.line(24, "expression { currentBuild.changeSets.isEmpty() }");
    for p in &w.inputs {
        g.line(24, &format!("changeset '{p}'"));
    }
    g.line(20, "}");
    g.line(16, "}");
    g.line(12, "}");
    g.line(12, "stages {");
    let bin = format!("$WORKSPACE/{TOOLS}/bin");
    let step = |g: &mut Text, name: &str, when: Option<&str>, commands: &[String], here: bool| {
        g.line(16, &format!("stage('{name}') {{"));
        if let Some(when) = when {
            g.line(20, &format!("when {{ {when} }}"));
        }
        g.line(20, "steps {");
        if here || w.project_dir.is_empty() {
            for c in commands {
                g.line(24, &format!("sh '{c}'"));
            }
        } else {
            g.line(24, &format!("dir('{}') {{", w.project_dir));
            for c in commands {
                g.line(28, &format!("sh '{c}'"));
            }
            g.line(24, "}");
        }
        g.line(20, "}");
        g.line(16, "}");
    };
    step(
        &mut g,
        "Install ferry",
        None,
        &[
            format!("python3 -m venv {TOOLS}"),
            format!("{TOOLS}/bin/pip install --quiet uv"),
            format!(
                "{TOOLS}/bin/uv pip install --quiet --python {TOOLS}/bin/python {}",
                w.install
            ),
        ],
        true,
    );
    step(
        &mut g,
        "Run the pipeline",
        None,
        &[format!("PATH=\"{bin}:$PATH\" {}", w.run_command())],
        false,
    );
    step(
        &mut g,
        "Share what ran",
        Some(&format!("branch '{}'", w.branch)),
        &[format!("PATH=\"{bin}:$PATH\" ferry push")],
        false,
    );
    g.line(12, "}");
    // Whatever came of the run (a gate that failed too): what the change
    // does to the model, kept with the build beside the reports.
    let report = if w.project_dir.is_empty() {
        "ferry-report.md".to_owned()
    } else {
        format!("{}/ferry-report.md", w.project_dir)
    };
    g.line(12, "post {");
    g.line(16, "always {");
    let write_report = format!(
        "sh 'PATH=\"{bin}:$PATH\" {} > ferry-report.md || true'",
        w.report_command()
    );
    if w.project_dir.is_empty() {
        g.line(20, &write_report);
    } else {
        g.line(20, &format!("dir('{}') {{", w.project_dir));
        g.line(24, &write_report);
        g.line(20, "}");
    }
    for r in std::iter::once(&report).chain(&w.report_paths()) {
        g.line(
            20,
            &format!("archiveArtifacts artifacts: '{r}', allowEmptyArchive: true"),
        );
    }
    g.line(16, "}");
    g.line(12, "}");
    g.line(8, "}");
    g.line(4, "}");
    g.line(0, "}");
    g.text
}

#[cfg(test)]
mod tests {
    use crate::tests::iris_for;
    use crate::{System, jenkins};

    #[test]
    fn the_iris_jenkinsfile() {
        insta::assert_snapshot!(jenkins(&iris_for(System::Jenkins)).unwrap());
    }

    #[test]
    fn no_groovy_string_is_interpolated_or_ends_early() {
        let mut w = iris_for(System::Jenkins);
        for bad in [
            "data/${env.AWS_SECRET_ACCESS_KEY}",
            "data/x'); sh('curl evil",
            "data/x\\'",
            "data/\"x\"",
            "data/$HOME",
        ] {
            w.inputs = vec![bad.into()];
            assert!(jenkins(&w).is_err(), "{bad}");
        }
        let mut w = iris_for(System::Jenkins);
        w.install = "ferry-ml'; sh 'curl evil".into();
        assert!(jenkins(&w).is_err());

        // A fair file: no GString, no interpolation, every string closed
        // on its line; `$` only in the shell's own variables.
        let text = jenkins(&iris_for(System::Jenkins)).unwrap();
        assert!(!text.contains("${"), "{text}");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            assert_eq!(line.matches('\'').count() % 2, 0, "{line}");
            assert!(!line.contains('\\'), "{line}");
            if line.contains('"') {
                assert!(line.trim_start().starts_with("sh '"), "{line}");
            }
        }
        let opens = text.matches('{').count();
        assert_eq!(opens, text.matches('}').count());
    }
}
