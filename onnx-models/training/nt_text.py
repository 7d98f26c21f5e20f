"""Text encoder (a small NeuroBERT-style transformer), trained self-supervised on a large generated report corpus:

  - masked language modelling (15 % of WordPiece tokens);
  - Findings <-> Impression matching (the seed method): InfoNCE over a batch, both directions, on mean-pooled,
    L2-normalised vectors of the two sections of the same report;
  - sentence <-> section matching: one sentence of a report's Findings (a finding, a negation, a normal statement)
    against its Impression's vector, and one Impression line (often short: "Acute left MCA stroke.") against its
    Findings' vector, InfoNCE both directions. The two sections say the same in other words, so this is what makes a
    short statement typed by a radiologist land near the reports that mean it, and a negation near normal reports;
  - off-topic English (the lexicon's off-topic sentences) as extra negatives: it must stay away from every report
    and report sentence, so the service can tell a radiology sentence from anything else.

No labels anywhere: every pair comes from one report's own text. Training stops when the validation matching loss
has not improved for `patience` evaluations (or at `steps`), and the loss curve is kept for the model card.

Exported to ONNX with input_ids + attention_mask in and last_hidden_state out, so the service pools and normalises
exactly as it would for a real NeuroBERT exported with standard tools."""
import json
import math
import os
import re
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nt_tokenizer import CLS, MASK, PAD, SEP, Tokenizer  # noqa: F401 (Tokenizer re-exported for callers)

HERE = os.path.dirname(os.path.abspath(__file__))
LEXICON = os.path.join(HERE, "..", "..", "tools", "synth", "neuroradiology-lexicon.json")


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


def _headings():
    """The FINDINGS and IMPRESSION headings the report writer uses (tools/synth/neuroradiology-lexicon.json sections)."""
    with open(LEXICON, encoding="utf-8") as f:
        sections = json.load(f)["sections"]
    names = lambda k: "|".join(re.escape(h) for h in sections[k]["train"] + sections[k]["heldout"])  # noqa: E731
    return re.compile(rf"^(?:{names('findings')}):[ \t]*$(?P<f>.*?)^(?:{names('impression')}):[ \t]*$(?P<i>.*)", re.S | re.M)


_SECTION = _headings()


def split_report(text):
    """(findings, impression) of a report; both the whole text when it has no such sections."""
    m = _SECTION.search(text)
    if not m:
        return text.strip(), text.strip()
    return m.group("f").strip(), m.group("i").strip()


def report_body(text):
    """Findings + Impression: what the image encoders regress onto (indication, technique and comparison say
    nothing a scan shows)."""
    findings, impression = split_report(text)
    return findings + "\n" + impression


_SENTENCE = re.compile(r"(?<=[.;])\s+|\n+")


def sentences(body):
    out = []
    for s in _SENTENCE.split(body):
        s = re.sub(r"^\s*(\d+[.)]|-)\s*", "", s).strip()
        if re.search(r"[A-Za-z]{2,}", s):
            out.append(s)
    return out


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


def _pool_two(h1, m1, h2, m2):
    """The mean-pooled vector of two token sequences as if they were one (Findings + Impression = the body)."""
    s = (h1 * m1.unsqueeze(-1)).sum(1) + (h2 * m2.unsqueeze(-1)).sum(1)
    n = m1.sum(1, keepdim=True) + m2.sum(1, keepdim=True)
    return F.normalize(s / n.clamp(min=1e-9), dim=-1)


def info_nce(a, b, temperature, extra_negatives=None):
    """Symmetric InfoNCE: row i of a matches row i of b; extra_negatives are further candidates for a's rows."""
    logits = a @ b.t() / temperature
    target = torch.arange(len(a))
    cand = logits if extra_negatives is None else torch.cat([logits, a @ extra_negatives.t() / temperature], 1)
    loss = 0.5 * (F.cross_entropy(cand, target) + F.cross_entropy(logits.t(), target))
    return loss, (logits.argmax(1) == target).float().mean().item()


