"""What calling epcomm from Python costs: the low-latency dispatch and combine of the workloads
ll-dsv3 (128 tokens) and ll-small (1, 8 and 32 tokens) of tools/bench/workload.cpp (hidden 7168, top-8
of 288 experts, random routing, FP8 dispatch, BF16 combine), on one rank and one GPU, through
epcomm.deep_ep and through epcomm's own layer, called eagerly and replayed from a CUDA graph.

Not a test (timings never decide pass or fail): tools/device_session.sh's step `python` runs it
beside epcomm-bench's rows of the same workloads on one rank, and this script puts both in one JSON.

Per (layer, workload, tokens, op, mode) it reports, from `--iters` calls after `--warmup`:
- event_us: the median of CUDA-event times around each call, the calls back to back on one stream;
  the method of epcomm-bench's time_us (tools/bench/timing.cpp), so the two compare;
- batch_us: the time of a second loop of calls between two events, over their number (steady
  state: the larger of the GPU's time per call and the host's);
- host_us: the host's wall time to issue one call of that loop (no event inside it).
batch_us and host_us are epcomm-bench's (tools/bench/timing.cpp), measured alike. event_us is
not a fair measure of a Python call: torch.cuda.Event.record costs ~7 us of host time from Python,
so the event-timed loop starves the GPU and each event time takes in the host's time before the
launch. With --bench-json (epcomm-bench --json files, one rank), `comparison` holds each Python
row beside the C++ row of the same call (impl "epcomm" for eager, "epcomm-graph" for graph
replay): host_us minus host_us is what the Python layer costs the calling thread, batch_us minus
batch_us what it costs the GPU's timeline (nothing while the host issues calls faster than the GPU
runs them).

Modes: eager; graph (torch.cuda.CUDAGraph.replay of the captured call); graph-raw (the same graph's
executable launched by cudaGraphLaunch, as epcomm-bench launches its graphs: where graph-raw
matches the C++ graph row, the difference of graph is torch's replay, not epcomm's).

    python overhead.py --out overhead.json [--bench-json ll-dsv3.json ll-small.json] [--profile 200]

--profile N: after the timings, N eager calls of each (layer, workload, op) under cProfile; the
functions that took the host's time (own time, then with callees) are printed and kept in the JSON
(`profiles`), to tell which step of the Python call costs what.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HIDDEN, TOPK, EXPERTS = 7168, 8, 288
WORKLOADS = (("ll-dsv3", 128), ("ll-small", 1), ("ll-small", 8), ("ll-small", 32))


def init_group():
    """A one-rank gloo group (deep_ep.Buffer takes a torch.distributed group)."""
    import torch.distributed as dist
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    return dist.new_group([0])


def inputs(tokens):
    import torch
    g = torch.Generator().manual_seed(1234 + tokens)
    x = torch.randn(tokens, HIDDEN, generator=g).bfloat16().cuda()
    idx = torch.rand(tokens, EXPERTS, generator=g).topk(TOPK, dim=1).indices.cuda()  # distinct experts
    weights = torch.rand(tokens, TOPK, generator=g).cuda()
    y = torch.zeros(EXPERTS, tokens, HIDDEN, dtype=torch.bfloat16, device="cuda")  # [nle, R*T, hidden], R = 1
    return x, idx, weights, y


def time_calls(call, iters, warmup):
    """(event_us, batch_us, host_us) of `call` as the module's docstring defines them."""
    import torch
    for _ in range(warmup):
        call()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for start, stop in zip(starts, stops):
        start.record()
        call()
        stop.record()
    torch.cuda.synchronize()
    event_us = statistics.median(a.elapsed_time(b) * 1e3 for a, b in zip(starts, stops))
    first, last = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    first.record()
    begin = time.perf_counter()
    for _ in range(iters):
        call()
    host_us = (time.perf_counter() - begin) / iters * 1e6
    last.record()
    torch.cuda.synchronize()
    return event_us, first.elapsed_time(last) * 1e3 / iters, host_us


def graph_of(call):
    """`call` captured once in a CUDA graph (after one eager warm-up call)."""
    import torch
    call()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call()
    torch.cuda.synchronize()
    return graph


