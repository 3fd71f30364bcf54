"""Package-level contract: short names resolve in MONAI bundle configs and never clash with MONAI's."""
from __future__ import annotations

import inspect

import monai
import pytest
import torch
from monai.bundle import ConfigParser

import monai_attn

CONFIG = {
    "imports": ["$import monai_attn"],
    "network": {"_target_": "FocusNetPP", "spatial_dims": 2, "in_channels": 3, "out_channels": 1,
                "filters": [8, 8, 16, 16, 24, 32], "side_channels": [8, 8, 8]},
    "bce": {"_target_": "BalancedBCELoss", "sigmoid": True},
    "hybrid": {"_target_": "TverskyBCELoss", "sigmoid": True},
    "loss": {"_target_": "AdaptiveLogLoss", "loss": "@hybrid"},
}


@pytest.mark.parametrize(
    "key, cls",
    [("network", "FocusNetPP"), ("bce", "BalancedBCELoss"), ("hybrid", "TverskyBCELoss"), ("loss", "AdaptiveLogLoss")],
)
def test_config_parser_resolves_short_names(key, cls):
    parser = ConfigParser(CONFIG)
    obj = parser.get_parsed_content(key)
    assert type(obj).__name__ == cls
    assert type(obj).__module__.startswith("monai_attn.")


def test_parsed_network_and_loss_run():
    parser = ConfigParser(CONFIG)
    net, loss = parser.get_parsed_content("network"), parser.get_parsed_content("loss")
    x, y = torch.randn(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    assert torch.isfinite(loss(net(x), y))


def _public_classes_and_functions(module):
    return {n for n, o in vars(module).items() if not n.startswith("_") and (inspect.isclass(o) or inspect.isfunction(o))}


def test_no_short_name_collides_with_monai():
    ours = {n for n in monai_attn.__all__} if hasattr(monai_attn, "__all__") else set()
    ours |= {n for sub in (monai_attn.networks, monai_attn.losses, monai_attn.metrics, monai_attn.transforms,
                           monai_attn.data) for n in getattr(sub, "__all__", [])}
    theirs = set()
    for sub in (monai.networks.nets, monai.networks.blocks, monai.losses, monai.metrics, monai.transforms,
                monai.data, monai.handlers, monai.engines, monai.inferers, monai.apps):
        theirs |= _public_classes_and_functions(sub)
    assert ours, "the package exports nothing"
    assert not ours & theirs, f"names clash with MONAI: {sorted(ours & theirs)}"
