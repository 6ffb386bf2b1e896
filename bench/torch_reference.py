#!/usr/bin/env python3
"""Eager-PyTorch reference for `mgrpo bench models` (mgrpo_models::bench).

Builds the same decoder-only transformer as the Rust crate (token + learned position
embeddings, pre-norm blocks with a fused bias-free QKV projection, GELU MLP, final LayerNorm,
head tied to the token embedding), with the same presets, and measures the same rows:

  sample_cache / sample_nocache  generated tokens/s at batch 1, 8, 32 (left-padded prompts,
                                 per-row positions, one [B, V] logits read per step)
  sft_step / surrogate_step      one AdamW(β=(0.9, 0.98), wd 0.1) update with global-norm
                                 clipping 1.0 on a 16 × 128 batch (first quarter context)

It prints the same table as `mgrpo_models::bench::format_table`, so ratios can be computed by
joining on (preset, measure, batch). Run it on the same machine with the same thread count:

  python3 bench/torch_reference.py --threads 2 --presets tiny,small

That it is the same model is checked, not assumed: `--parity DIR` loads a case that
`mgrpo bench models --parity` wrote (a preset's weights, a batch, the update settings) and
prints, as one JSON line, the log-probs, the SFT and surrogate losses and the SFT loss after one
update of each, computed here; mgrpo compares them with its own (1e-4).
"""
import argparse
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

PRESETS = {
    # name: (d_model, n_layers, n_heads, d_ff)
    "tiny": (64, 2, 4, 256),
    "small": (160, 4, 4, 640),
    "base": (512, 8, 8, 2048),
}
NEG_BIAS = -1.0e9


class Block(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.mlp_norm = nn.LayerNorm(d)
        self.mlp_in = nn.Linear(d, d_ff, bias=False)
        self.mlp_out = nn.Linear(d_ff, d, bias=False)

    def forward(self, x, bias=None, cache=None):
        b, t, d = x.shape
        h = self.heads
        qkv = self.qkv(self.attn_norm(x)).view(b, t, 3 * h, d // h).transpose(1, 2)
        q, k, v = qkv[:, :h], qkv[:, h : 2 * h], qkv[:, 2 * h :]
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        if bias is None:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.attn_out(ctx.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_out(F.gelu(self.mlp_in(self.mlp_norm(x))))


class PolicyModel(nn.Module):
    def __init__(self, vocab, d, layers, heads, d_ff, max_seq_len):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_seq_len, d)
        self.blocks = nn.ModuleList(Block(d, heads, d_ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def logits(self, hidden):
        return self.norm(hidden) @ self.tok.weight.t()

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.tok(tokens) + self.pos.weight[:t].unsqueeze(0)
        for block in self.blocks:
            x = block(x)
        return self.logits(x)

    def forward_positions(self, tokens, positions, bias, caches=None):
        x = self.tok(tokens) + self.pos(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, bias, None if caches is None else caches[i])
        return x


def padded_inputs(prompts, generated, width_prompt):
    rows, pos, bias = [], [], []
    for p, g in zip(prompts, generated):
        pad = width_prompt - len(p)
        seq = [0] * pad + p + g
        w = len(seq)
        rows.append(seq)
        pos.append([max(t - pad, 0) for t in range(w)])
        q = torch.arange(w).unsqueeze(1)
        k = torch.arange(w).unsqueeze(0)
        ok = (k <= q) & (k >= pad)
        bias.append(torch.where(ok, 0.0, NEG_BIAS))
    return torch.tensor(rows), torch.tensor(pos), torch.stack(bias).unsqueeze(1)


@torch.no_grad()
def sample(model, prompts, new_tokens, use_cache, gen):
    width = max(len(p) for p in prompts)
    generated = [[] for _ in prompts]
    lens = [len(p) for p in prompts]
    if use_cache:
        caches = [dict() for _ in model.blocks]
        tokens, pos, bias = padded_inputs(prompts, generated, width)
        hidden = model.forward_positions(tokens, pos, bias, caches)
        cache_len = width
    for step in range(new_tokens):
        if not use_cache:
            tokens, pos, bias = padded_inputs(prompts, generated, width)
            hidden = model.forward_positions(tokens, pos, bias)
        logits = model.logits(hidden[:, -1]).float().cpu()  # one [B, V] read per step
        logp = torch.log_softmax(logits, dim=-1)
        nxt = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)
        for r, t in enumerate(nxt.tolist()):
            generated[r].append(t)
        if use_cache and step + 1 < new_tokens:
            pads = [width - l for l in lens]
            bias = torch.tensor(
                [[0.0 if k >= pad else NEG_BIAS for k in range(cache_len + 1)] for pad in pads]
            ).view(len(prompts), 1, 1, cache_len + 1)
            pos = torch.tensor([[l + step] for l in lens])
            hidden = model.forward_positions(nxt.unsqueeze(1), pos, bias, caches)
            cache_len += 1
    return generated


def token_logprobs(model, tokens):
    return token_logprobs_at(model, tokens, 1.0)


def token_logprobs_at(model, tokens, temperature):
    logits = model(tokens[:, :-1])
    if temperature != 1.0:
        logits = logits / temperature
    lp = torch.log_softmax(logits, dim=-1).gather(2, tokens[:, 1:].unsqueeze(2)).squeeze(2)
    return torch.cat([torch.zeros(tokens.shape[0], 1), lp], dim=1)


def train_step(model, opt, batch, surrogate):
    tokens, mask, adv, old, weights = batch
    opt.zero_grad(set_to_none=True)
    lp = token_logprobs(model, tokens)
    if surrogate:
        ratio = ((lp - old) * mask).clamp(-20, 20).exp()
        obj = torch.minimum(ratio * adv, ratio.clamp(0.8, 1.28) * adv)
        loss = -(obj * weights).sum()
    else:
        loss = -(lp * weights).sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def parity(case_dir):
    """The numbers of an mgrpo reference case (see `models/src/reference_case.rs`), in torch."""
    import json

    from safetensors.torch import load_file

    torch.set_num_threads(1)
    case = json.load(open(os.path.join(case_dir, "case.json")))
    d, layers, heads, d_ff = PRESETS[case["preset"]]
    names = {"token_embedding.weight": "tok.weight", "position_embedding.weight": "pos.weight"}
    stored = load_file(os.path.join(case_dir, "weights.safetensors"))
    state = {}
    for k, v in stored.items():
        k = names.get(k, k)
        if k.startswith("final_norm."):
            k = "norm." + k[len("final_norm."):]
        state[k] = v.float()
    batch, learner, sur = case["batch"], case["learner"], case["surrogate"]
    rows, seq = batch["rows"], batch["seq_len"]
    shape = lambda values: torch.tensor(values, dtype=torch.float32).view(rows, seq)
    tokens = torch.tensor(batch["tokens"], dtype=torch.long).view(rows, seq)
    mask, adv, old = shape(batch["loss_mask"]), shape(batch["advantages"]), shape(batch["old_logprobs"])
    sft_w, sur_w = shape(case["sft_weights"]), shape(case["surrogate_weights"])
    # The surrogate's π at its temperature, as the learner computes it.
    sur_lp = lambda model: token_logprobs_at(model, tokens, sur["temperature"])

    def fresh():
        model = PolicyModel(case["vocab_size"], d, layers, heads, d_ff, case["max_seq_len"])
        model.load_state_dict(state, strict=True)
        opt = torch.optim.AdamW(model.parameters(), lr=learner["lr"], betas=(learner["beta1"], learner["beta2"]),
                                eps=learner["epsilon"], weight_decay=learner["weight_decay"])
        return model, opt

    def sft_loss(model):
        return -(token_logprobs(model, tokens) * sft_w).sum()

    def surrogate_loss(model):
        ratio = ((sur_lp(model) - old) * mask).clamp(-20, 20).exp()
        clipped = ratio.clamp(1 - sur["eps_low"], 1 + sur["eps_high"]) * adv
        return -(torch.minimum(ratio * adv, clipped) * sur_w).sum()

    def step(model, opt, loss_fn):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model)
        loss.backward()
        if learner["grad_clip_norm"] is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), learner["grad_clip_norm"])
        opt.step()
        return loss.item()

    out = {}
    model, opt = fresh()
    with torch.no_grad():
        lp = token_logprobs(model, tokens)
    out["logprobs"] = lp[mask > 0].tolist()
    out["sft_loss"] = step(model, opt, sft_loss)
    with torch.no_grad():
        out["sft_loss_after_sft_step"] = sft_loss(model).item()
    model, opt = fresh()
    out["surrogate_loss"] = step(model, opt, surrogate_loss)
    with torch.no_grad():
        out["sft_loss_after_surrogate_step"] = sft_loss(model).item()
    print(json.dumps(out))


