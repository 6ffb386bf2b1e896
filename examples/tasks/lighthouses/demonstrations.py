#!/usr/bin/env python3
"""Writes the lighthouses task's warm-start transcripts, demonstrations.jsonl (docs/tasks.md).

    python3 demonstrations.py > demonstrations.jsonl

For every `train` question (never dev or test) one main-agent transcript — delegate one sub-task,
answer with its result — and one sub-agent transcript: search the lighthouse, read the hits,
and for the two kinds that need arithmetic call calc-mcp (docs/tools.md's word form) before
returning:

    reach: <call> convert 24 km m </call>  <output> 24000 </output>
    age:   <call> subtract 2000 1879 </call>  <output> 121 </output>

The hits imitate `search` (a lighthouse's sentences by words shared with the query, at most
`top_k` of `snippet_words` words, as `Title : snippet | ...`); the outputs are what calc-mcp
answers, which tests/task.rs checks against the real server. Deterministic: same files, same
output.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_K = 3  # [world] top_k of task.toml
SNIPPET_WORDS = 16  # [world] snippet_words of task.toml


def canonical(text):
    """Words and punctuation marks apart, single spaces (env/src/task/text.rs)."""
    return " ".join(re.findall(r"[^\W_]+|[^\w\s]|_", text))


def sentences(text):
    out, cur = [], []
    for w in canonical(text).split():
        cur.append(w)
        if w in (".", "?", "!"):
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


def lighthouses():
    """name -> (title, sentences) for every `X Lighthouse` document."""
    found = {}
    for f in sorted(os.listdir(os.path.join(HERE, "docs"))):
        lines = open(os.path.join(HERE, "docs", f), encoding="utf-8").read().splitlines()
        title = canonical(lines[0].lstrip("#").strip())
        if title.endswith(" Lighthouse"):
            found[title[: -len(" Lighthouse")]] = (title, sentences(" ".join(lines[1:])))
    return found


# kind -> (the sub-task, the sub-agent's search, the tool call or None); {n} is the lighthouse.
PLANS = {
    "island": ("island of {n}", "island of {n}", None),
    "keeper": ("keeper of {n}", "keeper of {n}", None),
    "colour": ("colour of {n} tower", "colour of {n} tower", None),
    "year": ("year {n} was first lit", "year {n} was first lit", None),
    "reach": ("reach of {n} in metres", "how far the {n} light reaches", "convert {x} km m"),
    "age": ("age of {n} in 2000", "year {n} was first lit", "subtract 2000 {x}"),
}


def hits(query, title, sents, needle):
    """The lighthouse's sentences that share most words with the query, the fact's first."""
    q = set(query.lower().split())
    ranked = sorted(
        range(len(sents)),
        key=lambda i: (-len(q & set(sents[i].lower().split())), i),
    )
    fact = next(i for i in range(len(sents)) if needle in sents[i].split())
    order = [fact] + [i for i in ranked if i != fact]
    snippets = [" ".join(sents[i].split()[:SNIPPET_WORDS]) for i in order[:TOP_K]]
    return " | ".join(f"{title} : {s}" for s in snippets)


def demos(question, lights):
    text = canonical(question["question"])
    name = max((n for n in lights if n in text), key=len)
    title, sents = lights[name]
    task, search, call = PLANS[question["kind"]]
    task, search = task.format(n=name), search.format(n=name)
    answer = canonical(question.get("answer") or question["answers"][0])
    sub = [(f"<task> {task} </task>", False), (f"<search> {search} </search>", True)]
    if call is None:
        sub.append((f"<results> {hits(search, title, sents, answer.split()[0])} </results>", False))
    else:
        kind = question["kind"]
        given = re.search(r"reaches (\d+) km" if kind == "reach" else r"(1[89]\d\d)", " ".join(sents)).group(1)
        sub.append((f"<results> {hits(search, title, sents, given)} </results>", False))
        sub.append((f"<call> {call.format(x=given)} </call>", True))
        sub.append((f"<output> {answer} </output>", False))
    sub.append((f"<return> {answer} </return>", True))
    main = [
        (f"<question> {text} </question>", False),
        (f"<delegate> {task} </delegate>", True),
        (f"<result> {answer} </result>", False),
        (f"<answer> {answer} </answer>", True),
    ]
    return [
        {"role": role, "segments": [{"text": t, "generated": g} for t, g in segs]}
        for role, segs in (("main", main), ("sub", sub))
    ]


def main():
    lights = lighthouses()
    path = os.path.join(HERE, "questions.jsonl")
    for line in open(path, encoding="utf-8"):
        if line.strip():
            q = json.loads(line)
            if q.get("split") == "train":
                for d in demos(q, lights):
                    sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
