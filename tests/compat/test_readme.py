"""The README's walkthroughs, run as written (see readme.py for the rules)."""
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

import readme
from conftest import ROOT, committed_copy, free_port

# What a block runs with, at most, per command (the canary walkthrough waits
# for three 10 s steps; a first `ferry run` builds the example's environment).
COMMAND_TIMEOUT = 300


def test_the_matcher_compares_what_matters():
    expected = ["ran train in 2.4s (cpu 2.7s, peak mem 159MiB)", "...", "registered iris/2 @candidate (672803a15130)"]
    assert readme.matches(expected, ["ran train in 0.9s (cpu 1.1s, peak mem 98MiB)", "x", "y",
                                     "registered iris/2 @candidate (0123456789ab)"])
    assert not readme.matches(expected, ["ran train in 0.9s (cpu 1.1s, peak mem 98MiB)",
                                         "registered iris/3 @candidate (0123456789ab)"])
    # Without `...` every line must be there, and no other.
    assert not readme.matches(["prepare   up to date"], ["validate  up to date", "prepare   up to date"])
    assert readme.matches(["step 1 passed [228 requests, p99 0.1 ms]"], ["step 1 passed [7 requests, p99 12.5 ms]"])
    assert not readme.matches(["accuracy 0.933333"], ["accuracy 0.711111"])
    # A line ending in ` ...` stands for the lines that begin with the rest.
    assert readme.matches(["drift in ..."], ["drift in petal_length: 0.31 >= 0.1"])
    assert not readme.matches(["drift in ..."], ["no drift"])


def test_blocks_and_directives_are_read():
    text = "\n".join([
        "<!-- readme-test: cd examples/iris -->",
        "```console",
        "$ ferry run \\",
        "    -j 2     # two at once",
        "ran train",
        "```",
        "<!-- readme-test: skip: needs a cluster -->",
        "```sh",
        "kubectl apply -f x.yaml",
        "```",
    ])
    first, second = readme.blocks(text)
    assert (first.cwd, first.skip) == ("examples/iris", None)
    [command] = first.commands()
    assert command.text == "ferry run -j 2" and command.expected == ["ran train"]
    assert second.skip == "needs a cluster"
    with pytest.raises(ValueError):
        readme.blocks("<!-- readme-test: skip -->\n```sh\nx\n```")


@pytest.fixture
def workspace(tmp_path):
    """A copy of the committed examples in a repository of their own (what a fresh clone has)."""
    committed_copy("examples", tmp_path / "examples", who="readme")
    return tmp_path


def environment():
    binary = Path(os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))).resolve()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "FERRY_")) and k not in ("NO_COLOR",)}
    # `ferry` is the binary under test; `python` the interpreter with mlflow.
    env["PATH"] = os.pathsep.join([str(binary.parent), str(Path(sys.executable).parent), env["PATH"]])
    return env


def run_block(shell, block, where, ports):
    """The failures of one console or sh block (at most one: it stops there)."""
    for command in block.commands():
        if command.text == "./scripts/test":
            continue  # what runs this very test
        background = command.text.endswith("&") and not command.text.endswith("&&")
        code, out = shell.run(readme.rewrite(command.text, ports), COMMAND_TIMEOUT)
        # Output shows the README's ports, not the free ones used.
        for old, new in ports.items():
            out = [line.replace(f":{new}", f":{old}") for line in out]
        if background:
            time.sleep(1.0)  # as a person would before the next command
        if block.lang == "sh" and code != 0 and not background:
            return [f"{where}: `{command.text}` exited {code}:\n" + "\n".join(out)]
        if block.lang == "console" and not readme.matches(command.expected, out):
            return [f"{where}: `{command.text}` printed\n    " + "\n    ".join(out)
                    + "\n  where the README shows\n    " + "\n    ".join(command.expected)]
    return []


def test_every_readme_block_runs_as_written(workspace, tmp_path_factory):
    text = (ROOT / "README.md").read_text()
    ports = {"5000": str(free_port()), "5001": str(free_port()), "8080": str(free_port())}
    env = environment()
    logs = tmp_path_factory.mktemp("readme-jobs")
    failures, skipped, ran = [], [], 0
    shell, section = None, None
    try:
        for block in readme.blocks(text):
            if block.lang not in ("console", "sh", "python"):
                continue
            where = f"README.md:{block.line}"
            if block.skip:
                skipped.append(f"{where}: {block.skip}")
                continue
            cwd = workspace / block.cwd
            if block.section != section and shell is not None:
                shell.close()  # what a section started ends with it
                shell = None
            section = block.section
            if block.lang == "python":
                code = readme.rewrite_code("\n".join(block.body), ports)
                done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                                      capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
                ran += 1
                if done.returncode != 0:
                    failures.append(f"{where}: the python block failed:\n{done.stdout}{done.stderr}")
                    break
                continue
            if shell is None:
                shell = readme.Shell(cwd, env, logs)
            shell.run(f"cd {shlex.quote(str(cwd))}", COMMAND_TIMEOUT)
            failures += run_block(shell, block, where, ports)
            ran += len(block.commands())
            if failures:
                break
    finally:
        if shell is not None:
            shell.close()
    for job in sorted(logs.iterdir()):
        print(f"--- {job.name}\n{job.read_text()[-3000:]}")
    print("skipped blocks:\n  " + "\n  ".join(skipped))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    assert ran > 20, f"only {ran} README commands ran"
