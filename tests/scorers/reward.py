#!/usr/bin/env python3
"""A reward command for tests (task.reward = { command = ["python3", "reward.py", LOG, MODE] }).

Reads one JSON object per line ({"id", "question", "answers", "answer", "transcript"}) and
writes {"score": x} per line. Appends "start" to LOG when it starts and each request to LOG.
MODE:
  always   every answer scores 1 (so a run's accuracy is its format rate: the scores are used)
  flaky    like always, but the first three requests of the whole run (counted in LOG) are
           answered by a crash, a hang and garbage, in that order
  crash    exits on every request
"""
import json
import sys
import time

log_path, mode = sys.argv[1], sys.argv[2]


def log(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")


def requests_so_far():
    try:
        with open(log_path) as f:
            return sum(1 for l in f if l.startswith("{"))
    except FileNotFoundError:
        return 0


log("start")
for line in sys.stdin:
    request = json.loads(line)
    log(json.dumps(request, sort_keys=True))
    n = requests_so_far()
    if mode == "crash" or (mode == "flaky" and n == 1):
        sys.exit(3)
    if mode == "flaky" and n == 2:
        time.sleep(60)
    if mode == "flaky" and n == 3:
        print("this is not a score", flush=True)
        continue
    print(json.dumps({"score": 1.0}), flush=True)
