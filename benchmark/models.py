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

from benchmark.registry import Registry
from methods.base import require


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
    width: int = 32


class ConvNet(nn.Sequential):
    """4 x (conv3x3 -> BN -> ReLU), stride 2 from the second block, then global average pool.

    Small enough for a laptop CPU (about 0.1M parameters at width 32) and size-agnostic
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


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
