#!/usr/bin/env python3
"""Generates the Hugging Face parity fixtures under models/tests/fixtures/hf/ (run once; the
output is committed, so tests never need Python or the network).

    ~/.cache/mgrpo/venv-torch/bin/pip install transformers
    ~/.cache/mgrpo/venv-torch/bin/python bench/hf_fixtures.py

Tiny random models of each architecture mgrpo reads, with weights sharpened well beyond
transformers' default std 0.02 (which gives near-uniform logits that hide RoPE and attention
errors), and the log-probs transformers computes for them, in `expected.json`:

- `llama`: Llama-3 rope scaling (every frequency band used), GQA, untied head; config.json
  rewritten in the transformers 4.x style (`rope_scaling` + top-level `rope_theta`).
- `qwen2`: GQA, q/k/v biases, tied head (4.x style `rope_theta`).
- `qwen3`: per-head q/k RMSNorm, `head_dim` 16 with hidden 32 / 4 heads (transformers 5's
  `rope_parameters` style).
- `qwen3-sharded`: the same weights in two shards with `model.safetensors.index.json`.
- `qwen3-bf16`: the same model stored as bf16 (expected values: the bf16 weights in f32).
- `padded`: a left-padded batch through `qwen2` with an attention mask and position ids
  `cumsum(mask) - 1`, as generation uses.
- `tokenizer`: a byte-level BPE with Qwen2's pre-tokenizer regex (needs look-ahead, so
  fancy-regex on the Rust side) and a ChatML chat template; expected ids for text with Unicode
  and whitespace runs, and the rendered template.
"""
import json
import os
import shutil

import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

ROOT = os.path.join(os.path.dirname(__file__), "..", "models", "tests", "fixtures", "hf")
VOCAB = 64
SEQS = [
    [1, 5, 9, 33, 2, 17, 60, 41, 8, 8, 3, 22, 50, 13, 7, 29, 44, 61, 0, 12],
    [7, 7, 7, 40, 19, 2],
]


def sharpen(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.35 * torch.randn(p.shape, generator=g))


def seq_logprobs(model, ids):
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, -1)
    picked = [lp[t, ids[t + 1]].item() for t in range(len(ids) - 1)]
    return picked, lp[-1].tolist()


def expected_of(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    out = []
    for ids in SEQS:
        lp, last = seq_logprobs(model, ids)
        out.append({"ids": ids, "logprobs": lp, "last_logprobs": last})
    return out, model


def rewrite_config(folder, edit):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    edit(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def to_4x_style(cfg):
    params = cfg.pop("rope_parameters")
    cfg["rope_theta"] = params.pop("rope_theta")
    if params.get("rope_type", "default") != "default":
        cfg["rope_scaling"] = params


def build(name, config, seed):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    sharpen(model, seed)
    folder = os.path.join(ROOT, name)
    model.save_pretrained(folder)
    return model, folder


def tokenizer_fixture():
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    pattern = (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = [
        "The planner delegates a sub-task to the executor, which searches and answers.",
        "Größe, naïve café — 東京 and Zürich; emoji 🙂 too.",
        "def f(x):\n    return x  +  1\n\n\n",
        "Who founded the company that acquired the firm? The answer is 42.",
    ] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    folder = os.path.join(ROOT, "tokenizer")
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    template = (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "chat_template": template,
            },
            f,
            indent=2,
        )
    fast = PreTrainedTokenizerFast.from_pretrained(folder)
    texts = [
        "The planner delegates a sub-task.",
        "Größe naïve café 東京 🙂",
        "  leading   and trailing   \n\n  whitespace runs\t\tand tabs  ",
        "x  +  1\n\n\nreturn 'it''s' 12345",
    ]
    messages = [
        {"role": "system", "content": "You plan."},
        {"role": "user", "content": "  Who founded Zürich's firm?  "},
    ]
    rendered = fast.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return {
        "texts": [{"text": t, "ids": fast.encode(t, add_special_tokens=False)} for t in texts],
        "chat": {"messages": messages, "rendered": rendered,
                 "ids": fast.encode(rendered, add_special_tokens=False)},
    }


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    expected = {}

    common = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)

    llama = LlamaConfig(
        **common, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64},
    )
    _, folder = build("llama", llama, 1)
    rewrite_config(folder, to_4x_style)
    expected["llama"], _ = expected_of(folder)

    qwen2 = Qwen2Config(**common, tie_word_embeddings=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    _, folder = build("qwen2", qwen2, 2)
    rewrite_config(folder, to_4x_style)
    expected["qwen2"], qwen2_model = expected_of(folder)

    qwen3 = Qwen3Config(**common, head_dim=16, tie_word_embeddings=False,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000.0})
    model, folder = build("qwen3", qwen3, 3)
    expected["qwen3"], _ = expected_of(folder)

    sharded = os.path.join(ROOT, "qwen3-sharded")
    model.save_pretrained(sharded, max_shard_size="40KB")
    expected["qwen3-sharded"], _ = expected_of(sharded)
    assert os.path.exists(os.path.join(sharded, "model.safetensors.index.json"))

    bf16 = os.path.join(ROOT, "qwen3-bf16")
    model.to(torch.bfloat16).save_pretrained(bf16)
    expected["qwen3-bf16"], _ = expected_of(bf16)

    # A left-padded batch (pad id 0) through qwen2, as generation runs it.
    rows = [SEQS[0][:12], SEQS[1]]
    width = max(len(r) for r in rows)
    ids = [[0] * (width - len(r)) + r for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    mask_t = torch.tensor(mask)
    positions = (mask_t.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = qwen2_model(torch.tensor(ids), attention_mask=mask_t,
                             position_ids=positions).logits.double()
    lp = torch.log_softmax(logits, -1)
    padded = []
    for b, row in enumerate(rows):
        start = width - len(row)
        padded.append([lp[b, t, ids[b][t + 1]].item() for t in range(start, width - 1)])
    expected["padded"] = {"model": "qwen2", "ids": ids, "mask": mask,
                          "positions": positions.tolist(), "logprobs": padded}

    expected["tokenizer"] = tokenizer_fixture()
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
