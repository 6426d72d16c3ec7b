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
the line's samples and the instruction rows under it repeat them: only the line rows are counted.
That view gives a table per launch and source file, each after a "File Path" row: its lines are
named file:line. Launches of one kernel (one instantiation) are added together; a kernel's lines
are shown with their share of its samples, and where the page has them, the instructions the line
executed (summed over the launches) and its three largest stall reasons (the `stall_*` columns of
every sample). `--sort instructions` ranks the lines by instructions executed instead: a kernel
whose warps run once through a long path is bound by how many instructions that path issues.
"""
import argparse
import collections
import csv
import re
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"
NOT_ISSUED = "Warp Stall Sampling (Not-issued Samples)"
INSTRUCTIONS = "Instructions Executed"
STALL_PREFIX = "stall_"
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
        # Without their casts ("(bool)1", "(int)8") and namespaces.
        args = [re.sub(r"^\([A-Za-z_ ]+\)", "", a.strip()).rsplit("::", 1)[-1] for a in rest[:end].split(",")]
        template = "<" + ", ".join(args) + ">"
    else:
        base = name.split("(", 1)[0]
    return (base.strip().rsplit("::", 1)[-1] + template) or title.strip()


def read_sections(rows):
    """Yields (kernel title, source file or "", header, data rows) for each table in the CSV rows."""
    title, path, header, data = "", "", None, []
    for row in rows:
        if not row or all(not cell.strip() for cell in row):
            continue
        if SAMPLES in row and "Source" in row:
            if header is not None:
                yield title, path, header, data
            header, data = row, []
            continue
        if header is None or len(row) < len(header):
            # A title line (the kernel of the table that follows, or its source file), before any
            # header or between tables.
            if header is not None:
                yield title, path, header, data
                header, data = None, []
            if row[0].strip() == "File Path":
                path = row[1].strip().rsplit("/", 1)[-1] if len(row) > 1 else ""
            else:
                title = " ".join(cell for cell in row if cell.strip())
            continue
        data.append(row)
    if header is not None:
        yield title, path, header, data


class Line:
    """One source line of one kernel: its samples, instructions executed and samples per stall reason."""

    def __init__(self):
        self.samples = 0.0
        self.instructions = 0.0
        self.stalls = collections.Counter()


def summarize(rows):
    """{kernel: {label: Line}} and {kernel: [total samples, not issued, tables, has instructions]}: a
    table per launch (the cuda and sass views) or per launch and source file (cuda,sass)."""
    per_line = collections.defaultdict(lambda: collections.defaultdict(Line))
    totals = collections.defaultdict(lambda: [0.0, 0.0, 0, False])
    for title, path, header, data in read_sections(rows):
        kernel = short_kernel(title) if title else "kernel"
        at = {}
        for i, name in enumerate(header):
            at.setdefault(name, i)  # the first of two "Source" columns (cuda,sass): the source text
        line_col = next((at[c] for c in LINE_COLUMNS if c in at), None)
        file_col = next((at[c] for c in FILE_COLUMNS if c in at), None)
        stall_cols = [(name[len(STALL_PREFIX):], i) for name, i in at.items()
                      if name.startswith(STALL_PREFIX) and "Not Issued" not in name]
        # cuda,sass: a line's row holds its samples, the instruction rows under it (no line) again.
        lines_only = line_col is not None and "Address" in at
        totals[kernel][2] += 1
        totals[kernel][3] |= INSTRUCTIONS in at
        for row in data:
            if len(row) <= at[SAMPLES]:
                continue
            if lines_only and not row[line_col].strip():
                continue
            samples = number(row[at[SAMPLES]])
            instructions = number(row[at[INSTRUCTIONS]]) if INSTRUCTIONS in at and len(row) > at[INSTRUCTIONS] else 0.0
            totals[kernel][0] += samples
            if NOT_ISSUED in at and len(row) > at[NOT_ISSUED]:
                totals[kernel][1] += number(row[at[NOT_ISSUED]])
            if samples == 0 and instructions == 0:
                continue
            where = []
            if file_col is not None and row[file_col].strip():
                where.append(row[file_col].strip().rsplit("/", 1)[-1])
            elif path:
                where.append(path)
            if line_col is not None and row[line_col].strip():
                where.append(row[line_col].strip())
            text = " ".join(row[at["Source"]].split())[:90]
            line = per_line[kernel][(":".join(where) + "  " + text).strip()]
            line.samples += samples
            line.instructions += instructions
            for reason, i in stall_cols:
                if len(row) > i:
                    line.stalls[reason] += number(row[i])
    return per_line, totals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="the source page as CSV")
    parser.add_argument("--top", type=int, default=15, help="lines shown per kernel (default 15)")
    parser.add_argument("--sort", choices=("samples", "instructions"), default="samples",
                        help="rank lines by their samples (default) or by the instructions they executed")
    args = parser.parse_args(argv)
    with open(args.csv, newline="") as f:
        per_line, totals = summarize(csv.reader(f))
    if not totals:
        print(f"ncu_lines: no table with a '{SAMPLES}' column in {args.csv}", file=sys.stderr)
        return 1
    for kernel, (total, not_issued, tables, has_instructions) in totals.items():
        lines = per_line[kernel]
        issued = f", {not_issued:.0f} not issued" if not_issued else ""
        executed = sum(line.instructions for line in lines.values())
        counted = f", {executed:.0f} instructions executed" if has_instructions else ""
        print(f"== {kernel}: {total:.0f} samples{issued}{counted} over {tables} table(s)")
        key = (lambda kv: kv[1].instructions) if args.sort == "instructions" else (lambda kv: kv[1].samples)
        for label, line in sorted(lines.items(), key=key, reverse=True)[:args.top]:
            share = 100.0 * line.samples / total if total else 0.0
            extra = []
            if has_instructions:
                extra.append(f"inst {line.instructions:.0f} ({100.0 * line.instructions / executed if executed else 0.0:.1f}%)")
            top = [f"{reason} {n:.0f}" for reason, n in line.stalls.most_common(3) if n > 0]
            if top:
                extra.append(", ".join(top))
            suffix = f"  [{'; '.join(extra)}]" if extra else ""
            print(f"  {line.samples:8.0f} {share:5.1f}%  {label}{suffix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
