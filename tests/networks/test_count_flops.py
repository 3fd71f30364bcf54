"""count_flops counts the definition's work (hand-computed), on a copy, whatever path inference takes."""
from __future__ import annotations

import torch

from monai_attn.networks import ResidualGroupAttentionBlock
from monai_attn.networks.utils import count_flops


def test_convolutions_hand_counted():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, padding=1, groups=4))
    x = torch.zeros(1, 3, 16, 16)
    # 2 FLOPs per multiply-add: out channels × in channels per group × taps × pixels (biases are not counted)
    assert count_flops(net, x) == 2 * 8 * 3 * 9 * 256 + 2 * 8 * 2 * 9 * 256
    assert count_flops(net, torch.zeros(2, 3, 16, 16)) == 2 * count_flops(net, x)


def test_module_left_untouched_and_inference_rewrites_not_counted():
    block = ResidualGroupAttentionBlock(2, 8, 8).eval()
    x = torch.zeros(1, 8, 12, 12)
    flops = count_flops(block, x)
    assert not block.training and block.conv_in.weight.device.type == "cpu"  # counted on a copy
    # 1×1 in (8→8), two grouped 3×3 (4 groups of 2), attention/skip 1×1 (2 groups of 2), product (2 groups,
    # 2→4), aggregate (8→8), SE's two linear layers (8→8→8 on the pooled vector)
    pixels = 144
    convs = 8 * 8 + 2 * (8 * 2 * 9) + 2 * (4 * 2) + 8 * 2 + 8 * 8
    assert flops == 2 * convs * pixels + 2 * (8 * 8 + 8 * 8)
