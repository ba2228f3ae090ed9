#!/usr/bin/env python3
"""Training throughput of GPT-2 in PyTorch eager on the CPU, the anchor for `hedgehog bench-train`.

    python3 tools/bench_torch_train.py --preset gpt2_tiny --context 64 --batch 4 \\
        --attention softmax --steps 20 --warmup 3 --threads 2

The same model and optimiser as the Rust run: GPT-2 (pre-LayerNorm, learned positions, GELU
tanh, tied head, N(0, 0.02) init, dropout 0.1 on embeddings, attention weights and residual
branches), AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.01, lr 3e-3) with every parameter's
gradient clipped to L2 norm 1.0 on its own (burn's `GradientClipping::Norm` is per parameter),
mean cross-entropy over every position. `--attention hedgehog` swaps in Hedgehog linear
attention (softmax_split, d' = --feature-dim, separate per-head query and key maps,
identity-initialised, chunked causal form with chunk 64). Token ids are uniform over the
vocabulary: the ids do not change the work.

Prints one JSON line: tokens_per_second, step_ms, peak_rss_mib (resident-set high-water mark
over the timed steps), model_parameters.
"""

import argparse
import json
import math
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="gpt2_tiny", choices=["gpt2_tiny", "gpt2"])
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--attention", default="softmax", choices=["softmax", "hedgehog"])
    p.add_argument("--feature-dim", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


ARGS = parse_args()
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_attention as ta  # noqa: E402

PRESETS = {  # (layers, width, heads, positions), as Gpt2Config::gpt2_tiny / gpt2
    "gpt2_tiny": (2, 128, 4, 256),
    "gpt2": (12, 768, 12, 1024),
}
VOCAB = 50257
DROPOUT = 0.1


class Attention(nn.Module):
    def __init__(self, width, heads, hedgehog, feature_dim):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.hedgehog = hedgehog
        if hedgehog:
            eye = torch.eye(self.head_dim, feature_dim).expand(heads, -1, -1).contiguous()
            self.wq = nn.Parameter(eye.clone())
            self.wk = nn.Parameter(eye.clone())
            self.bq = nn.Parameter(torch.zeros(heads, feature_dim))
            self.bk = nn.Parameter(torch.zeros(heads, feature_dim))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        if self.hedgehog:
            fq = ta.feature_map("hedgehog_split", q, self.wq, self.bq)
            fk = ta.feature_map("hedgehog_split", k, self.wk, self.bk)
            y = ta.linear_causal_chunked(fq, fk, v)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            mask = torch.ones(t, t, dtype=torch.bool).triu(1)
            weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
            y = F.dropout(weights, DROPOUT, self.training) @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width, heads, hedgehog, feature_dim):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, hedgehog, feature_dim)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x):
        x = x + F.dropout(self.attn(self.ln_1(x)), DROPOUT, self.training)
        mlp = self.out(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))
        return x + F.dropout(mlp, DROPOUT, self.training)


class Gpt2(nn.Module):
    def __init__(self, layers, width, heads, positions, hedgehog, feature_dim):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, width), nn.Embedding(positions, width)
        self.blocks = nn.ModuleList(Block(width, heads, hedgehog, feature_dim) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width)
        for name, p in self.named_parameters():
            if name.endswith(("attn.wq", "attn.wk", "attn.bq", "attn.bk")) or "ln_" in name:
                continue  # identity feature maps; LayerNorm starts at ones and zeros
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif name == "wpe.weight":
                nn.init.normal_(p, 0.0, 0.01)
            elif name.endswith("out.weight"):  # the MLP's residual projection
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))
            else:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tokens, targets):
        t = tokens.shape[1]
        x = F.dropout(self.wte(tokens) + self.wpe(torch.arange(t)), DROPOUT, self.training)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def status_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return None


def main():
    torch.manual_seed(ARGS.seed)
    torch.set_num_threads(ARGS.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    layers, width, heads, positions = PRESETS[ARGS.preset]
    model = Gpt2(layers, width, heads, positions, ARGS.attention == "hedgehog", ARGS.feature_dim)
    model.train()
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=ARGS.lr, betas=(0.9, 0.95), eps=1e-8,
                                  weight_decay=0.01)
    g = torch.Generator().manual_seed(ARGS.seed)
    step_ms = []
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    timed_start = time.perf_counter()
    for step in range(ARGS.warmup + ARGS.steps):
        if step == ARGS.warmup:
            timed_start = time.perf_counter()
        started = time.perf_counter()
        data = torch.randint(0, VOCAB, (ARGS.batch, ARGS.context + 1), generator=g)
        loss = model(data[:, :-1], data[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p in params:
            torch.nn.utils.clip_grad_norm_([p], 1.0)
        optimizer.step()
        if step >= ARGS.warmup:
            step_ms.append((time.perf_counter() - started) * 1e3)
    elapsed = time.perf_counter() - timed_start
    print(json.dumps({
        "model_parameters": sum(p.numel() for p in params),
        "batch_size": ARGS.batch,
        "tokens_per_step": ARGS.batch * ARGS.context,
        "step_ms": step_ms,
        "tokens_per_second": ARGS.steps * ARGS.batch * ARGS.context / elapsed,
        "peak_rss_mib": status_mib("VmHWM") if peak_reset else None,
        "attention": ARGS.attention,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
