import math

import pytest
import torch
from torch import nn

from benchmark.models import MODELS, ResNet20Config, ResNetCifar, num_params
from helpers import make_config


def resnet20_body(in_channels: int = 3) -> nn.Module:
    entry = MODELS.get("resnet20")
    return entry.build_body(entry.config(), in_channels)


def test_resnet20_has_the_usual_parameter_count():
    body = resnet20_body()
    # He et al. report 0.27M for ResNet-20 on CIFAR-10 (body + a 64 x 10 classifier)
    assert num_params(body) + 64 * 10 + 10 == pytest.approx(0.27e6, rel=0.01)


@pytest.mark.parametrize("in_channels", [3, 1])
def test_resnet20_starts_from_the_authors_init(in_channels):
    """Every conv is kaiming_normal_(mode="fan_out", nonlinearity="relu") and every BN is
    (1, 0), as in the authors' models/resnet_small.py. Torch's default conv init has a std
    of 1/sqrt(3 fan_in): 2.4x too small in the 3x3 convs with as many inputs as outputs."""
    torch.manual_seed(0)
    body = resnet20_body(in_channels)
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19  # the stem and 2 per block; the shortcuts have no weights
    off = []
    for i, conv in enumerate(convs):
        w = conv.weight.detach()
        out, _, kh, kw = w.shape
        want = math.sqrt(2.0 / (out * kh * kw))
        # The sample std of n normal draws is off by 1/sqrt(2n) relative (1 sigma): allow 4
        # sigma, from 24% in the 144-weight stem to 1.5% in the 64 x 64 convs.
        tol = 4 / math.sqrt(2 * w.numel())
        # Normal, not uniform: a uniform weight never exceeds sqrt(3) times its std.
        if abs(w.std().item() / want - 1) > tol or not (w.abs() > 1.8 * want).any():
            off.append(f"conv {i} {tuple(w.shape)}: std {w.std().item():.4f}, max {w.abs().max().item():.3f}, "
                       f"want std {want:.4f}")
    assert not off, "\n".join(off)
    bns = [m for m in body.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 19
    for bn in bns:
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))


class AuthorsBlock(nn.Module):
    """The authors' BasicBlock + IdentityShortCut (models/resnet_small.py), restated: the
    stride is in conv1, and the shortcut subsamples by 2 and zero-pads channels on both
    sides, pad = (planes - inplanes) // 2, so the identity lands in the middle channels."""

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - inplanes) // 2 if stride != 1 or inplanes != planes else None

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        identity = x if self.pad is None else nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return torch.relu(out + identity)


class AuthorsResNet20Body(nn.Module):
    """The authors' ResNet_small(BasicBlock, [3, 3, 3]) up to the pooled features (their fc
    is our per-task head)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, inplanes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for b in range(3):
                blocks.append(AuthorsBlock(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        x = self.blocks(torch.relu(self.bn1(self.conv1(x))))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


@pytest.mark.parametrize("train", [False, True])
def test_resnet20_computes_what_the_authors_network_computes(train):
    torch.manual_seed(0)
    ours = resnet20_body()
    with torch.no_grad():  # random BN affine and statistics, so the comparison is not about defaults
        for m in ours.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.5)
                m.running_mean.normal_(0, 0.5), m.running_var.uniform_(0.5, 2.0)
    theirs = AuthorsResNet20Body()
    ours_state, their_keys = ours.state_dict(), list(theirs.state_dict())
    assert len(ours_state) == len(their_keys)  # same tensors in the same order, so map by position
    theirs.load_state_dict(dict(zip(their_keys, ours_state.values())))
    ours.train(train), theirs.train(train)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
    assert diff < 1e-5, f"max |ours - authors'| = {diff:.3g}"


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_has_a_body_head_split(name):
    entry = MODELS.get(name)
    body = entry.build_body(entry.config(), 3)
    out = body(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, body.out_features)
    assert not [k for k, _ in body.named_parameters() if "running" in k], "BN statistics are not parameters"


def test_model_choice_reaches_the_config():
    cfg = make_config("suite=toy", "model=resnet20")
    assert cfg.model.name == "resnet20" and isinstance(cfg.model, ResNet20Config)
    assert isinstance(MODELS.get(cfg.model.name).build_body(cfg.model, 1), ResNetCifar)
