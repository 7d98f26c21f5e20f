"""Image encoders: one small 3D CNN per MRI sequence mapping a canonical volume [1, D, H, W] (written by the
TypeScript volumes CLI, the worker's own preprocessing) to the frozen report vector of its study, by mean squared
error. Exported to ONNX with input "volume" [batch, 1, D, H, W] and output "embedding" [batch, dim]."""
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


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
        # Mean and max pooling: a small lesion moves the max long before it moves the mean.
        self.head = nn.Sequential(nn.Linear(32 * w, 256), nn.ReLU(inplace=True), nn.Linear(256, dim))

    def forward(self, volume):
        x = self.features(volume)
        x = torch.cat([x.mean(dim=(2, 3, 4)), x.amax(dim=(2, 3, 4))], dim=1)
        return self.head(x)


def augment(x, gen):
    """Random shifts (up to 3 voxels per axis, wrapping through the zero-padded border) and intensity jitter."""
    shifts = [int(v) for v in torch.randint(-3, 4, (3,), generator=gen)]
    x = torch.roll(x, shifts=shifts, dims=(2, 3, 4))
    scale = 1 + 0.1 * (2 * torch.rand((x.shape[0], 1, 1, 1, 1), generator=gen) - 1)
    offset = 0.1 * (2 * torch.rand((x.shape[0], 1, 1, 1, 1), generator=gen) - 1)
    return x * scale + offset


def train(volumes, targets, epochs, seed, log, name, batch_size=8, lr=2e-3, val=None, width=8, aug=False, fine=False):
    """volumes: float32 [N, D, H, W] (memory-mapped is fine); targets: float32 [N, dim]."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ImageEncoder(targets.shape[1], width, fine)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, int(np.ceil(len(volumes) / batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    y_all = torch.from_numpy(np.asarray(targets, dtype=np.float32))
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(volumes))
        total = 0.0
        for s in range(0, len(order), batch_size):
            idx = np.sort(order[s : s + batch_size])
            x = torch.from_numpy(np.ascontiguousarray(volumes[idx], dtype=np.float32)).unsqueeze(1)
            if aug:
                x = augment(x, gen)
            y = y_all[idx]
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
    return model


@torch.no_grad()
def predict(model, volumes, batch_size=16):
    model.eval()
    out = []
    for s in range(0, len(volumes), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(volumes[s : s + batch_size], dtype=np.float32)).unsqueeze(1)
        out.append(model(x))
    return torch.cat(out).numpy()


def evaluate(model, volumes, targets):
    return float(np.mean((predict(model, volumes) - targets) ** 2))


def export(model, path, shape, opset=17):
    x = torch.zeros((1, 1) + tuple(shape))
    torch.onnx.export(model, (x,), path, opset_version=opset, input_names=["volume"], output_names=["embedding"],
                      dynamic_axes={"volume": {0: "batch"}, "embedding": {0: "batch"}}, do_constant_folding=True)
