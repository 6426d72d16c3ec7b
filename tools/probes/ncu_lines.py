#!/usr/bin/env python3
"""Where inside a kernel its time goes: the warp-stall samples per source line of an Nsight Compute
report's source page, summed over the profiled launches of each kernel, the top lines first.

    tools/probes/ncu_lines.py lines-preamble.csv            # from tools/device_session.sh kernels-lines
    tools/probes/ncu_lines.py --top 25 lines-ll.csv

The input is `ncu --import REPORT --page source --csv --print-source cuda` (or sass, or cuda,sass):
for each profiled launch a title line, then a header row naming the columns ("Source", "Warp Stall
Sampling (All Samples)", and where the tool gives them, the line number and file), then one row per
source line (or instruction). Columns are found by name, so the tool's version may add or reorder
them. In the cuda,sass view (a "Line No" and an "Address" column) each source line's row carries
the line's samples and the instruction rows under it repeat them: only the line rows are counted,
and the view names no file (a line number may belong to any file the kernel inlines). Launches of
one kernel (one instantiation) are added together; a kernel's lines are shown with their share of
its samples.
"""
import argparse
import collections
import csv
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"
NOT_ISSUED = "Warp Stall Sampling (Not-issued Samples)"
LINE_COLUMNS = ("#", "Line", "Line No", "Source Line", "Line Number")
FILE_COLUMNS = ("File", "Source File", "File Name")


def number(text):
    try:
        return float((text or "").replace(",", ""))
    except ValueError:
        return 0.0


def short_kernel(title):
    """The kernel's name from a title line: without its return type, namespaces and arguments; its
    template arguments, if any, without their namespaces ("ll_combine_kernel<IpcPeers, 1>")."""
    name = title.strip().strip('"').replace("(anonymous namespace)", "").replace("<unnamed>", "")
    for prefix in ("Kernel Name:", "Kernel:", "Function:", "Kernel Name", "Function Name"):
        if name.startswith(prefix):
            name = name[len(prefix):].strip()
            break
    if name.startswith("void "):
        name = name[len("void "):]
    base, template = name, ""
    if "<" in name.split("(", 1)[0]:
        base, rest = name.split("<", 1)
        depth, end = 1, 0
        for end, ch in enumerate(rest):
            depth += {"<": 1, ">": -1}.get(ch, 0)
            if depth == 0:
                break
        args = [a.strip().replace("(bool)", "").rsplit("::", 1)[-1] for a in rest[:end].split(",")]
        template = "<" + ", ".join(args) + ">"
    else:
        base = name.split("(", 1)[0]
    return (base.strip().rsplit("::", 1)[-1] + template) or title.strip()


def read_sections(rows):
    """Yields (kernel title, header, data rows) for each launch's table in the CSV rows."""
    title, header, data = "", None, []
    for row in rows:
        if not row or all(not cell.strip() for cell in row):
            continue
        if SAMPLES in row and "Source" in row:
            if header is not None:
                yield title, header, data
            header, data = row, []
            continue
        if header is None or len(row) < len(header):
            # A title line (the kernel of the table that follows), before any header or between tables.
            if header is not None:
                yield title, header, data
                header, data = None, []
            title = " ".join(cell for cell in row if cell.strip())
            continue
        data.append(row)
    if header is not None:
        yield title, header, data


def summarize(rows):
    """{kernel: Counter{(line label): samples}} and {kernel: (total, not issued, tables)}: a table
    per launch (the cuda and sass views) or per launch and source file (cuda,sass)."""
    per_line = collections.defaultdict(collections.Counter)
    totals = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for title, header, data in read_sections(rows):
        kernel = short_kernel(title) if title else "kernel"
        at = {}
        for i, name in enumerate(header):
            at.setdefault(name, i)  # the first of two "Source" columns (cuda,sass): the source text
        line_col = next((at[c] for c in LINE_COLUMNS if c in at), None)
        file_col = next((at[c] for c in FILE_COLUMNS if c in at), None)
        # cuda,sass: a line's row holds its samples, the instruction rows under it (no line) again.
        lines_only = line_col is not None and "Address" in at
        totals[kernel][2] += 1
        for row in data:
            if len(row) <= at[SAMPLES]:
                continue
            if lines_only and not row[line_col].strip():
                continue
            samples = number(row[at[SAMPLES]])
            totals[kernel][0] += samples
            if NOT_ISSUED in at and len(row) > at[NOT_ISSUED]:
                totals[kernel][1] += number(row[at[NOT_ISSUED]])
            if samples == 0:
                continue
            where = []
            if file_col is not None and row[file_col].strip():
                where.append(row[file_col].strip().rsplit("/", 1)[-1])
            if line_col is not None and row[line_col].strip():
                where.append(row[line_col].strip())
            text = " ".join(row[at["Source"]].split())[:90]
            per_line[kernel][(":".join(where) + "  " + text).strip()] += samples
    return per_line, totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="the source page as CSV")
    parser.add_argument("--top", type=int, default=15, help="lines shown per kernel (default 15)")
    args = parser.parse_args(argv)
    with open(args.csv, newline="") as f:
        per_line, totals = summarize(csv.reader(f))
    if not totals:
        print(f"ncu_lines: no table with a '{SAMPLES}' column in {args.csv}", file=sys.stderr)
        return 1
    for kernel, (total, not_issued, tables) in totals.items():
        issued = f", {not_issued:.0f} not issued" if not_issued else ""
        print(f"== {kernel}: {total:.0f} samples{issued} over {tables} table(s)")
        for label, samples in per_line[kernel].most_common(args.top):
            share = 100.0 * samples / total if total else 0.0
            print(f"  {samples:8.0f} {share:5.1f}%  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
