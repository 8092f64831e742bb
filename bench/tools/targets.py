#!/usr/bin/env python3
"""Issue 4's targets, checked in one or more full runs' results.json.

    bench/tools/targets.py LABEL=PATH/results.json [LABEL=PATH ...]

Prints a markdown table: one row per target, per run the median ratio over
the kept rounds (min-max) and the verdict. The README's targets table is
this output.
"""
import json
import sys

# (label, system, payload bytes, summary field, comparison, bound); payload
# 0 means the wake-up summary (kind "wake_up"), any other a round trip or
# stream of that size.
TARGETS = []


def size_name(size):
    return f"{size} B" if size < 1024 else "1 KiB"


for sys_name, mode in [
    ("memtube pure-spin", "pure-spin"),
    ("memtube default", "default"),
    ("memtube pure-spin, isolation off", "pure-spin, isolation off"),
    ("memtube pure-spin, isolation off, line padding off", "pure-spin, isolation off, line padding off"),
    ("memtube pure-spin, 64 KiB rings", "pure-spin, 64 KiB rings"),
    ("memtube pure-spin, isolation off, 64 KiB rings", "pure-spin, isolation off, 64 KiB rings"),
    ("memtube (ring-core) two processes, raw", "ring-core alone, two processes"),
    ("memtube (ring-core) two threads", "ring-core alone, two threads"),
]:
    TARGETS.append((f"32 B round trip p50 ≤ 1.05× ring floor ({mode})", sys_name, 32, "over_ring_floor", "le", 1.05))
for size in [8, 32, 256, 1024]:
    name = size_name(size)
    TARGETS.append((f"{name} round trip p50 ≤ 0.8× Tachyon (pure-spin)", "memtube pure-spin", size, "over_tachyon", "le", 0.8))
    TARGETS.append((f"{name} round trip p50 ≤ 0.25× iceoryx2 (pure-spin)", "memtube pure-spin", size, "over_iceoryx2", "le", 0.25))
for size in [256, 1024]:
    name = size_name(size)
    for sys_name, how in [
        ("memtube pure-spin, isolation off", "pure-spin, isolation off, early wrap on"),
        ("memtube pure-spin, isolation off, early wrap off", "pure-spin, isolation off, early wrap off"),
        ("memtube pure-spin, early wrap 4 KiB", "pure-spin, isolation on, early wrap 4 KiB"),
        ("memtube pure-spin, 64 KiB rings", "pure-spin, 64 KiB rings"),
        ("memtube pure-spin, isolation off, 64 KiB rings", "pure-spin, isolation off, early wrap on, 64 KiB rings"),
    ]:
        TARGETS.append((f"{name} round trip p50 ≤ 0.25× iceoryx2 ({how})", sys_name, size, "over_iceoryx2", "le", 0.25))
for mode, sys_name in [("pure-spin", "memtube pure-spin"), ("default", "memtube default")]:
    for size in [8, 32, 256, 1024]:
        name = size_name(size)
        TARGETS.append((f"{name} p99.9 ≤ 3× p50 ({mode}, per run)", sys_name, size, "p999_over_p50", "le", 3.0))
STREAMS = [("zero-copy", "memtube zero-copy"), ("copy", "memtube copy"), ("batched", "memtube batched")]
for how, sys_name in STREAMS[:2] + [("copy, line padding off", "memtube copy, line padding off")] + STREAMS[2:]:
    TARGETS.append((f"32 B streaming ≥ 2× Tachyon messages/s ({how})", sys_name, 32, "over_tachyon", "ge", 2.0))
for how, sys_name in STREAMS[:2] + [("copy, non-temporal off", "memtube copy, non-temporal copy off")] + STREAMS[2:]:
    TARGETS.append((f"64 KiB streaming ≥ 0.7× one-core memcpy ({how})", sys_name, 65536, "over_memcpy", "ge", 0.7))
TARGETS.append(("wake-up p50 ≤ 1.1× futex wake-up", "memtube default", 0, "over_futex_wake", "le", 1.1))


def find(summaries, system, size, field):
    for s in summaries:
        if s["system"] != system or not s.get(field):
            continue
        wake = s["kind"] == "wake_up"
        if (size == 0 and wake) or (size != 0 and not wake and s["payload_bytes"] == size):
            return s[field]
    return None


def main():
    runs = []
    for arg in sys.argv[1:]:
        label, path = arg.split("=", 1)
        with open(path) as f:
            runs.append((label, json.load(f)["summaries"]))
    head = "| target (issue 4) | " + " | ".join(f"{l} | verdict" for l, _ in runs) + " |"
    print(head)
    print("|---|" + "---|---|" * len(runs))
    for label, system, size, field, cmp, bound in TARGETS:
        cells = []
        for _, summaries in runs:
            r = find(summaries, system, size, field)
            if r is None:
                cells += ["–", ""]
                continue
            m = r["median"]
            ok = m <= bound if cmp == "le" else m >= bound
            cells += [f"{m:.2f} ({r['min']:.2f}–{r['max']:.2f})×", "met" if ok else "**missed**"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
