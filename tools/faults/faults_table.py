#!/usr/bin/env python3
"""Turns epcomm-faults', the soak's and epcomm-bench --telemetry's JSON into the README's markdown (issue 22).

    tools/faults/faults_table.py [--faults faults.json] [--soak soak.json] [--bench bench.json ...] > table.md

The fault table has one row per phase and one column per fault; a cell says whether the survivor got
the error it should (with the time from the fault to it), failed (with the first reason), or why the
case cannot be made. Then one line of totals; then the soak's counts and memory before/after; then,
per epcomm-bench row that carries telemetry (docs/benchmark.md, "Per-peer telemetry"), the peer the
other ranks waited on longest.
"""
import argparse
import json
import sys

COLUMNS = ["kill", "kill+mask", "stall", "other_op", "mismatch_hidden", "mismatch_topk",
           "mismatch_num_sms", "mismatch_tokens"]


def column_of(case):
    name = case["name"].split(".", 1)[1]
    return name


def cell(case):
    status = case["status"]
    if status == "skipped":
        return "n/a"
    if status == "pass":
        ms = case.get("ms_to_error")
        return "ok" if ms is None else "ok, %.0f ms" % ms
    reasons = case.get("reasons") or ["?"]
    return "**FAIL**: " + reasons[0].replace("|", "/")


def fault_table(report):
    phases, cells = [], {}
    for case in report["cases"]:
        if case["phase"] not in phases:
            phases.append(case["phase"])
        cells[(case["phase"], column_of(case))] = cell(case)
    lines = ["| phase | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for phase in phases:
        row = [cells.get((phase, c), "") for c in COLUMNS]
        lines.append("| " + phase + " | " + " | ".join(row) + " |")
    s = report["summary"]
    lines.append("")
    per_domain = report.get("ranks_per_domain", 0)
    ranks = "%d ranks" % report["num_ranks"]
    if per_domain and report["num_ranks"] // per_domain > 1:
        ranks += " as %d NVLink domains of %d" % (report["num_ranks"] // per_domain, per_domain)
    lines.append("Faults tried: %d, survived: %d, failed: %d; cases that cannot be made: %d "
                 "(timeout %d ms, bound %.0f ms, %s%s)."
                 % (s["tried"], s["survived"], s["failed"], s["skipped"], report["timeout_ms"],
                    report["bound_ms"], ranks,
                    ", " + report["device"] if report.get("device") else ""))
    return lines


def usage_cell(before, after, key, scale=None, unit=""):
    """Each rank's value before -> after, ranks separated by " / "; in MiB when scale is given."""
    def show(v):
        return "%d" % v if scale is None else "%.1f %s" % (v / scale, unit)
    return " / ".join("%s -> %s" % (show(b[key]), show(a[key])) for b, a in zip(before, after))


def soak_table(report):
    lines = ["| mode | pairs | checked | shapes | seconds |", "|---|---|---|---|---|"]
    for mode, label in (("ll", "low-latency (graph replay)"), ("ht", "high-throughput")):
        p = report[mode]
        lines.append("| %s | %d | %d | %d | %.1f |" % (label, p["pairs"], p["checks"], p["shapes"], p["seconds"]))
    before, after, bounds = report["before"], report["after"], report["bounds"]
    lines.append("")
    lines.append("| per rank, before -> after | value | bound on growth | ok |")
    lines.append("|---|---|---|---|")
    lines.append("| device memory used | %s | %d MiB | %s |" % (
        usage_cell(before, after, "device_used_bytes", 1 << 20, "MiB"), bounds["device_bytes"] >> 20,
        "yes" if report["device_ok"] else "**no**"))
    lines.append("| host RSS | %s | %d MiB | %s |" % (
        usage_cell(before, after, "rss_kib", 1 << 10, "MiB"), bounds["rss_kib"] >> 10,
        "yes" if report["rss_ok"] else "**no**"))
    lines.append("| open descriptors | %s | %d | %s |" % (
        usage_cell(before, after, "fds"), bounds["fds"], "yes" if report["fds_ok"] else "**no**"))
    return lines


def peer_wait_share(telemetry):
    """The slowest peer's share of all waiting in the row, in percent; None when nothing waited."""
    total = sum(p["wait_us"] for op in telemetry["operations"] for p in op["peers"])
    return None if total <= 0 else 100.0 * telemetry["slowest_wait_us"] / total


def telemetry_table(report):
    lines = ["| workload | row | calls | slowest peer | waited on it | share of all waiting | per operation |",
             "|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        t = row.get("telemetry")
        if t is None:
            continue
        name = "%s %s %s %d SMs %d tokens" % (row["impl"], row["op"], row["dtype"], row["num_sms"], row["tokens"])
        ops = ", ".join("%s: %s" % (op["operation"], "none" if op["slowest_peer"] < 0 else
                                    "rank %d" % op["slowest_peer"]) for op in t["operations"])
        share = peer_wait_share(t)
        if t["slowest_peer"] < 0:
            peer, waited = "none (no wait polled)", ""
        else:
            peer, waited = "rank %d" % t["slowest_peer"], "%.1f us" % t["slowest_wait_us"]
        lines.append("| %s | %s | %d | %s | %s | %s | %s |" % (
            report["workload"], name, t["calls"], peer, waited, "" if share is None else "%.0f%%" % share, ops))
    if len(lines) == 2:
        lines.append("| %s | no row carries telemetry (run epcomm-bench with --telemetry) | | | | | |"
                     % report["workload"])
    return lines


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", help="epcomm-faults' JSON")
    parser.add_argument("--soak", help="the soak's JSON")
    parser.add_argument("--bench", nargs="+", default=[], help="epcomm-bench --telemetry JSON files")
    args = parser.parse_args(argv)
    if not args.faults and not args.soak and not args.bench:
        parser.error("give --faults, --soak, --bench or several")
    out = []
    if args.faults:
        with open(args.faults) as f:
            out += ["### Fault matrix", ""] + fault_table(json.load(f)) + [""]
    if args.soak:
        with open(args.soak) as f:
            out += ["### Soak", ""] + soak_table(json.load(f)) + [""]
    if args.bench:
        out += ["### Slowest peer (per-peer telemetry)", ""]
        for i, path in enumerate(args.bench):
            with open(path) as f:
                out += telemetry_table(json.load(f))[0 if i == 0 else 2:]
        out += [""]
    sys.stdout.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
