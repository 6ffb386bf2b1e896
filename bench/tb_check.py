"""Reads mgrpo's TensorBoard event files back with TensorBoard's own reader
(EventAccumulator) and checks they hold the run's scalars: every numeric key of every
metrics.jsonl line under its tag (`main_loss` -> `main/loss`, the rest under `train/`), every
dev evaluation, and the test summary — the same value (as float32) at the same step.

    python bench/tb_check.py --run RUN --events DIR
"""
import argparse
import json
import math
import pathlib
import struct
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROLES = ("main", "sub", "shared", "single")


def tag(key):
    for role in ROLES:
        if key.startswith(role + "_"):
            return f"{role}/{key[len(role) + 1:]}"
    return f"train/{key}"


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--events", required=True)
    a = ap.parse_args()
    run = pathlib.Path(a.run)
    want = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        for k, v in m.items():
            if k != "step" and isinstance(v, (int, float)):
                want[(tag(k), m["step"])] = v
    ev = run / "eval.jsonl"
    for line in (ev.read_text().splitlines() if ev.exists() else []):
        e = json.loads(line)
        want[(f"{e['split']}/accuracy", e["step"])] = e["report"]["accuracy"]
    test = run / "test.json"
    if test.exists():
        for c in json.loads(test.read_text())["checkpoints"]:
            want[(f"test/accuracy_{c['label']}", c["version"])] = c["accuracy"]
            sub = c.get("sub")
            if sub and sub["calls"] > 0:
                want[(f"test/sub_right_{c['label']}", c["version"])] = sub["right"] / sub["calls"]
    acc = EventAccumulator(a.events, size_guidance={"scalars": 0})
    acc.Reload()
    got = {}
    for t in acc.Tags()["scalars"]:
        for s in acc.Scalars(t):
            got[(t, s.step)] = s.value
    missing = [k for k in want if k not in got]
    wrong = [(k, want[k], got[k]) for k in want if k in got
             and not (math.isclose(got[k], f32(want[k]), rel_tol=0, abs_tol=0) or got[k] == f32(want[k]))]
    print(f"{len(want)} scalars expected, {len(got)} read back, {len(missing)} missing, {len(wrong)} differ")
    if missing or wrong or not want:
        print("missing:", missing[:10], "differ:", wrong[:10], file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
