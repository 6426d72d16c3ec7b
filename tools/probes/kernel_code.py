#!/usr/bin/env python3
"""What each kernel of a build executes, read from its SASS: instructions per kernel, the calls it
makes (a 64-bit integer division is a call of ~100 instructions, `__cuda_sm20_div_s64`), and the
source lines with the most instructions. No GPU needed.

    tools/probes/kernel_code.py build/CMakeFiles/epcomm_objects.dir/src/low_latency/ll_dispatch.cu.o
    tools/probes/kernel_code.py --top 5 build/CMakeFiles/epcomm_objects.dir/src   # every .cu.o below
    tools/probes/kernel_code.py --from-disasm listing.txt                        # nvdisasm output

Objects are unpacked with cuobjdump -xelf and read with nvdisasm --print-line-info (the CUDA
toolkit's, or the pip wheels nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm; CUOBJDUMP and
NVDISASM name them when they are not on PATH). Source lines need -lineinfo, which the build sets.
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

SECTION = re.compile(r"^\s*\.section\s")
FUNCTION = re.compile(r"^\s*\.text\.(\S+):")
LINE = re.compile(r'//## File "([^"]+)", line (\d+)')
INSTRUCTION = re.compile(r"^\s+/\*[0-9a-f]{4,}\*/\s")
CALLEE = re.compile(r"CALL\.\S+\s+`\(\$?([^)]+)\)")


class Kernel:
    def __init__(self, name):
        self.name = name
        self.instructions = 0
        self.calls = collections.Counter()  # callee -> call sites
        self.lines = collections.Counter()  # (file, line) -> instructions


def parse(lines):
    """Kernels (and device functions) of one nvdisasm --print-line-info listing, in order."""
    kernels, current, where = [], None, None
    for text in lines:
        if SECTION.match(text):  # a new section: not code until its function label
            current = None
            continue
        m = FUNCTION.match(text)
        if m:
            current = Kernel(m.group(1))
            kernels.append(current)
            where = None
            continue
        m = LINE.search(text)
        if m:
            where = (os.path.basename(m.group(1)), int(m.group(2)))
            continue
        if current is None or not INSTRUCTION.match(text):
            continue
        current.instructions += 1
        current.lines[where] += 1
        m = CALLEE.search(text)
        if m:
            callee = m.group(1)
            current.calls[callee.split("$")[-1] if callee.startswith("__internal") else callee] += 1
    return kernels


def tool(variable, name):
    path = os.environ.get(variable) or shutil.which(name)
    if not path:
        sys.exit(f"kernel_code: {name} not found (set {variable}, or pip install nvidia-cuda-{name})")
    return path


def disassemble(obj, scratch):
    """The listings of every cubin inside one object file."""
    out = os.path.join(scratch, os.path.basename(obj) + ".d")
    os.makedirs(out, exist_ok=True)
    subprocess.run([tool("CUOBJDUMP", "cuobjdump"), "-xelf", "all", os.path.abspath(obj)], cwd=out, check=True,
                   stdout=subprocess.DEVNULL)
    listings = []
    for cubin in sorted(f for f in os.listdir(out) if f.endswith(".cubin")):
        text = subprocess.run([tool("NVDISASM", "nvdisasm"), "--print-line-info", os.path.join(out, cubin)],
                              check=True, capture_output=True, text=True).stdout
        listings.append(text.splitlines())
    return listings


def objects(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in sorted(os.walk(path)):
                yield from (os.path.join(root, f) for f in sorted(files) if f.endswith(".cu.o"))
        else:
            yield path


def demangle(name):
    filt = shutil.which("c++filt")
    if not filt:
        return name
    return subprocess.run([filt, name], capture_output=True, text=True).stdout.strip() or name


def report(kernels, top):
    for k in kernels:
        calls = ", ".join(f"{n} x {c}" for c, n in sorted(k.calls.items())) or "none"
        print(f"{demangle(k.name)}\n  instructions {k.instructions}; calls: {calls}")
        for (where, n) in k.lines.most_common(top):
            print(f"    {n:6d}  {where[0]}:{where[1]}" if where else f"    {n:6d}  (no line info)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="object files, or folders searched for *.cu.o")
    parser.add_argument("--from-disasm", help="read one nvdisasm --print-line-info listing instead")
    parser.add_argument("--top", type=int, default=8, help="source lines shown per kernel")
    args = parser.parse_args()
    if args.from_disasm:
        with open(args.from_disasm) as f:
            report(parse(f.read().splitlines()), args.top)
        return
    if not args.paths:
        parser.error("give object files or folders, or --from-disasm")
    with tempfile.TemporaryDirectory() as scratch:
        for obj in objects(args.paths):
            print(f"== {obj}")
            for listing in disassemble(obj, scratch):
                report(parse(listing), args.top)


if __name__ == "__main__":
    main()
