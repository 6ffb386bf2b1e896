#!/usr/bin/env python3
"""Checks mgrpo's Hugging Face folders against transformers (run by .ci/run after the tch step,
with the torch venv; needs `pip install transformers`).

    python bench/hf_check.py --mgrpo target/debug/mgrpo [--config cluster.toml]

1. `mgrpo hf export --policy hf:FIXTURE` for every fixture in models/tests/fixtures/hf: transformers
   loads the export and gives the same logits as the fixture itself (|Δ| ≤ 1e-5), for f32,
   `--bf16` and `--dtype f16` (a half export against the fixture cast to that dtype).
2. `mgrpo hf init` (a Qwen3 sized like a preset over the world's tokenizer) and a run's trained
   role exported with `--policy run:DIR` (given with --run DIR --role R): transformers loads the
   folder (model and tokenizer) and its log-probs equal `mgrpo hf logprobs` on it (|Δ| ≤ 1e-4).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "models", "tests", "fixtures", "hf")
IDS = [1, 5, 9, 33, 2, 17, 60, 41, 8, 8, 3, 22, 50, 13, 7, 29, 44, 61, 0, 12]


def logits(folder, ids, dtype=torch.float32):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def mgrpo(binary, *args):
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout
    return out


def check_logprobs(binary, folder, ids, label):
    ours = json.loads(mgrpo(binary, "hf", "logprobs", "--model", folder, "--ids",
                            ",".join(map(str, ids)), "--json").strip().splitlines()[-1])
    lp = torch.log_softmax(logits(folder, ids).double(), -1)
    theirs = [lp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]
    err = max(abs(a - b) for a, b in zip(ours["logprobs"], theirs))
    print(f"{label}: mgrpo vs transformers log-probs, max |Δ| = {err:.2e}")
    assert err <= 1e-4, label
    return err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mgrpo", required=True)
    ap.add_argument("--config", default=os.path.join(ROOT, "cluster.toml"))
    ap.add_argument("--run", help="a run whose --role is an HF architecture")
    ap.add_argument("--role", default="main")
    args = ap.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in ["llama", "qwen2", "qwen3", "qwen3-sharded", "qwen3-bf16"]:
            src = os.path.join(FIXTURES, name)
            for flag, dtype in [([], torch.float32), (["--bf16"], torch.bfloat16),
                                (["--dtype", "f16"], torch.float16)]:
                out = os.path.join(tmp, f"{name}-{dtype}")
                mgrpo(args.mgrpo, "hf", "export", "--policy", f"hf:{src}", "--out", out, *flag)
                err = (logits(out, IDS, dtype) - logits(src, IDS, dtype)).abs().max().item()
                ok = err <= 1e-5
                failures += not ok
                print(f"{name} export {str(dtype).split('.')[-1]}: transformers logits, "
                      f"max |Δ| vs the original = {err:.2e} {'ok' if ok else 'FAIL'}")
        init = os.path.join(tmp, "init")
        mgrpo(args.mgrpo, "hf", "init", "--config", args.config, "--family", "qwen3",
              "--like", "tiny", "--kv-heads", "2", "--seed", "3", "--out", init)
        tok = AutoTokenizer.from_pretrained(init)
        ids = tok("<question> who founded </question>", add_special_tokens=False)["input_ids"]
        ours = json.loads(mgrpo(args.mgrpo, "hf", "tokenize", "--model", init, "--text",
                                "<question> who founded </question>", "--json"))["ids"]
        assert ids == ours, (ids, ours)
        print(f"hf init: transformers' AutoTokenizer ids = mgrpo's ({len(ids)} ids)")
        check_logprobs(args.mgrpo, init, [1, 7, 9, 30, 2, 11, 5], "hf init (qwen3, tiny)")
        if args.run:
            out = os.path.join(tmp, "run-export")
            mgrpo(args.mgrpo, "hf", "export", "--policy", f"run:{args.run}", "--role",
                  args.role, "--out", out)
            check_logprobs(args.mgrpo, out, [1, 7, 9, 30, 2, 11, 5], f"run export ({args.role})")
    if failures:
        sys.exit(f"{failures} check(s) failed")
    print("hf check: ok")


if __name__ == "__main__":
    main()
