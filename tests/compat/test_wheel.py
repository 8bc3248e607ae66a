"""ferry as a Python package, as CI installs it: maturin builds the wheel
that carries the binary (pyproject.toml), pip installs it into a fresh
venv with nothing else in it, and the `ferry` it puts on PATH runs the
Iris example end to end and registers the model."""
import os
import subprocess
import sys
import venv

from conftest import ROOT, committed_copy

MATURIN = os.path.join(os.path.dirname(sys.executable), "maturin")


def test_the_wheel_installs_ferry_and_runs_iris(tmp_path):
    # The debug profile and the features of the tests' build (scripts/test
    # says which), so cargo finds it fresh: the binary the other tests run
    # is neither rebuilt nor replaced. Releases use --release.
    wanted = os.environ.get("FERRY_CARGO_FEATURES", "")
    features = ["--features", wanted] if wanted else []
    built = subprocess.run([MATURIN, "build", "--out", str(tmp_path / "dist"), *features],
                           cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stderr[-4000:]
    wheels = list((tmp_path / "dist").glob("ferry_ml-*.whl"))
    assert len(wheels) == 1, wheels
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-index",
                          str(wheels[0])], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    ferry = env_dir / "bin" / "ferry"
    assert ferry.is_file()
    version = subprocess.run([str(ferry), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("ferry "), version

    iris = committed_copy("examples/iris", tmp_path / "iris", who="wheel")
    # Only the venv's bin (and the system's) on PATH: the ferry that runs is the wheel's.
    path = os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", "")])
    run = subprocess.run(["ferry", "run"], cwd=iris, capture_output=True, text=True, timeout=1200,
                         env={**os.environ, "PATH": path})
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "registered iris/1" in out, out[-4000:]
