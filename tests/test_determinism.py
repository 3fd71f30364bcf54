"""Two CPU runs with the same seed give identical weights after N training steps."""
from __future__ import annotations

import pytest
import torch
from monai.utils import set_determinism

from monai_attn.losses import AdaptiveLogLoss, TverskyBCELoss
from monai_attn.networks import FocusNetPP, MistakesUNet


def _train(make_net, in_channels: int, seed: int, steps: int = 3) -> dict:
    set_determinism(seed=seed)
    net = make_net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))
    for _ in range(steps):
        x = torch.randn(2, in_channels, 32, 32)
        y = (torch.rand(2, 1, 32, 32) > 0.7).float()
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    set_determinism(seed=None)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    "make_net, in_channels",
    [
        (lambda: FocusNetPP(2, 1, 1, filters=(8, 8, 16, 16, 24, 32), side_channels=(8, 8, 8)), 1),
        (lambda: MistakesUNet.preset("fpa", 2, 4, 1, width=8), 4),
    ],
    ids=["focusnetpp", "fpa"],
)
def test_same_seed_same_weights(make_net, in_channels):
    a, b = _train(make_net, in_channels, seed=3), _train(make_net, in_channels, seed=3)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    c = _train(make_net, in_channels, seed=4)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
