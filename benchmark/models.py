"""Model registry. A model is a body (meta-learned: phi) plus a per-task linear head.

``build_body(cfg, in_channels)`` returns an ``nn.Module`` with an ``out_features``
attribute; the runner adds ``nn.Linear(out_features, num_classes)`` per task.
BatchNorm running statistics are buffers, not parameters, so they are not part of phi.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from benchmark.registry import Registry, require


@dataclass
class ModelConfig:
    name: str = "convnet"
    width: int = 32  # channels of the first stage

    def __post_init__(self) -> None:
        require(self.width > 0, "model.width", f"must be > 0, got {self.width}")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config: type[ModelConfig]
    build_body: Callable[[ModelConfig, int], nn.Module]


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(name: str, config: type[ModelConfig] = ModelConfig):
    def wrap(fn: Callable[[ModelConfig, int], nn.Module]):
        MODELS.add(name, ModelEntry(name=name, config=config, build_body=fn))
        return fn

    return wrap


@dataclass
class ConvNetConfig(ModelConfig):
    name: str = "convnet"
    width: int = 16


class ConvNet(nn.Sequential):
    """4 x (conv3x3 -> BN -> ReLU), stride 2 from the second block, then global average pool.

    Small enough for a laptop CPU (about 33K parameters at width 16) and size-agnostic
    thanks to the pooling, so tasks of different image sizes share one body.
    """

    def __init__(self, in_channels: int, width: int):
        chans = [in_channels, width, width * 2, width * 2, width * 4]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [
                nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = chans[-1]


@register_model("convnet", ConvNetConfig)
def convnet(cfg: ModelConfig, in_channels: int) -> nn.Module:
    return ConvNet(in_channels, cfg.width)


def build_body(cfg, channels: int) -> nn.Module:
    """The body of the run's model (``cfg.model``) for inputs of ``channels`` channels."""
    return MODELS.get(cfg.model.name).build_body(cfg.model, channels)


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class BasicBlock(nn.Module):
    """CIFAR ResNet block (He et al. 2016, Sec. 4.2) with the parameter-free "option A"
    shortcut: stride-2 subsampling plus zero-padded channels. As in the authors'
    ``IdentityShortCut``, the zeros go on both sides, so the identity lands in the middle
    channels (for an odd difference, where theirs would fail, the extra zero goes last)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = ((cout - cin) // 2, cout - cin - (cout - cin) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        if any(self.pad):
            shortcut = nn.functional.pad(shortcut, (0, 0, 0, 0, *self.pad))
        return torch.relu(out + shortcut)


class ResNetCifar(nn.Sequential):
    """ResNet-(6n+2) for small images: 3 stages of n basic blocks at w, 2w, 4w channels.

    Initialized as the authors' ``ResNet_small``: every conv kaiming-normal with fan-out and
    ReLU gain, every BN weight 1 and bias 0 (torch's default conv init gives the 3x3 convs a
    1.7-2.4x smaller std). Their ``fc`` keeps nn.Linear's default, as our head does
    (``benchmark.core.population.init_head``)."""

    def __init__(self, in_channels: int, n: int = 3, width: int = 16):
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for block in range(n):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1))
                cin = cout
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@dataclass
class ResNet20Config(ModelConfig):
    name: str = "resnet20"
    width: int = 16


@register_model("resnet20", ResNet20Config)
def resnet20(cfg: ModelConfig, in_channels: int) -> nn.Module:
    return ResNetCifar(in_channels, n=3, width=cfg.width)


@dataclass
class ResNet18Config(ModelConfig):
    name: str = "resnet18"
    width: int = 64


@register_model("resnet18", ResNet18Config)
def resnet18(cfg: ModelConfig, in_channels: int) -> nn.Module:
    """torchvision's ResNet-18 with its classifier removed: the body is everything up to
    the pooled 512-d features. Weights are random (no download): phi_0 is the seed's."""
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    require(cfg.width == 64, "model.width", "resnet18 is torchvision's fixed-width network; leave it at 64")
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    net.fc = nn.Identity()
    net.out_features = 512
    return net
