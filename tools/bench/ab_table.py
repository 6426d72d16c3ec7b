#!/usr/bin/env python3
"""A change's before and after, from two epcomm-bench runs of one call (bench and bench-base of
tools/device_session.sh): each row's times side by side with their difference, and with --traces
the low-latency phase points (EPCOMM_LL_TRACE, rank 0) of each traced kernel, median and last
block.

  ab_table.py BASE.json NEW.json [--traces BASE.txt NEW.txt]

Rows are matched by implementation, operation, dtype, SM budget, tokens and hidden size. Exit
status 1 when the two runs name different cards (a ratio counts only within one machine and run)
or share no row; 3 when a row failed its data check (it is marked in the table)."""

import argparse
import json
import re
import sys

KEY = ("impl", "op", "dtype", "num_sms", "tokens", "hidden")
FIELDS = (("time_us", "time"), ("kernel_us", "kernel"), ("preamble_us", "preamble"), ("preamble_split_us", "split"), ("preamble_span_us", "span"))


def load_rows(path):
    with open(path) as f:
        run = json.load(f)
    return run, {tuple(r.get(k) for k in KEY): r for r in run["rows"]}


def number(v):
    return f"{v:.2f}" if isinstance(v, (int, float)) else "-"


def difference(a, b):
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return "-"
    return f"{b - a:+.2f}"


# "# trace rank 0 epcomm-graph dispatch 128 tokens [dispatch kernel]: 64 launches; span 15.04 us, ..."
TRACE = re.compile(r"# trace rank 0 (\S+) (\S+) (\d+) tokens \[([^\]]+)\]:.*?span ([0-9.]+) us")
OTHER_RANK = re.compile(r"# trace rank [1-9]\d* ")
# "#   credits       first    1.34  median    1.86  last    2.37 us"
POINT = re.compile(r"#\s+(\S+)\s+first\s+([0-9.]+)\s+median\s+([0-9.]+)\s+last\s+([0-9.]+) us")


def load_traces(path):
    """{(impl, op, tokens, kernel): {"span": s, point: (median, last)}} from an epcomm-bench table."""
    traces, current = {}, None
    with open(path) as f:
        for line in f:
            prefix = re.match(r"\[rank (\d+)\] ", line)
            if prefix and prefix.group(1) != "0":
                continue  # another rank's line (the ranks' lines may interleave)
            if OTHER_RANK.search(line):
                current = None  # another rank's trace, printed without prefixes
                continue
            line = line[prefix.end():] if prefix else line
            m = TRACE.search(line)
            if m:
                impl, op, tokens, kernel, span = m.groups()
                current = traces.setdefault((impl, op, int(tokens), kernel), {"span": float(span)})
                continue
            m = POINT.match(line)
            if m and current is not None:
                current[m.group(1)] = (float(m.group(3)), float(m.group(4)))
            elif not line.startswith("#"):
                current = None
    return traces


def print_rows(base_run, base, new_run, new):
    print(f"base {base_run.get('commit')}, new {new_run.get('commit')}: {new_run.get('workload')}, "
          f"{new_run.get('card')}, {new_run.get('date')}")
    header = ["impl", "op", "dtype", "sms", "tokens"]
    for _, name in FIELDS:
        header += [f"{name} base", f"{name} new", "diff"]
    print("| " + " | ".join(header + ["check"]) + " |")
    print("|" + "---|" * (len(header) + 1))
    failed = False
    for key in sorted(set(base) & set(new), key=lambda k: tuple(str(x) for x in k)):
        a, b = base[key], new[key]
        cells = [str(key[0]), str(key[1]), str(key[2]), str(key[3]), str(key[4])]
        for field, _ in FIELDS:
            cells += [number(a.get(field)), number(b.get(field)), difference(a.get(field), b.get(field))]
        checks = {a.get("check"), b.get("check")}
        ok = checks <= {"pass", "skipped", None}
        failed |= not ok
        cells.append("pass" if ok else "**" + "/".join(str(c) for c in (a.get("check"), b.get("check"))) + "**")
        print("| " + " | ".join(cells) + " |")
    for name, only in (("base", set(base) - set(new)), ("new", set(new) - set(base))):
        for key in sorted(only, key=lambda k: tuple(str(x) for x in k)):
            print(f"only in {name}: {' '.join(str(x) for x in key)}")
    return failed


def print_traces(base, new):
    for key in sorted(set(base) & set(new), key=lambda k: tuple(str(x) for x in k)):
        a, b = base[key], new[key]
        print(f"\n{key[0]} {key[1]} {key[2]} tokens [{key[3]}]: span {a['span']:.2f} -> {b['span']:.2f} us "
              f"({b['span'] - a['span']:+.2f})")
        print("| point | median base | median new | diff | last base | last new | diff |")
        print("|---|---|---|---|---|---|---|")
        for point in a:
            if point == "span" or point not in b:
                continue
            (am, al), (bm, bl) = a[point], b[point]
            print(f"| {point} | {am:.2f} | {bm:.2f} | {bm - am:+.2f} | {al:.2f} | {bl:.2f} | {bl - al:+.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("base", help="the baseline's result JSON")
    p.add_argument("new", help="the change's result JSON")
    p.add_argument("--traces", nargs=2, metavar=("BASE_TXT", "NEW_TXT"),
                   help="the two runs' printed tables, for their EPCOMM_LL_TRACE phase points")
    args = p.parse_args()
    base_run, base = load_rows(args.base)
    new_run, new = load_rows(args.new)
    if base_run.get("card") != new_run.get("card"):
        print(f"the runs name different cards ({base_run.get('card')} / {new_run.get('card')}): "
              "compare a change only within one machine and run", file=sys.stderr)
        return 1
    if not set(base) & set(new):
        print("the two runs share no row", file=sys.stderr)
        return 1
    failed = print_rows(base_run, base, new_run, new)
    if args.traces:
        print_traces(load_traces(args.traces[0]), load_traces(args.traces[1]))
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
