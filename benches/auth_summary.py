"""The table of benches/auth.sh and benches/gateway_auth.sh: for each label,
the median req/s of its repetitions with [min-max], against `base`, `open`
and (when measured) `open_hdr`, p50 (and its difference to open's), p99, and
the share of the ceiling. Each `<label>.txt` in OUT holds one line per
repetition: req/s, p50, p99 as wrk prints them.

    python3 auth_summary.py OUT "log-metric" base open basic token ceiling
"""
import statistics
import sys
from pathlib import Path


def ms(s):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if s.endswith(unit):
            try:
                return float(s[: -len(unit)]) * f
            except ValueError:
                pass
    return float("nan")


def main(out, title, labels):
    rows = {}
    for label in labels:
        got = [l.split() for l in (out / f"{label}.txt").read_text().splitlines() if l.strip()]
        rows[label] = ([float(g[0]) for g in got], [ms(g[1]) for g in got], [ms(g[2]) for g in got])
    med = {label: statistics.median(r[0]) for label, r in rows.items()}
    against = [a for a in ("base", "open", "open_hdr") if a in med]
    open_p50 = statistics.median(rows["open"][1])
    reps = len(rows["base"][0])
    print(f"| {title}, {reps} reps | req/s median [min-max] | " + " | ".join(f"vs {a}" for a in against)
          + " | p50 ms | p99 ms | / ceiling |")
    print("|---|---|" + "---|" * len(against) + "---|---|---|")
    for label, (rps, p50, p99) in rows.items():
        m = med[label]
        vs = " | ".join(f"{m / med[a] - 1:+.1%}" for a in against)
        print(f"| {label} | {m:,.0f} [{min(rps):,.0f}-{max(rps):,.0f}] | {vs} "
              f"| {statistics.median(p50):.2f} ({statistics.median(p50) - open_p50:+.2f}) "
              f"| {statistics.median(p99):.2f} | {m / med['ceiling']:.2f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