class Corpus:
    """Reports (split once into findings, impression and body sentences) and off-topic texts."""

    def __init__(self, reports, off_topic):
        self.items = []
        for t in reports:
            f, i = split_report(t)
            fs, is_ = sentences(f), sentences(i)
            if fs and is_:
                self.items.append((f, i, fs, is_))
        self.off_topic = list(off_topic)

    def sample(self, rng, n, window=None):
        """n reports: (findings, impression, one Findings sentence, one Impression sentence). With `window`, the
        findings are a random run of at most that many consecutive sentences (cheaper steps; the matching still has to
        work from part of a report)."""
        idx = rng.choice(len(self.items), size=min(n, len(self.items)), replace=False)
        f = [self._window(self.items[k][0], rng, window) for k in idx]
        i = [self.items[k][1] for k in idx]
        fs = [self.items[k][2][rng.integers(len(self.items[k][2]))] for k in idx]
        is_ = [self.items[k][3][rng.integers(len(self.items[k][3]))] for k in idx]
        return f, i, fs, is_

    @staticmethod
    def _window(findings, rng, window):
        if not window:
            return findings
        parts = sentences(findings)
        if len(parts) <= window:
            return findings
        start = int(rng.integers(len(parts) - window + 1))
        return " ".join(parts[start : start + window])

    def sample_off_topic(self, rng, n):
        if not self.off_topic:
            return []
        return [self.off_topic[k] for k in rng.choice(len(self.off_topic), size=min(n, len(self.off_topic)), replace=False)]


