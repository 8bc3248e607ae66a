"""Turns benches/results/*.json (hyperfine) into the markdown table of RESULTS.md."""
import json
import os
import sys

out, d2_bytes = sys.argv[1], int(sys.argv[2])
rows = []
for name in ["iris_status", "iris_run", "d2_cold", "d2_noop", "d2_one_changed"]:
    path = os.path.join(out, name + ".json")
    if not os.path.exists(path):
        continue
    res = json.load(open(path))["results"]
    ferry, anchor = res[0], res[1]
    ratio = anchor["median"] / ferry["median"]
    extra = ""
    if name == "d2_cold":
        extra = f" ({d2_bytes / ferry['median'] / 1e9:.2f} GB/s)"
    rows.append(
        f"| {ferry['command']} | {ferry['median']*1000:.1f} ms{extra} "
        f"| {anchor['command']} | {anchor['median']*1000:.1f} ms | {ratio:.0f}x |"
    )
print("| ferry | median | anchor | median | anchor / ferry |")
print("|---|---|---|---|---|")
print("\n".join(rows))
