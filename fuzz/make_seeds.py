#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target under fuzz/corpus/<target>/ (committed; run again
after changing an input format). Each seed is a well-formed input, or a near miss, in the layout the
target's header comment describes, so that fuzzing starts past the first checks."""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"

# ---- bootstrap_wire: [reader][step] + bytes as they arrive (src/bootstrap/tcp_wire.hpp) ----------
MAGIC, HELLO, WELCOME, DATA, ABORT = 0x45504342, 1, 2, 3, 4
TOKEN = b"epcomm:port=29500:world=4"


def frame(kind, payload=b"", length=None):
    return struct.pack(">IIQ", MAGIC, kind, len(payload) if length is None else length) + payload


def hello(rank, world=4, token=TOKEN, version=2):
    return frame(HELLO, struct.pack(">III", version, rank, world) + token)


BOOTSTRAP_WIRE = {
    "hello": bytes([0, 0]) + hello(1),
    "hellos_in_steps": bytes([0, 3]) + hello(1) + hello(2) + hello(3),
    "hello_duplicate": bytes([0, 1]) + hello(1) + hello(1),
    "hello_wrong_token": bytes([0, 0]) + hello(2, token=b"another job"),
    "hello_version_1": bytes([0, 0]) + hello(1, token=b"", version=1),
    "hello_2_pow_60": bytes([0, 0]) + frame(HELLO, length=1 << 60),
    "http_probe": bytes([0, 5]) + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "welcome_then_result": bytes([1, 0]) + frame(WELCOME) + frame(DATA, bytes(range(32))),
    "abort": bytes([1, 2]) + frame(ABORT, struct.pack(">I", 6) + b"rank 2 is late"),
    "abort_2_pow_60": bytes([1, 0]) + frame(ABORT, length=1 << 60),
    "blocks": bytes([2, 0]) + frame(DATA, bytes(8)) + frame(DATA, bytes(range(8))),
    "block_size_mismatch": bytes([2, 7]) + frame(DATA, bytes(16)),
}

# ---- checks: [which] + fields, little-endian (fuzz/fuzz_checks.cpp) -------------------------------
BF16, FP8, F32, I32, I64, BOOL, U8 = range(7)
ALIGNED, MISALIGNED, ANYWHERE = 1, 2, 3


def tensor(dtype=U8, shape=(), kind=ALIGNED, contiguous=True, strides=None, address=0):
    """kind, dtype, ndim byte (ndim + 1, bit 7: contiguous strides), 4 extents, 4 strides, address."""
    ndim = len(shape)
    flag = 0x80 if contiguous and strides is None else 0
    extents = list(shape) + [0] * (4 - ndim)
    steps = list(strides or []) + [0] * (4 - len(strides or []))
    return bytes([kind, dtype, (ndim + 1) | flag]) + struct.pack("<4q4qQ", *extents, *steps, address)


NONE = tensor()  # ndim 0: no tensor


def handle_state(num_ranks, num_tokens, num_rows, nle):
    return struct.pack("<IQQI", num_ranks - 1, max(num_tokens, 0) << 1, num_rows << 1, nle << 1)


