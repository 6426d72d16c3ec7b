"""The overhead script's (python/tests/gpu/overhead.py) host-side parts, which need no GPU: each
Python row meets epcomm-bench's row of the same workload, tokens, op and mode, and the commit comes
from the benchmark's report."""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "gpu"))

import overhead  # noqa: E402


def bench_report(workload, rows, commit="abc1234"):
    return {"workload": workload, "commit": commit, "rows": [
        {"impl": impl, "op": op, "dtype": "fp8", "num_sms": 0, "tokens": tokens, "hidden": 7168, "time_us": t,
         "batch_us": None if t is None else t - 1, "host_us": None if t is None else t / 10}
        for impl, op, tokens, t in rows]}


def python_row(layer, workload, tokens, op, mode, event_us):
    return dict(layer=layer, workload=workload, tokens=tokens, op=op, mode=mode, event_us=event_us,
                batch_us=event_us, host_us=1.0)


def test_rows_meet_the_cpp_row_of_the_same_call():
    reports = [bench_report("ll-dsv3", [("epcomm", "dispatch", 128, 40.0), ("epcomm-graph", "dispatch", 128, 30.0),
                                        ("epcomm", "combine", 128, 50.0), ("epcomm-hook", "dispatch", 128, 99.0),
                                        ("epcomm", "dispatch+combine", 128, 99.0)]),
               bench_report("ll-small", [("epcomm", "dispatch", 1, 20.0), ("epcomm", "dispatch", 8, 21.0),
                                         ("epcomm", "combine", 8, None)])]
    rows = [python_row("deep_ep", "ll-dsv3", 128, "dispatch", "eager", 43.5),
            python_row("epcomm", "ll-dsv3", 128, "dispatch", "graph", 30.5),
            python_row("deep_ep", "ll-dsv3", 128, "combine", "graph", 60.0),  # no C++ graph combine row given
            python_row("deep_ep", "ll-small", 8, "dispatch", "eager", 25.0),
            python_row("deep_ep", "ll-small", 8, "combine", "eager", 25.0),  # the C++ row has no time (null)
            python_row("epcomm", "ll-dsv3", 128, "dispatch", "graph-raw", 30.25)]  # meets epcomm-graph too
    got = overhead.compare(rows, reports)
    assert [(c["layer"], c["workload"], c["tokens"], c["op"], c["mode"], c["cpp_time_us"]) for c in got] == [
        ("deep_ep", "ll-dsv3", 128, "dispatch", "eager", 40.0), ("epcomm", "ll-dsv3", 128, "dispatch", "graph", 30.0),
        ("deep_ep", "ll-small", 8, "dispatch", "eager", 21.0), ("epcomm", "ll-dsv3", 128, "dispatch", "graph-raw", 30.0)]
    assert [c["python_minus_cpp_us"] for c in got] == [3.5, 0.5, 4.0, 0.25]
    assert [c["host_python_minus_cpp_us"] for c in got] == [1.0 - 4.0, 1.0 - 3.0, 1.0 - 2.1, 1.0 - 3.0]
    assert [c["batch_python_minus_cpp_us"] for c in got] == [43.5 - 39.0, 30.5 - 29.0, 25.0 - 20.0, 30.25 - 29.0]
    assert overhead.compare(rows, []) == []


def test_commit_comes_from_the_bench_report():
    assert overhead.commit([bench_report("ll-dsv3", [], commit="feed123")]) == "feed123"
    assert overhead.commit([]) != ""


def test_workloads_are_the_benchmarks():
    """The script's shapes are read back from tools/bench/workload.cpp, the benchmark's definition."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "bench", "workload.cpp")
    with open(path) as f:
        source = f.read()
    dsv3 = re.search(r'"ll-dsv3"\) return \{make\(name, Mode::kLowLatency, Routing::kRandom, (\d+), (\d+)\)', source)
    small = re.search(r'"ll-small"\) \{.*?num_tokens : \{([\d, ]+)\}\).*?num_tokens, (\d+)\)', source, re.S)
    assert dsv3 and small, "workload.cpp no longer reads as this test expects: update overhead.py and this test"
    expected = [("ll-dsv3", int(dsv3.group(1)))] + [("ll-small", int(t)) for t in small.group(1).split(",")]
    assert list(overhead.WORKLOADS) == expected
    assert int(dsv3.group(2)) == int(small.group(2)) == overhead.EXPERTS
    assert f"w.hidden = {overhead.HIDDEN};" in source and f"w.num_topk = {overhead.TOPK};" in source


def test_profiles_name_where_each_call_spends_its_host_time(monkeypatch):
    """profile_calls over stand-in layers (no GPU): one entry per layer, workload and op, each listing
    the functions by own time per call, the stand-in's own work first."""
    def slow_step():
        sum(range(2000))

    class StandIn:
        def __init__(self, group, tokens, *inputs):
            self.handle = None

        def dispatch(self):
            slow_step()
            return "handle"

        def combine(self):
            slow_step()

        def close(self):
            pass

    deep_ep_layer = type("DeepEpStandIn", (StandIn,), {"layer": "deep_ep"})
    epcomm_layer = type("EpcommStandIn", (StandIn,), {"layer": "epcomm"})
    monkeypatch.setattr(overhead, "DeepEpCalls", deep_ep_layer)
    monkeypatch.setattr(overhead, "EpcommCalls", epcomm_layer)
    monkeypatch.setattr(overhead, "inputs", lambda tokens: ())
    profiles = overhead.profile_calls(None, 5, top=4)
    assert len(profiles) == 2 * len(overhead.WORKLOADS) * 2
    rows = profiles["epcomm ll-dsv3 T=128 combine"]
    assert len(rows) <= 4 and [r[2] for r in rows] == sorted((r[2] for r in rows), reverse=True)
    step = [r for r in rows if r[0].endswith(":slow_step")]
    assert len(step) == 1 and step[0][1] == 5  # called once per profiled call
    assert all(r[1] >= 1 and r[3] >= r[2] >= 0 for r in rows)
