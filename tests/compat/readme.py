"""Runs the README's command blocks as a new user would, in order, and checks
what they print.

Blocks, by their fence's language:

- `console`: `$ ` lines are commands (a line ending in `\\` continues on the
  next), the lines after one, up to the next `$ `, are what it must print
  (stdout and stderr together). A line `...` stands for any lines, and a
  line ending in ` ...` for any line that begins with what is before. Figures
  that differ from run to run are compared as placeholders: durations,
  sizes, run ids, times, and the figures inside `[...]` (a step's request
  counts and latencies). Blank lines are ignored. Exit codes are not checked
  (the README shows them with `echo "exit $?"` where they matter).
- `sh`: every line that is not a comment is a command that must exit 0.
- `python`: the block runs with this interpreter and must exit 0.
- anything else (`yaml`, `text`) is not a command block.

The blocks of one section (a `## ` heading) run in one bash process, as in
one terminal (so `&` jobs, `%1` and `$PWD` work); a command ending in `&`
runs in the background with its output in a log, and whatever a section left
running is stopped at its end. An HTML
comment right before a fence steers the run:

- `<!-- readme-test: cd DIR -->`: this and later blocks run in DIR (relative
  to the workspace: a temporary folder holding a copy of `examples/`);
- `<!-- readme-test: skip: REASON -->`: the block is not run, for the reason
  given (the test lists every skip).

Commands are run as written but for two rewrites: `cargo run --release -p
ferry --` is the `ferry` under test, and the ports 5000 and 8080 become free
ones (`--port 5000`, `:5000`, ...), so the suite runs beside other servers.
"""
import itertools
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

_JOBS = itertools.count(1)
# ` # a note` at the end of a command (a `#` after a space, with no quote
# after it, so that `'#'` inside an argument stays).
TRAILING_COMMENT = re.compile(r"\s+#[^'\"]*$")
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*readme-test:\s*(cd|skip)\s*:?\s*(.*?)\s*-->\s*$")


@dataclass
class Command:
    text: str
    expected: list = field(default_factory=list)


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    body: list
    cwd: str
    section: int
    skip: str = None

    def commands(self):
        """console: commands with their expected output; sh: commands alone."""
        out = []
        lines = iter(self.body)
        for raw in lines:
            if self.lang == "console":
                if not raw.startswith("$ "):
                    if out:
                        out[-1].expected.append(raw)
                    continue
                text = raw[2:]
            else:
                if not raw.strip() or raw.lstrip().startswith("#"):
                    continue
                text = raw
            while text.rstrip().endswith("\\"):
                text = text.rstrip()[:-1].rstrip() + " " + next(lines).strip()
            out.append(Command(TRAILING_COMMENT.sub("", text).strip()))
        return out


def blocks(readme_text):
    """Every fenced block, with the directive before it applied."""
    result, cwd, pending_skip, section = [], ".", None, 0
    lines = readme_text.splitlines()
    i = 0
    while i < len(lines):
        directive = DIRECTIVE.match(lines[i])
        if directive:
            kind, arg = directive.groups()
            if kind == "cd":
                cwd = arg
            else:
                if not arg:
                    raise ValueError(f"README.md:{i + 1}: a skip needs a reason")
                pending_skip = arg
            i += 1
            continue
        if lines[i].startswith("## "):
            section += 1
        fence = FENCE.match(lines[i])
        if fence:
            start, lang = i + 1, fence.group(1)
            i += 1
            body = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            result.append(Block(start, lang, body, cwd, section, pending_skip))
            pending_skip = None
        elif lines[i].strip() and pending_skip is not None and not lines[i].startswith("<!--"):
            raise ValueError(f"README.md:{i + 1}: a skip directive must come right before a fence")
        i += 1
    return result


# --- comparing output ----------------------------------------------------------

_PLACEHOLDERS = [
    # A step's figures: `[228 requests, error rate 0.000, p99 0.1 ms]`.
    (re.compile(r"\[[^\]]*\d[^\]]*\]"), lambda m: re.sub(r"\d+(\.\d+)?", "N", m.group(0))),
    (re.compile(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?(\.\d+)?Z?\b"), "<time>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d\b"), "<hour>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(ns|µs|us|ms|s|m)\b"), "<dur>"),
    (re.compile(r"\b\d+(\.\d+)?\s?(B|KiB|MiB|GiB)\b"), "<size>"),
    (re.compile(r"\b[0-9a-f]{8,32}\b"), "<id>"),
]


def normalize(line):
    for pattern, repl in _PLACEHOLDERS:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


def same(want, got):
    """One line: equal, or `want` ends in ` ...` and `got` begins with the rest."""
    if want.endswith(" ...") and want != "...":
        return got.startswith(want[:-3])
    return want == got


def matches(expected, actual):
    """Whether `actual` lines are `expected` lines, `...` standing for any
    run of lines; blank lines are ignored on both sides."""
    want = [e for e in (normalize(x) for x in expected) if e]
    got = [a for a in (normalize(x) for x in actual) if a]
    # Glob matching over lines, `...` as `*`.
    memo = {}

    def go(i, j):
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(want):
            ok = j == len(got)
        elif want[i] == "...":
            ok = go(i + 1, j) or (j < len(got) and go(i, j + 1))
        else:
            ok = j < len(got) and same(want[i], got[j]) and go(i + 1, j + 1)
        memo[key] = ok
        return ok

    return go(0, 0)


# --- running ---------------------------------------------------------------------

class Shell:
    """One bash process for one block: commands in, their output and exit
    code out, every job it started stopped at the end."""

    DONE = "__readme_test_done__"

    def __init__(self, cwd, env, log_dir):
        self.cwd = cwd
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        )
        self.lines = queue.Queue()
        self.log_dir = log_dir
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, command, timeout):
        text = command
        if text.endswith("&") and not text.endswith("&&"):
            log = self.log_dir / f"job-{next(_JOBS)}.log"
            text = f"{text[:-1].rstrip()} >>{log} 2>&1 &"
        self.proc.stdin.write(f"{text}\nprintf '\\n{self.DONE} %s\\n' \"$?\"\n")
        self.proc.stdin.flush()
        out, deadline = [], time.time() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                raise TimeoutError(f"`{command}` did not finish in {timeout} s; it printed:\n"
                                   + "\n".join(out)) from None
            if line is None:
                raise RuntimeError(f"the shell ended during `{command}`:\n" + "\n".join(out))
            if line.startswith(self.DONE):
                if out and out[-1] == "":
                    out.pop()
                return int(line.split()[1]), out
            out.append(line)

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def rewrite_code(text, ports):
    """The README's ports 5000 and 8080 as free ones."""
    for old, new in ports.items():
        text = re.sub(rf"(--port |:){old}\b", rf"\g<1>{new}", text)
    return text


def rewrite(command, ports):
    command = re.sub(r"^cargo run --release -p ferry -- ", "ferry ", command)
    return rewrite_code(command, ports)
