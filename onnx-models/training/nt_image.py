"""Image encoders: one small 3D CNN per MRI sequence mapping a canonical volume [1, D, H, W] (written by the
TypeScript volumes CLI, the worker's own preprocessing) to the frozen report vector of its study, by mean squared
error. Exported to ONNX with input "volume" [batch, 1, D, H, W] and output "embedding" [batch, dim]."""
import copy
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


def _embed(features, head, volume):
    """The encoders' forward pass: convolutions, then mean and max pooling (a small lesion moves the max long before it
    moves the mean), then the head."""
    x = features(volume)
    x = torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], dim=1)
    return head(x)


class ImageEncoder(nn.Module):
    def __init__(self, dim, width=8, fine=False):
        super().__init__()
        w = width
        strides = (2, 1, 2, 2, 2) if fine else (2, 2, 2, 2, 1)
        # Downsample early: on 2 shared CPU cores a stride-1 layer at full or half resolution costs several times
        # the rest of the network (measured per training sample: 0.35 s with a full-resolution first layer, 0.11 s
        # with it at half resolution, 0.03 s with every early layer strided), and the budget buys epochs instead.
        self.features = nn.Sequential(_block(1, w, strides[0]), _block(w, 2 * w, strides[1]), _block(2 * w, 4 * w, strides[2]),
                                      _block(4 * w, 8 * w, strides[3]), _block(8 * w, 16 * w, strides[4]))
        # The head reads mean and max pooling (_embed): twice the last block's channels.
        self.head = nn.Sequential(nn.Linear(32 * w, 256), nn.ReLU(inplace=True), nn.Linear(256, dim))

    def forward(self, volume):
        return _embed(self.features, self.head, volume)


