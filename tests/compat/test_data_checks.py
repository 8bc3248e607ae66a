"""ferry's data checks on the shared dataplane harness's generated tables
(../shared/bench/dataplane/gen_data.py, at a reduced scale): every injected
defect of T2 found with its exact count and rows, and exactly the strongly
drifted columns of R/C flagged."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GEN = pathlib.Path(os.environ.get("FERRY_DATAPLANE", ROOT.parent / "shared" / "bench" / "dataplane")) / "gen_data.py"
FERRY = os.environ.get("FERRY_BIN", str(ROOT / "target" / "debug" / "ferry"))

pytestmark = pytest.mark.skipif(not GEN.exists(), reason=f"no harness generator at {GEN}")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataplane")
    subprocess.run([sys.executable, str(GEN), "--out", str(out), "--only", "t2,rc", "--scale", "0.2"],
                   check=True, capture_output=True)
    return out


def ferry(*args):
    return subprocess.run([FERRY, *args], capture_output=True, text=True)


def test_every_injected_defect_is_found_exactly(data, tmp_path):
    suite = (ROOT / "benches" / "data" / "t-suite.yaml").read_text()
    suite = suite.replace("rows: {min: 900000, max: 1100000}", "rows: {min: 180000, max: 220000}")
    (tmp_path / "suite.yaml").write_text(suite)
    truth = json.loads((data / "t2_defects.json").read_text())
    for fmt in ("csv", "parquet"):
        r = ferry("check", "data", str(data / f"t2.{fmt}"), "--expect", str(tmp_path / "suite.yaml"), "--json")
        assert r.returncode == 3, r.stderr
        rep = json.loads(r.stdout)
        failed = {x["id"]: x for x in rep["results"] if not x["success"]}
        rows = lambda key: sorted(truth["row_indices"][key])
        assert failed["x_unif_c.between"]["unexpected_count"] == 50
        assert failed["cat_a.in_set"]["unexpected_count"] == 40
        assert failed["cat_a.in_set"]["unexpected_values"] == [["a_UNKNOWN", 40]]
        assert failed["x_norm_a.not_null"]["unexpected_count"] == 30
        assert failed["id.unique"]["unexpected_count"] == 20
        # The sampled rows are the documented ones (the first 20 by row).
        assert [s["row"] for s in failed["x_unif_c.between"]["sample"]] == rows("x_unif_c_out_of_range")[:20]
        assert [s["row"] for s in failed["cat_a.in_set"]["sample"]] == rows("cat_a_unknown_category")[:20]
        assert [s["row"] for s in failed["x_norm_a.not_null"]["sample"]] == rows("x_norm_a_null_in_non_null")[:20]
        dup_rows = sorted(rows("id_duplicates") + rows("id_duplicates_source_rows"))
        assert [s["row"] for s in failed["id.unique"]["sample"]] == dup_rows
        # The documented shifts, and nothing else.
        assert set(failed) - {"x_norm_b.between"} == {
            "x_unif_c.between", "cat_a.in_set", "x_norm_a.not_null", "id.unique",
            "x_norm_a.mean", "x_lognorm_e.mean", "x_norm_b.stdev"}, sorted(failed)


def test_exactly_the_drifted_columns_are_flagged(data):
    truth = json.loads((data / "drift_truth.json").read_text())
    strong = sorted(c for c, (kind, _) in truth["drifted"].items() if kind == "strong")
    r = ferry("check", "drift", "--reference", str(data / "drift_ref.parquet"),
              "--current", str(data / "drift_cur.parquet"), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert sorted(c["column"] for c in rep["columns"] if c["drifted"]) == strong
    assert {c["method"] for c in rep["columns"]} == {"wasserstein", "jensenshannon"}
