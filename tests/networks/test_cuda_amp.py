"""Mixed-precision training and inference of every network on CUDA (skipped without a GPU)."""
from __future__ import annotations

import pytest
import torch

from monai_attn.networks import FocusNetPP, FPAUNet, MistakesUNet, RFNAUNet

NETWORKS = {
    "FocusNetPP": lambda: (FocusNetPP(2, 3, 1), 3),
    "FocusNetPP-lite": lambda: (FocusNetPP.lite(2, 1, 1), 1),
    **{f"MistakesUNet-{p}": (lambda p=p: (MistakesUNet.preset(p, 2, 4, 1), 4))
       for p in ("unet", "wunet", "aunet", "cscunet", "cbamunet", "gcnunet", "d9unet")},
    "FPAUNet": lambda: (FPAUNet(2, 4, 1), 4),
    "RFNAUNet": lambda: (RFNAUNet(2, 4, 1), 4),
}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_amp_training_step_on_cuda(name, dtype):
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("bf16 not supported by this GPU")
    torch.manual_seed(0)
    net, cin = NETWORKS[name]()
    net = net.cuda().to(memory_format=torch.channels_last).train()
    x = torch.randn(2, cin, 96, 96, device="cuda").contiguous(memory_format=torch.channels_last)
    y = (torch.rand(2, 1, 96, 96, device="cuda") > 0.7).float()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    before = [p.detach().clone() for p in net.parameters()]
    for _ in range(5):  # fp16: the scaler skips steps whose gradients overflow while it finds its scale
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            logits = net(x)
        assert logits.shape == (2, 1, 96, 96)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        assert torch.isfinite(loss)
        scaler.scale(loss).backward()
        assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
        scaler.step(opt)
        scaler.update()
        changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, net.parameters()))
        if changed:
            break
    assert changed > 0.9 * len(before)  # a step updated (nearly) every parameter
    # inference under autocast (FocusNet++'s fused path) agrees with float32
    net.eval()
    with torch.no_grad():
        ref = net(x).float()
        with torch.autocast("cuda", dtype=dtype):
            low = net(x).float()
    assert torch.isfinite(low).all()
    assert (low - ref).abs().max() < 0.05 * ref.abs().max() + 0.05
