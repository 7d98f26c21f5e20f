"""Text encoder (a small NeuroBERT-style transformer): masked language modelling plus Findings<->Impression
matching (InfoNCE over a batch, both directions) on mean-pooled, L2-normalised vectors. Exported to ONNX with
input_ids + attention_mask in and last_hidden_state out, so the service pools and normalises exactly as it would
for a real NeuroBERT exported with standard tools."""
import json
import math
import re
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nt_tokenizer import CLS, MASK, PAD, SEP, Tokenizer


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, dim=256, layers=4, heads=4, ffn=512, max_len=256):
        super().__init__()
        self.cfg = dict(vocab_size=vocab_size, dim=dim, layers=layers, heads=heads, ffn=ffn, max_len=max_len)
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim)
        layer = nn.TransformerEncoderLayer(dim, heads, ffn, dropout=0.1, activation="gelu", batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.mlm_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))
        # BERT's initialisation: small embeddings keep the tied MLM logits sane at the start.
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def forward(self, input_ids, attention_mask):
        seq = input_ids.shape[1]
        pos = torch.arange(seq, device=input_ids.device).unsqueeze(0)
        x = self.norm(self.tok(input_ids) + self.pos(pos))
        pad = attention_mask == 0
        # Additive float mask (not a bool key-padding mask) so the ONNX graph has no fast-path branches.
        bias = pad.to(x.dtype).unsqueeze(1).unsqueeze(1) * -1e4
        bias = bias.expand(-1, self.cfg["heads"], seq, -1).reshape(-1, seq, seq)
        return self.encoder(x, mask=bias)

    def mlm_logits(self, hidden):
        return self.mlm_head(hidden) @ self.tok.weight.t() + self.mlm_bias


def mean_pool(hidden, mask):
    m = mask.unsqueeze(-1).to(hidden.dtype)
    v = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(v, dim=-1)


_SECTION = re.compile(r"FINDINGS\s*:(?P<f>.*?)IMPRESSION\s*:(?P<i>.*)", re.S | re.I)


def split_report(text):
    m = _SECTION.search(text)
    if not m:
        return text.strip(), text.strip()
    return m.group("f").strip(), m.group("i").strip()


def read_reports(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def batch(tok, texts, max_len):
    enc = [tok.encode(t, max_len) for t in texts]
    n = max(len(e) for e in enc)
    ids = torch.full((len(enc), n), PAD, dtype=torch.long)
    mask = torch.zeros((len(enc), n), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    return ids, mask


def mask_tokens(ids, mask, vocab_size, gen, p=0.15):
    labels = ids.clone()
    special = (ids == CLS) | (ids == SEP) | (mask == 0)
    chosen = (torch.rand(ids.shape, generator=gen) < p) & ~special
    labels[~chosen] = -100
    ids = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    ids[chosen & (r < 0.8)] = MASK
    rnd = chosen & (r >= 0.8) & (r < 0.9)
    ids[rnd] = torch.randint(5, vocab_size, ids.shape, generator=gen)[rnd]
    return ids, labels


def train(texts, tok, steps, seed, log, max_len=256, batch_size=32, dim=256, layers=2, heads=4, ffn=512, lr=5e-4, temperature=0.05):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = TextEncoder(tok.size, dim, layers, heads, ffn, max_len)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    pairs = [split_report(t) for t in texts]
    rng = np.random.default_rng(seed)
    model.train()
    t0 = time.time()
    for step in range(steps):
        idx = rng.choice(len(pairs), size=min(batch_size, len(pairs)), replace=False)
        fi, ii = [pairs[i][0] for i in idx], [pairs[i][1] for i in idx]
        f_ids, f_mask = batch(tok, fi, max_len)
        i_ids, i_mask = batch(tok, ii, max_len)
        # One masked pass per section serves both tasks (CPU budget): MLM on the masked tokens, and matching on the
        # pooled vectors of the masked sections, where the masking doubles as augmentation.
        fm_ids, f_labels = mask_tokens(f_ids, f_mask, tok.size, gen)
        im_ids, i_labels = mask_tokens(i_ids, i_mask, tok.size, gen)
        hf, hi = model(fm_ids, f_mask), model(im_ids, i_mask)
        logits_f, logits_i = model.mlm_logits(hf), model.mlm_logits(hi)
        mlm = F.cross_entropy(torch.cat([logits_f.reshape(-1, tok.size), logits_i.reshape(-1, tok.size)]),
                              torch.cat([f_labels.reshape(-1), i_labels.reshape(-1)]), ignore_index=-100)
        vf, vi = mean_pool(hf, f_mask), mean_pool(hi, i_mask)
        logits = vf @ vi.t() / temperature
        target = torch.arange(len(idx))
        match = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
        loss = mlm + match
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == steps - 1:
            acc = (logits.argmax(1) == target).float().mean().item()
            log(f"text step {step + 1}/{steps} mlm {mlm.item():.3f} match {match.item():.3f} f->i top1 {acc:.2f} ({time.time() - t0:.0f}s)")
    model.eval()
    return model


@torch.no_grad()
def embed(model, tok, texts, max_len, batch_size=64):
    out = []
    for s in range(0, len(texts), batch_size):
        ids, mask = batch(tok, texts[s : s + batch_size], max_len)
        out.append(mean_pool(model(ids, mask), mask))
    return torch.cat(out).numpy()


def export(model, path, opset=17):
    ids = torch.tensor([[CLS, 10, 11, 12, SEP, PAD]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    torch.onnx.export(
        model, (ids, mask), path, opset_version=opset,
        input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "last_hidden_state": {0: "batch", 1: "sequence"}},
        do_constant_folding=True,
    )