def median_ms(repeats, fn):
    fn()
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--train-rows", type=int, default=16)
    ap.add_argument("--train-seq-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-nocache", action="store_true", help="skip the no-cache sampling rows")
    ap.add_argument("--no-updates", action="store_true", help="skip the sft/surrogate rows")
    ap.add_argument("--parity", metavar="DIR", help="compute the numbers of an mgrpo reference case")
    args = ap.parse_args()
    if args.parity:
        parity(args.parity)
        return

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    device_name = f"torch:cpu/{args.threads}t"
    print(f"{'preset':<7} {'params':>9} {'device':<10} {'measure':<15} {'batch':>5} {'ms':>10} {'tok/s':>10}")

    def row(preset, params, measure, batch, ms, tokens=None):
        tps = "-" if tokens is None else f"{tokens / (ms / 1000.0):.0f}"
        print(f"{preset:<7} {params:>9} {device_name:<10} {measure:<15} {batch:>5} {ms:>10.2f} {tps:>10}", flush=True)

    for preset in args.presets.split(","):
        d, layers, heads, d_ff = PRESETS[preset]
        max_seq = max(args.prompt_len + args.new_tokens, args.train_seq_len)
        model = PolicyModel(args.vocab, d, layers, heads, d_ff, max_seq).eval()
        params = sum(p.numel() for p in model.parameters())
        for batch in [int(b) for b in args.batch_sizes.split(",") if b]:
            prompts = [torch.randint(0, args.vocab, (args.prompt_len,)).tolist() for _ in range(batch)]
            modes = [True] if args.no_nocache else [True, False]
            for use_cache in modes:
                ms = median_ms(args.repeats, lambda: sample(model, prompts, args.new_tokens, use_cache, gen))
                name = "sample_cache" if use_cache else "sample_nocache"
                row(preset, params, name, batch, ms, batch * args.new_tokens)

        if args.no_updates:
            continue
        rows, seq = args.train_rows, args.train_seq_len
        tokens = torch.randint(0, args.vocab, (rows, seq))
        mask = torch.zeros(rows, seq)
        mask[:, seq // 4 :] = 1.0
        adv = mask * (torch.rand(rows, 1) * 2 - 1)
        weights = mask / mask.sum()
        model.train()
        with torch.no_grad():
            old = token_logprobs(model, tokens) * mask
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.1)
        batch = (tokens, mask, adv, old, weights)
        row(preset, params, "sft_step", rows, median_ms(args.repeats, lambda: train_step(model, opt, batch, False)))
        row(preset, params, "surrogate_step", rows, median_ms(args.repeats, lambda: train_step(model, opt, batch, True)))


if __name__ == "__main__":
    main()