class FoldedImageEncoder(nn.Module):
    """An ImageEncoder as its ONNX export holds it: the export folds each BatchNorm into its convolution (weights and
    a bias), so a shipped encoder comes back as convolutions with biases, the same pooling and the same head, and
    computes the same function. from_onnx() builds one so that a bundle's encoder can be trained further."""

    def __init__(self, convs, head):
        super().__init__()
        layers = []
        for weight, bias, stride in convs:
            conv = nn.Conv3d(weight.shape[1], weight.shape[0], 3, stride=stride, padding=1, bias=True)
            conv.weight.data.copy_(torch.from_numpy(weight))
            conv.bias.data.copy_(torch.from_numpy(bias))
            layers += [conv, nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        linears = []
        for k in ("head.0", "head.2"):
            w, b = head[k + ".weight"], head[k + ".bias"]
            lin = nn.Linear(w.shape[1], w.shape[0])
            lin.weight.data.copy_(torch.from_numpy(w))
            lin.bias.data.copy_(torch.from_numpy(b))
            linears.append(lin)
        self.head = nn.Sequential(linears[0], nn.ReLU(inplace=True), linears[1])

    def forward(self, volume):
        return _embed(self.features, self.head, volume)


def from_onnx(path):
    """The exported encoder at `path` (export() of an ImageEncoder) as a trainable FoldedImageEncoder."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    init = {i.name: numpy_helper.to_array(i).copy() for i in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            strides = next(list(a.ints) for a in node.attribute if a.name == "strides")
            convs.append((init[node.input[1]], init[node.input[2]], strides[0]))
    if len(convs) != 5 or not all(k in init for k in ("head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias")):
        raise SystemExit(f"{path}: not an image encoder exported by nt_image.export (5 convolutions and a 2-layer head)")
    model = FoldedImageEncoder(convs, init)
    model.eval()
    return model


def augment(x, gen):
    """Random shifts (up to 3 voxels per axis, wrapping through the zero-padded border) and intensity jitter.
    The random numbers come from a CPU generator whatever the device, so a seed means the same on CPU and GPU."""
    shifts = [int(v) for v in torch.randint(-3, 4, (3,), generator=gen)]
    x = torch.roll(x, shifts=shifts, dims=(2, 3, 4))
    scale = 1 + 0.1 * (2 * torch.rand((x.shape[0], 1, 1, 1, 1), generator=gen) - 1)
    offset = 0.1 * (2 * torch.rand((x.shape[0], 1, 1, 1, 1), generator=gen) - 1)
    return x * scale.to(x.device) + offset.to(x.device)


def _u(gen, n, lo, hi):
    return lo + (hi - lo) * torch.rand(n, generator=gen)


_BASIS = {}


def _bias_basis(d, h, w, dev):
    """Second-order polynomial basis [9, D, H, W] in normalised coordinates (made once per shape and device)."""
    key = (d, h, w, str(dev))
    if key not in _BASIS:
        zz, yy, xx = torch.meshgrid(torch.linspace(-1, 1, d, device=dev), torch.linspace(-1, 1, h, device=dev), torch.linspace(-1, 1, w, device=dev), indexing="ij")
        _BASIS[key] = torch.stack([xx, yy, zz, xx * yy, yy * zz, xx * zz, xx * xx, yy * yy, zz * zz])
    return _BASIS[key]


def domain_randomise(x, gen, clip=5.0):
    """Scanner-style randomisation of a batch of canonical volumes [B, 1, D, H, W] (foreground z-scores, clipped):
    each volume goes back to a non-negative pseudo-signal (minus its background level), then gets, each with some
    probability, a small rotation / scale / shift, a smooth multiplicative bias field, a random contrast curve
    (gamma), Rician-like noise, through-plane blur (slice thickness) and in-plane resolution loss, and is z-scored
    over its foreground again the way the service's preprocessing does. Training on this makes the CNNs care about
    anatomy and lesions, not one scanner's contrast (issue: robust to scanners the model never saw)."""
    b = x.shape[0]
    dev = x.device
    sig = x - x.amin(dim=(2, 3, 4), keepdim=True)  # background -> 0
    # geometry: shifts of up to 3 voxels always (cheap); in a quarter of batches also a rotation of up to 8 degrees
    # about each axis and a scale of 0.92-1.08 (grid resampling costs about a CNN step on CPU)
    shifts = [int(v) for v in torch.randint(-3, 4, (3,), generator=gen)]
    sig = torch.roll(sig, shifts=shifts, dims=(2, 3, 4))
    if bool(torch.rand(1, generator=gen) < 0.25):
        ang = (_u(gen, (b, 3), -8, 8) * math.pi / 180).to(dev)
        scale = _u(gen, (b, 1), 0.92, 1.08).to(dev)
        cx, sx = torch.cos(ang[:, 0]), torch.sin(ang[:, 0])
        cy, sy = torch.cos(ang[:, 1]), torch.sin(ang[:, 1])
        cz, sz = torch.cos(ang[:, 2]), torch.sin(ang[:, 2])
        one, zero = torch.ones_like(cx), torch.zeros_like(cx)
        rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(b, 3, 3)
        ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(b, 3, 3)
        rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(b, 3, 3)
        theta = torch.cat([(rz @ ry @ rx) * scale.view(b, 1, 1), torch.zeros(b, 3, 1, device=dev)], 2)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        sig = F.grid_sample(sig, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    d, h, w = x.shape[2:]
    # smooth bias field: a random low-order polynomial in normalised coordinates, exp of it (0.7-1.4x typical)
    basis = _bias_basis(d, h, w, dev)
    coef = (_u(gen, (b, 9), -0.25, 0.25) * (torch.rand(b, 1, generator=gen) < 0.8)).to(dev)
    sig = sig * torch.exp(torch.einsum("bk,kdhw->bdhw", coef, basis)).unsqueeze(1)
    # contrast curve: gamma 0.6-1.6 on the signal scaled to its 99th percentile
    flat = sig.reshape(b, -1)[:, ::13]
    top = flat.kthvalue(max(1, int(0.99 * flat.shape[1])), dim=1).values.clamp(min=1e-3).view(b, 1, 1, 1, 1)
    gamma = torch.where(torch.rand(b, generator=gen) < 0.7, _u(gen, b, 0.6, 1.6), torch.ones(b)).to(dev).view(b, 1, 1, 1, 1)
    sig = top * (sig / top).clamp(min=0) ** gamma
    # through-plane blur (thicker slices) and in-plane resolution loss
    if bool(torch.rand(1, generator=gen) < 0.5):
        k = float(_u(gen, 1, 0.2, 0.45))
        kernel = torch.tensor([k, 1 - 2 * k, k], dtype=x.dtype, device=dev).view(1, 1, 3, 1, 1)
        sig = F.conv3d(F.pad(sig, (0, 0, 0, 0, 1, 1), mode="replicate"), kernel)
    if bool(torch.rand(1, generator=gen) < 0.3):
        f = float(_u(gen, 1, 1.2, 2.0))
        small = F.interpolate(sig, size=(d, max(8, int(h / f)), max(8, int(w / f))), mode="trilinear", align_corners=False)
        sig = F.interpolate(small, size=(d, h, w), mode="trilinear", align_corners=False)
    # noise: Gaussian on both channels of the magnitude, sigma 0-6 % of the foreground mean
    fg = sig > 0.1 * top
    mean_fg = (sig * fg).sum(dim=(2, 3, 4), keepdim=True) / fg.sum(dim=(2, 3, 4), keepdim=True).clamp(min=1)
    sigma = (_u(gen, b, 0.0, 0.06).to(dev).view(b, 1, 1, 1, 1)) * mean_fg
    n1 = torch.randn(sig.shape, generator=gen).to(dev) * sigma
    n2 = torch.randn(sig.shape, generator=gen).to(dev) * sigma
    sig = torch.sqrt((sig + n1) ** 2 + n2 ** 2)
    # back to foreground z-scores, as shared/imaging does (foreground: above a fraction of the robust top)
    fg = sig > 0.15 * top
    cnt = fg.sum(dim=(2, 3, 4), keepdim=True).clamp(min=10)
    m = (sig * fg).sum(dim=(2, 3, 4), keepdim=True) / cnt
    v = (((sig - m) ** 2) * fg).sum(dim=(2, 3, 4), keepdim=True) / cnt
    return ((sig - m) / v.sqrt().clamp(min=1e-6)).clamp(-clip, clip)


def _batches(volumes, idx, device):
    """A batch [B, 1, D, H, W] on the device from numpy volumes (host) or a tensor already on the device."""
    if torch.is_tensor(volumes):
        return volumes[torch.as_tensor(idx, device=volumes.device)].unsqueeze(1)
    return torch.from_numpy(np.ascontiguousarray(volumes[idx], dtype=np.float32)).unsqueeze(1).to(device)


def train(volumes, targets, epochs, seed, log, name, batch_size=8, lr=2e-3, val=None, width=8, aug=False, fine=False,
          device="cpu", budget_s=None, domain_share=1.0, init=None):
    """aug: False, True (shifts and intensity jitter) or "domain" (domain_randomise: scanner-style randomisation, on
    `domain_share` of the batches and the basic augmentation on the others: on CPU one domain-randomised batch costs
    ~10 CNN steps of this size, so a CPU run buys epochs with a share below 1)."""
    """volumes: float32 [N, D, H, W] (memory-mapped is fine); targets: float32 [N, dim].
    device: "cpu" or "cuda" (the whole training set is moved to the GPU once). budget_s: cap the epochs so the
    run fits this many seconds, from the time of a few timed steps (the one-cycle schedule needs its length up
    front, so the cap is decided before the first epoch). init: a model to continue training (from_onnx) instead of a
    new ImageEncoder; it is copied, never changed."""
    def fresh():
        return (copy.deepcopy(init) if init is not None else ImageEncoder(targets.shape[1], width, fine)).to(device)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = fresh()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    per_epoch = max(1, int(np.ceil(len(volumes) / batch_size)))
    if device != "cpu":
        volumes = torch.from_numpy(np.ascontiguousarray(volumes, dtype=np.float32)).to(device)
    y_all = torch.from_numpy(np.asarray(targets, dtype=np.float32)).to(device)
    def augmentation(x):
        if aug == "domain" and (domain_share >= 1 or float(torch.rand(1, generator=gen)) < domain_share):
            return domain_randomise(x, gen)
        return augment(x, gen) if aug else x

    if budget_s:
        step = _step_seconds(model, volumes, y_all, batch_size, device, steps=max(6, int(round(3 / max(domain_share, 0.05)))), augmentation=augmentation)
        epochs = min(epochs, max(1, int(budget_s / (per_epoch * step))))
        model = fresh()  # the timed steps changed the weights
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        log(f"{name}: {epochs} epochs fit the budget of {budget_s:.0f}s")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * per_epoch, pct_start=0.15)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(volumes))
        total = 0.0
        for s in range(0, len(order), batch_size):
            idx = np.sort(order[s : s + batch_size])
            x = augmentation(_batches(volumes, idx, device))
            y = y_all[torch.as_tensor(idx, device=y_all.device)]
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        msg = f"{name} epoch {epoch + 1}/{epochs} train mse {total / len(order):.5f}"
        if val is not None:
            msg += f" val mse {evaluate(model, *val):.5f}"
        log(msg + f" ({time.time() - t0:.0f}s)")
    model.eval()
    model.epochs_trained = epochs
    return model.cpu()