def dispatch(which, T=4, H=128, R=2, E=8, fp8=False, use_handle=False, tail=b"", x=None):
    x = x or tensor(FP8 if fp8 else BF16, (T, H))
    scales = tensor(F32, (T, H // 128)) if fp8 else NONE
    fields = (x + scales + tensor(I64, (T, 2)) + tensor(F32, (T, 2)) + tensor(I32, (R,)) +
              tensor(BOOL, (T, R)) + tensor(I32, (E,)) + struct.pack("<iq", 1, 0) +
              handle_state(R, T, 6, E // R) + bytes([1 if use_handle else 0]) + struct.pack("<I", R - 1))
    return bytes([which]) + fields + tail


def combine(which, rows=6, T=4, H=128, R=2, tail=b""):
    fields = (tensor(BF16, (rows, H)) + tensor(F32, (rows, 2)) + tensor(BF16, (T, H)) + NONE +
              handle_state(R, T, rows, 4) + bytes([1]) + struct.pack("<I", R - 1))
    return bytes([which]) + fields + tail


def ll_options(T=128, H=7168, E=16, topk=8, blocks=0):
    return struct.pack("<qqiii", T, H, E, topk, blocks)


def buffer_options(nvl=1 << 30, ll_mode=True, transport=0):
    return struct.pack("<qqBqi4i", nvl, 0, 1 if ll_mode else 0, -1, transport, 0, 1, 0, 0)


CHECKS = {
    "dispatch_bf16": dispatch(0),
    "dispatch_fp8": dispatch(0, H=256, fp8=True),
    "dispatch_cached": dispatch(0, use_handle=True),
    "layout": dispatch(1, tail=struct.pack("<i", 8)),
    "dispatch_in_region": dispatch(2, tail=bytes([ALIGNED]) + struct.pack("<QQ", 0, 1 << 20)),
    "dispatch_outside_region": dispatch(2, tail=bytes([ANYWHERE]) + struct.pack("<QQ", 1 << 40, 1 << 20)),
    "combine": combine(3),
    "combine_in_region": combine(4, tail=bytes([ALIGNED]) + struct.pack("<QQ", 0, 1 << 20)),
    "combine_outside_region": combine(4, tail=bytes([ANYWHERE]) + struct.pack("<QQ", 1 << 40, 1 << 20)),
} | {
    f"options_{i}": bytes([5]) + ll_options() + buffer_options() + struct.pack("<i", 2) + bytes([i])
    for i in range(5)
} | {
    "ll_dispatch": bytes([6]) + ll_options() + bytes([1]) + tensor(BF16, (4, 7168)) + tensor(I64, (4, 8)) +
                   bytes([1, 0, 0]) + tensor(I32, (8,)),
    "ll_combine": bytes([7]) + ll_options() + bytes([1]) + tensor(BF16, (8, 256, 7168)) + tensor(I64, (4, 8)) +
                  struct.pack("<Q", 1) + bytes([1]) + struct.pack("<QIB Q B", 4 << 1, 8 << 1, 1, 1, 0) +
                  bytes([0]) + tensor(F32, (4, 8)) + bytes([0]) + struct.pack("<Q", 0),
    "plans": bytes([8]) + struct.pack("<iIQBB", 24, 131, 4096 << 1, 1, 0),
    "plans_cached": bytes([8]) + struct.pack("<iIQBiB", 24, 131, 4096 << 1, 0, 48, 0),
    "plans_copy_engine": bytes([8]) + struct.pack("<iIQBB", 24, 131, 4096 << 1, 1, 4),
}

# Inputs that found a bug, kept so that every run checks them first (named after what they broke).
CHECKS |= {
    # Tensor::describe() indexed shape[4] of a descriptor with ndim 5 (std::array out of bounds).
    "regression_ndim_5": bytes([0, ALIGNED, BF16, 6]) + struct.pack("<4q4qQ", 4, 128, 1, 1, 0, 0, 0, 0, 0),
    # Tensor::is_contiguous() multiplied extents past int64 (signed overflow).
    "regression_contiguous_overflow": bytes([0]) + tensor(BF16, (1 << 62, 128)),
    # check_hidden() multiplied hidden by the element size past int64 (signed overflow).
    "regression_hidden_overflow": bytes([0]) + tensor(BF16, (1, 1 << 62)),
    # expect_outside() formed a pointer past the end of the address space (pointer overflow).
    "regression_region_wrap": dispatch(2, x=tensor(BF16, (4, 128), kind=ANYWHERE, address=(1 << 64) - 256),
                                       tail=bytes([ALIGNED]) + struct.pack("<QQ", 0, 1 << 20)),
    # check_dispatch_args() accepted x of -4 tokens (expect_shape let negative extents through).
    "regression_negative_tokens": dispatch(0, T=-4),
    # check_ll_dispatch_args() accepted x of -4 tokens likewise.
    "regression_ll_negative_tokens": bytes([6]) + ll_options() + bytes([1]) + tensor(BF16, (-4, 7168)) +
                                     tensor(I64, (-4, 8)) + bytes([1, 0, 0]) + tensor(I32, (8,)),
    # plan_ht_dispatch() rounded num_tokens up past int64 (signed overflow).
    "regression_plan_tokens": bytes([8]) + struct.pack("<iIQBB", 24, 131, ((1 << 63) - 1) << 1, 1, 0),
}

# ---- env: [which] + values (fuzz/fuzz_env.cpp) ----------------------------------------------------
def text(s):
    b = s.encode()
    return bytes([len(b)]) + b


ENV = {
    "duration_ms": b"\x00250ms",
    "duration_min": b"\x002m",
    "integer": b"\x0030000",
    # parse_int() took "+-5" as -5 (a sign after the '+'); parse_duration() refused it.
    "regression_plus_minus": b"\x00+-5",
    "too_large": b"\x0099999999999999999999",
    "bool": b"\x00yes",
    "level": b"\x00debug",
    "variable_0": b"\x01\x00" + text("info"),
    "variable_1": b"\x01\x01" + text("3s"),
    "variable_3": b"\x01\x03" + text("99"),
    "launch": b"\x02" + b"".join(text(s) for s in ("127.0.0.1", "29500", "0", "1", "30000", "", "")),
    "launch_token": b"\x02" + b"".join(text(s) for s in ("10.0.0.1", "29501", "3", "8", "5s", "job", "run-7")),
}


def main():
    for target, seeds in (("bootstrap_wire", BOOTSTRAP_WIRE), ("checks", CHECKS), ("env", ENV)):
        folder = ROOT / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / (name if name.startswith("regression_") else f"seed_{name}")).write_bytes(data)
        print(f"{folder}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