def losses(model, tok, corpus, rng, gen, batch_size, max_len, temperature, window=None):
    f, i, fs, is_ = corpus.sample(rng, batch_size, window)
    off = corpus.sample_off_topic(rng, max(2, batch_size // 4))
    f_ids, f_mask = batch(tok, f, max_len)
    i_ids, i_mask = batch(tok, i, max_len)
    s_ids, s_mask = batch(tok, fs + is_, 64)
    # One masked pass per section serves MLM and the matching tasks (the masking doubles as augmentation).
    fm_ids, f_labels = mask_tokens(f_ids, f_mask, tok.size, gen)
    im_ids, i_labels = mask_tokens(i_ids, i_mask, tok.size, gen)
    hf, hi = model(fm_ids, f_mask), model(im_ids, i_mask)
    # MLM logits only where a token was masked (15 %): the vocabulary projection is the costliest matrix product.
    hidden = torch.cat([hf.reshape(-1, hf.shape[-1]), hi.reshape(-1, hi.shape[-1])])
    labels = torch.cat([f_labels.reshape(-1), i_labels.reshape(-1)])
    chosen = labels != -100
    mlm = F.cross_entropy(model.mlm_logits(hidden[chosen]), labels[chosen]) if bool(chosen.any()) else hidden.sum() * 0
    vf, vi = mean_pool(hf, f_mask), mean_pool(hi, i_mask)
    vs = mean_pool(model(s_ids, s_mask), s_mask)
    n = len(f)
    parts = {"mlm": mlm}
    parts["findings_impression"], acc_fi = info_nce(vf, vi, temperature)
    extra = None
    if off:
        o_ids, o_mask = batch(tok, off, 64)
        extra = mean_pool(model(o_ids, o_mask), o_mask)
        # Off-topic text must stay away from every report: a hinge on its cosine to the sections and sentences.
        parts["off_topic"] = F.relu(torch.cat([extra @ vf.t(), extra @ vi.t(), extra @ vs.t()], 1) - 0.1).mean()
    # A sentence of one section against the OTHER section of the same report: no words in common to lean on, so
    # "No acute infarct." must learn to mean what "Normal MRI brain." means, and "Acute left MCA stroke." what the
    # Findings' "restricted diffusion ... in keeping with an acute infarct" means.
    sf, acc_sf = info_nce(vs[:n], vi, temperature, extra)
    si, acc_si = info_nce(vs[n:], vf, temperature, extra)
    parts["sentence_report"] = 0.5 * (sf + si)
    total = parts["mlm"] + parts["findings_impression"] + parts["sentence_report"] + parts.get("off_topic", 0.0)
    return total, {k: float(v) for k, v in parts.items()}, {"findings_impression_top1": acc_fi, "sentence_report_top1": 0.5 * (acc_sf + acc_si)}


def train(corpus, tok, steps, seed, log, max_len=128, batch_size=32, dim=256, layers=4, heads=4, ffn=1024, lr=5e-4,
          temperature=0.05, validation=None, eval_every=100, patience=5, curve=None, window=6):
    """Trains until the validation matching loss stops improving for `patience` evaluations (at most `steps`);
    returns the best model. `curve` (a list) receives one dict per evaluation: step, train and validation losses."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TextEncoder(tok.size, dim, layers, heads, ffn, 256)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, min(500, steps // 10))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    best, best_state, bad, t0 = math.inf, None, 0, time.time()
    running = {}
    for step in range(steps):
        model.train()
        loss, parts, acc = losses(model, tok, corpus, rng, gen, batch_size, max_len, temperature, window)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        for k, v in parts.items():
            running[k] = running.get(k, v) * 0.9 + v * 0.1
        if (step + 1) % eval_every == 0 or step == steps - 1:
            row = {"step": step + 1, "seconds": round(time.time() - t0), "train": {k: round(v, 4) for k, v in running.items()}}
            if validation is not None:
                model.eval()
                vrng = np.random.default_rng(12345)
                vgen = torch.Generator().manual_seed(12345)
                with torch.no_grad():
                    vals = [losses(model, tok, validation, vrng, vgen, batch_size, max_len, temperature, window) for _ in range(2)]
                vparts = {k: float(np.mean([v[1][k] for v in vals])) for k in vals[0][1]}
                vacc = {k: float(np.mean([v[2][k] for v in vals])) for k in vals[0][2]}
                row["validation"] = {**{k: round(v, 4) for k, v in vparts.items()}, **{k: round(v, 3) for k, v in vacc.items()}}
                score = vparts["findings_impression"] + vparts["sentence_report"]
                if score < best - 1e-3:
                    best, bad = score, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad += 1
            if curve is not None:
                curve.append(row)
            log(f"text step {step + 1}/{steps} " + " ".join(f"{k} {v:.3f}" for k, v in running.items())
                + (f" | val {' '.join(f'{k} {v}' for k, v in row['validation'].items())}" if "validation" in row else "")
                + f" ({time.time() - t0:.0f}s)")
            if validation is not None and bad >= patience:
                log(f"text encoder converged: no validation improvement in {patience} evaluations; keeping step {curve[-1 - bad]['step'] if curve else '?'}")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model


@torch.no_grad()
def embed(model, tok, texts, max_len, batch_size=64):
    model.eval()
    out = []
    for s in range(0, len(texts), batch_size):
        ids, mask = batch(tok, texts[s : s + batch_size], max_len)
        out.append(mean_pool(model(ids, mask), mask))
    return torch.cat(out).numpy()


@torch.no_grad()
def embed_reports(model, tok, texts, max_len, batch_size=64):
    """Report vectors as training defined them: Findings and Impression encoded separately, mean-pooled together
    (the body vector the sentence <-> report task matched, and what the image encoders regress onto)."""
    model.eval()
    out = []
    for s in range(0, len(texts), batch_size):
        parts = [split_report(t) for t in texts[s : s + batch_size]]
        f_ids, f_mask = batch(tok, [p[0] for p in parts], max_len)
        i_ids, i_mask = batch(tok, [p[1] for p in parts], max_len)
        out.append(_pool_two(model(f_ids, f_mask), f_mask, model(i_ids, i_mask), i_mask))
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
