"""FocusNet++-lite learns on crops of the real DSB 2018 sample (CPU, a few steps)."""
from __future__ import annotations

import numpy as np
import torch
from monai.utils import set_determinism

from monai_attn.losses import AdaptiveLogLoss, TverskyBCELoss
from monai_attn.networks import FocusNetPP
from monai_attn.sample_data import load_dsb2018_sample


def test_lite_loss_falls_on_real_dsb_crops():
    set_determinism(seed=0)
    image, mask = load_dsb2018_sample()
    left_img, left_mask = image[:, :256], mask[:, :256]  # train on the left half only
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 256 - 64, size=(4, 2))
    x = torch.from_numpy(np.stack([left_img[r : r + 64, c : c + 64] for r, c in corners]))[:, None]
    y = torch.from_numpy(np.stack([left_mask[r : r + 64, c : c + 64] for r, c in corners]))[:, None].float()
    assert 0.05 < float(y.mean()) < 0.6  # crops contain nuclei and background

    net = FocusNetPP.lite(spatial_dims=2, in_channels=1, out_channels=1, dropout=0.0)
    loss_fn = AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses, hybrid = [], []
    for _ in range(25):
        opt.zero_grad()
        logits = net(x)
        loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        hybrid.append(float(loss_fn.loss(logits.detach(), y)))  # HL before the adaptive-log transform
    set_determinism(None)
    assert all(np.isfinite(losses))
    # ALL(HL) = HL - C above gamma (C < 0), so ALL falls by the same amount as HL
    assert np.mean(losses[-5:]) < np.mean(losses[:3]) - 0.15, losses
    assert np.mean(hybrid[-5:]) < 0.6 * np.mean(hybrid[:3]), hybrid
