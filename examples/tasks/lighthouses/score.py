#!/usr/bin/env python3
"""The lighthouses task's reward command (task.reward = { command = ["python3", "score.py"] }).

One JSON object per line on stdin — {"id", "question", "answers", "answer", "transcript"} —
one {"score": x} per line on stdout. The score is 1 when an accepted answer's words all occur
in the final answer (lower case, punctuation ignored) and the answer is at most three words
longer than it (so listing every island does not pay), else 0.
"""
import json
import re
import sys


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def score(answer, accepted):
    got = words(answer)
    for gold in accepted:
        want = words(gold)
        if want and all(w in got for w in want) and len(got) <= len(want) + 3:
            return 1.0
    return 0.0


for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps({"score": score(request["answer"], request["answers"])}), flush=True)
