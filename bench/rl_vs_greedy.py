#!/usr/bin/env python3
"""What RL did to the questions it asked: RL's groups (from the store) against greedy decoding
of the same questions before and after RL (from `mgrpo eval --transcripts`).

Meaningful for a run whose RL asks the world's own questions (`train.year_variants = 0`):
with copies, a group's question is a renamed copy and greedy decoding of the world's question
says little about it. docs/results.md ("From the 500-step warm start") reports its output.

    mgrpo store dump --run RUN --json > groups.jsonl
    mgrpo eval --policy run:RUN@0 --split train --transcripts before.jsonl
    mgrpo eval --policy run:RUN@600 --split train --transcripts after.jsonl
    python3 bench/rl_vs_greedy.py groups.jsonl before.jsonl after.jsonl
"""
import json
import re
import sys
from collections import Counter, defaultdict


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def transcripts_by_id(path):
    return {t["id"]: t for t in read_lines(path)}


def group_share(groups, name):
    if not groups:
        print(f"{name}: no groups")
        return
    right = [sum(m["correct"] for m in g["main"]) / len(g["main"]) for g in groups]
    held = [any(m["correct"] for m in g["main"]) for g in groups]
    print(
        f"{name}: {len(groups)} groups, rollouts right {sum(right) / len(right):.3f}, "
        f"groups holding a right rollout {sum(held) / len(held):.3f}"
    )


def years(before, after):
    """Questions answered by a year: right, and how the wrong answers spread."""
    is_year = lambda s: re.fullmatch(r"\d{4}", s or "") is not None  # noqa: E731
    for label, run in (("before", before), ("after", after)):
        asked = [t for t in run.values() if is_year(t["answers"][0])]
        wrong = [t for t in asked if not t["correct"]]
        # A wrong answer may be no year at all: `19` alone, `19 Lunak`, a name.
        given = Counter(t["answer"] for t in wrong if is_year(t["answer"]))
        first_pair = sum(
            1 for t in wrong if (t["answer"] or "")[:2] == t["answers"][0][:2]
        )
        print(
            f"year questions {label}: {len(asked)}, right {len(asked) - len(wrong)}, "
            f"wrong {len(wrong)} ({first_pair} beginning with the right first pair, "
            f"{sum(1 for t in wrong if not t['answer'])} without an answer, "
            f"{sum(given.values())} a year), {len(given)} distinct wrong years, "
            f"the commonest {given.most_common(3)}"
        )


def main(dump, before_path, after_path):
    before = transcripts_by_id(before_path)
    after = transcripts_by_id(after_path)
    groups = [d for d in read_lines(dump) if d.get("type") == "group"]
    if not groups:
        sys.exit(f"{dump}: no groups (a store dump of a run that trained?)")
    share = lambda run: sum(t["correct"] for t in run.values()) / len(run)  # noqa: E731
    print(f"greedy accuracy on the split: before {share(before):.3f}, after {share(after):.3f}")
    # RL's first and last sixth of the steps.
    steps = max(g["step"] for g in groups) + 1
    for lo, hi in ((0, steps // 6), (steps - steps // 6, steps)):
        window = [g for g in groups if lo <= g["step"] < hi]
        for right in (True, False):
            group_share(
                [g for g in window if before[g["question_id"]]["correct"] == right],
                f"steps {lo}-{hi - 1}, greedy {'right' if right else 'wrong'} before RL",
            )
    held = defaultdict(bool)
    for g in groups:
        held[g["question_id"]] |= any(m["correct"] for m in g["main"])
    wrong = [q for q in held if not before[q]["correct"]]
    with_right = [q for q in wrong if held[q]]
    without = [q for q in wrong if not held[q]]
    print(
        f"asked, greedy wrong before: {len(wrong)}; with a right rollout {len(with_right)}, "
        f"fixed {sum(after[q]['correct'] for q in with_right)}; without one {len(without)}, "
        f"fixed {sum(after[q]['correct'] for q in without)}"
    )
    right = [q for q in held if before[q]["correct"]]
    print(
        f"asked, greedy right before: {len(right)}, "
        f"wrong after {sum(not after[q]['correct'] for q in right)}"
    )
    never = [q for q in before if q not in held]
    print(
        f"never asked: {len(never)}, right before {sum(before[q]['correct'] for q in never)}, "
        f"after {sum(after[q]['correct'] for q in never)}"
    )
    years(before, after)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
