import pytest
import torch

from benchmark.models import MODELS, num_params
from helpers import make_config


def test_resnet20_has_the_usual_parameter_count():
    body = MODELS.get("resnet20").build_body(MODELS.get("resnet20").config(), 3)
    # He et al. report 0.27M for ResNet-20 on CIFAR-10 (body + a 64 x 10 classifier)
    assert num_params(body) + 64 * 10 + 10 == pytest.approx(0.27e6, rel=0.01)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_has_a_body_head_split(name):
    entry = MODELS.get(name)
    body = entry.build_body(entry.config(), 3)
    out = body(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, body.out_features)
    assert not [k for k, _ in body.named_parameters() if "running" in k], "BN statistics are not parameters"


def test_model_choice_reaches_the_config():
    assert make_config("suite=toy", "model=resnet20").model.width == 16