def raw_launch_of(graph):
    """A launch of `graph`'s executable by cudaGraphLaunch itself on the current stream, as
    epcomm-bench replays its graphs (torch's replay() adds steps of its own); None where this torch
    does not hand out the executable or no CUDA runtime is loaded."""
    import ctypes
    import torch
    exec_of = getattr(graph, "raw_cuda_graph_exec", None)
    if exec_of is None:
        return None
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            launch = ctypes.CDLL(name).cudaGraphLaunch
            break
        except OSError:
            continue
    else:
        return None
    launch.argtypes, launch.restype = (ctypes.c_void_p, ctypes.c_void_p), ctypes.c_int
    handle, stream = ctypes.c_void_p(exec_of()), ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    def replay():
        rc = launch(handle, stream)
        if rc != 0:
            raise RuntimeError(f"cudaGraphLaunch: CUDA error {rc}")
    return replay


class DeepEpCalls:
    """dispatch / combine through epcomm.deep_ep, as a framework calls them."""
    layer = "deep_ep"

    def __init__(self, group, tokens, x, idx, weights, y):
        from epcomm import deep_ep
        hint = deep_ep.Buffer.get_low_latency_rdma_size_hint(tokens, HIDDEN, 1, EXPERTS)
        self.buffer = deep_ep.Buffer(group, 0, hint, low_latency_mode=True, explicitly_destroy=True)
        self.buffer.clean_low_latency_buffer(tokens, HIDDEN, EXPERTS)  # made outside any capture
        self.tokens, self.x, self.idx, self.weights, self.y = tokens, x, idx, weights, y
        self.handle = self.dispatch()

    def dispatch(self):
        return self.buffer.low_latency_dispatch(self.x, self.idx, self.tokens, EXPERTS, use_fp8=True)[2]

    def combine(self):
        self.buffer.low_latency_combine(self.y, self.idx, self.weights, self.handle)

    def close(self):
        self.buffer.destroy()


class EpcommCalls:
    """dispatch / combine through epcomm's own layer (keyword arguments, explicit streams)."""
    layer = "epcomm"

    def __init__(self, group, tokens, x, idx, weights, y):
        import torch
        import epcomm
        from epcomm import torch_support
        del group  # one rank: a callback bootstrap that gathers its own bytes
        self.buffer = epcomm.Buffer(epcomm.callback_bootstrap(0, 1, lambda data: data),
                                    low_latency=epcomm.LowLatencyOptions(tokens, HIDDEN, EXPERTS, max_topk=TOPK),
                                    allocator=torch_support.allocator(torch.cuda.current_device()))
        self.stream = torch_support.current_stream
        self.x, self.idx, self.weights, self.y = x, idx, weights, y
        self.handle = self.dispatch()

    def dispatch(self):
        return self.buffer.low_latency_dispatch(self.x, self.idx, use_fp8=True, stream=self.stream()).handle

    def combine(self):
        self.buffer.low_latency_combine(self.y, self.idx, self.weights, self.handle, stream=self.stream())

    def close(self):
        self.buffer.destroy()


def measure(group, iters, warmup):
    rows = []
    for layer in (DeepEpCalls, EpcommCalls):
        for workload, tokens in WORKLOADS:
            calls = layer(group, tokens, *inputs(tokens))
            for op in ("dispatch", "combine"):
                if op == "combine":
                    calls.handle = calls.dispatch()  # combine the latest dispatch (double buffering)
                call = getattr(calls, op)
                graph = None
                for mode in ("eager", "graph", "graph-raw"):  # as epcomm-bench: eager rows first, then the graph
                    if mode == "eager":
                        timed = call
                    elif mode == "graph":
                        graph = graph_of(call)
                        timed = graph.replay
                    else:
                        timed = raw_launch_of(graph)
                        if timed is None:
                            continue
                    event_us, batch_us, host_us = time_calls(timed, iters, warmup)
                    rows.append(dict(layer=layer.layer, workload=workload, tokens=tokens, op=op, mode=mode,
                                     dtype="fp8" if op == "dispatch" else "bf16", event_us=event_us,
                                     batch_us=batch_us, host_us=host_us))
                    print("%-8s %-9s T=%-4d %-9s %-6s event %8.2f us  batch %8.2f us  host %7.2f us" %
                          (layer.layer, workload, tokens, op, mode, event_us, batch_us, host_us), flush=True)
            calls.close()
    return rows