def _step_seconds(model, volumes, y_all, batch_size, device, steps=6, augmentation=None):
    """Seconds per training step, augmentation included, timed after two warm-up steps (cuDNN picks its algorithms
    on the first)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    idx = np.arange(min(batch_size, len(volumes)))
    t = None
    for i in range(steps + 2):
        if i == 2:
            if device != "cpu":
                torch.cuda.synchronize()
            t = time.time()
        x = _batches(volumes, idx, device)
        loss = F.mse_loss(model(augmentation(x) if augmentation else x), y_all[torch.as_tensor(idx, device=y_all.device)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device != "cpu":
        torch.cuda.synchronize()
    return (time.time() - t) / steps


@torch.no_grad()
def predict(model, volumes, batch_size=16):
    model.eval()
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(volumes), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(volumes[s : s + batch_size], dtype=np.float32)).unsqueeze(1).to(device)
        out.append(model(x).cpu())
    return torch.cat(out).numpy()


def evaluate(model, volumes, targets):
    return float(np.mean((predict(model, volumes) - targets) ** 2))


def save_weights(model, path, meta):
    """Weights as plain numpy (.npz) plus a JSON of how to rebuild the model: readable by any torch version, so a
    GPU host's newer torch can train and this machine's torch 1.13 exports (--load-image-weights)."""
    np.savez(path + ".npz", **{k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    with open(path + ".json", "w") as f:
        json.dump(meta, f, indent=2)


def load_weights(path):
    """(model, meta) from save_weights' files."""
    with open(path + ".json") as f:
        meta = json.load(f)
    model = ImageEncoder(meta["dim"], meta["width"], meta["fine"])
    with np.load(path + ".npz") as z:
        model.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    model.eval()
    return model, meta


def export(model, path, shape, opset=17):
    x = torch.zeros((1, 1) + tuple(shape))
    torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["volume"], output_names=["embedding"],
                      dynamic_axes={"volume": {0: "batch"}, "embedding": {0: "batch"}}, do_constant_folding=True)