def profile_calls(group, calls_each, top=12):
    """{"layer workload T op": [[function, calls, own_us_per_call, cumulative_us_per_call], ...]}."""
    import cProfile
    import pstats
    out = {}
    for layer in (DeepEpCalls, EpcommCalls):
        for workload, tokens in WORKLOADS:
            calls = layer(group, tokens, *inputs(tokens))
            for op in ("dispatch", "combine"):
                if op == "combine":
                    calls.handle = calls.dispatch()
                call = getattr(calls, op)
                for _ in range(20):
                    call()
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(calls_each):
                    call()
                profiler.disable()
                stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
                rows = sorted(((f"{os.path.basename(k[0])}:{k[1]}:{k[2]}", v[1], v[2] / calls_each * 1e6,
                                v[3] / calls_each * 1e6) for k, v in stats.items()), key=lambda r: -r[2])[:top]
                key = f"{layer.layer} {workload} T={tokens} {op}"
                out[key] = [list(r) for r in rows]
                print(f"profile {key}: own us per call, cumulative us per call", flush=True)
                for name, n, own, cum in rows:
                    print(f"    {own:7.2f} {cum:7.2f}  x{n // calls_each:<3d} {name}", flush=True)
            calls.close()
    return out


def load_reports(bench_files):
    reports = []
    for path in bench_files:
        with open(path) as f:
            reports.append(json.load(f))
    return reports


def compare(rows, reports):
    """Each Python row beside epcomm-bench's row of the same workload, tokens, op and mode."""
    cpp = {}
    for report in reports:
        for r in report["rows"]:
            timed = r.get("time_us") is not None  # null: the row has no time (epcomm-bench's JSON)
            if timed and r["impl"] in ("epcomm", "epcomm-graph") and r["op"] in ("dispatch", "combine"):
                mode = "graph" if r["impl"] == "epcomm-graph" else "eager"
                cpp[(report["workload"], r["tokens"], r["op"], mode)] = (r["time_us"], r.get("batch_us"), r.get("host_us"))
    out = []
    for r in rows:
        key = (r["workload"], r["tokens"], r["op"], "graph" if r["mode"].startswith("graph") else r["mode"])
        if key in cpp:
            time_us, batch_us, host_us = cpp[key]
            out.append(dict(layer=r["layer"], workload=r["workload"], tokens=r["tokens"], op=r["op"], mode=r["mode"],
                            python_event_us=r["event_us"], cpp_time_us=time_us,
                            python_minus_cpp_us=r["event_us"] - time_us,
                            python_batch_us=r["batch_us"], cpp_batch_us=batch_us,
                            batch_python_minus_cpp_us=None if batch_us is None else r["batch_us"] - batch_us,
                            python_host_us=r["host_us"], cpp_host_us=host_us,
                            host_python_minus_cpp_us=None if host_us is None else r["host_us"] - host_us))
    return out


def commit(reports):
    """The build's commit: epcomm-bench's (it knows it from CMake), else git's, else EPCOMM_COMMIT."""
    if reports and reports[0].get("commit"):
        return reports[0]["commit"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("EPCOMM_COMMIT", "unknown")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--bench-json", nargs="*", default=[], help="epcomm-bench --json files (one rank)")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then N eager calls of each under cProfile (0: none)")
    args = parser.parse_args()
    import torch
    import epcomm
    if not torch.cuda.is_available():
        sys.exit("overhead.py: needs a CUDA GPU")
    group = init_group()
    reports = load_reports(args.bench_json)
    rows = measure(group, args.iters, args.warmup)
    result = dict(card=torch.cuda.get_device_name(), num_gpus=1, num_ranks=1, commit=commit(reports),
                  date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  command=" ".join([os.path.basename(sys.executable)] + sys.argv), python=sys.version.split()[0],
                  torch=torch.__version__, epcomm=epcomm.__version__, iters=args.iters, warmup=args.warmup,
                  rows=rows, comparison=compare(rows, reports))
    if args.profile > 0:
        torch.cuda.synchronize()
        result["profiles"] = profile_calls(group, args.profile)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    for c in result["comparison"]:
        if c["cpp_host_us"] is None:  # a report from before epcomm-bench had batch_us and host_us
            print("%-8s %-9s T=%-4d %-9s %-9s event: python %6.2f us  C++ %6.2f us  difference %+6.2f us" %
                  (c["layer"], c["workload"], c["tokens"], c["op"], c["mode"], c["python_event_us"],
                   c["cpp_time_us"], c["python_minus_cpp_us"]))
            continue
        print("%-8s %-9s T=%-4d %-9s %-9s batch: python %6.2f us  C++ %6.2f us  difference %+6.2f us   "
              "host: python %6.2f us  C++ %6.2f us  difference %+6.2f us" %
              (c["layer"], c["workload"], c["tokens"], c["op"], c["mode"], c["python_batch_us"], c["cpp_batch_us"],
               c["batch_python_minus_cpp_us"], c["python_host_us"], c["cpp_host_us"], c["host_python_minus_cpp_us"]))


if __name__ == "__main__":
    main()
