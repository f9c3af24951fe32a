"""A suite's tasks have one role each: trained on (sources), reported (targets), or used to
select hyperparameters (validation). A task named in two is refused, naming both keys."""
import pytest

from benchmark.compose import compose_config
from tasks.registry import SuiteConfig


@pytest.mark.parametrize("override,task,keys", [
    ("suite.validation=[toy_e]", "toy_e", ("suite.targets", "suite.validation")),
    ("suite.validation=[toy_a]", "toy_a", ("suite.sources", "suite.validation")),
    ("suite.targets=[toy_b]", "toy_b", ("suite.sources", "suite.targets")),
    ("suite.finetune_source=toy_v", "toy_v", ("suite.validation", "suite.finetune_source")),
    ("suite.finetune_source=toy_e", "toy_e", ("suite.targets", "suite.finetune_source")),
])
def test_a_task_in_two_roles_is_refused_naming_it_and_both_roles(override, task, keys):
    with pytest.raises(ValueError) as error:
        compose_config(["suite=toy", override])
    message = str(error.value)
    assert repr(task) in message and all(k in message for k in keys), message


def test_fine_tuning_may_pretrain_on_a_meta_training_source_and_validation_may_be_empty():
    assert compose_config(["suite=toy", "suite.finetune_source=toy_a"]).suite.finetune_source == "toy_a"
    assert compose_config(["suite=toy", "suite.validation=[]"]).suite.validation == []
    assert compose_config(["suite=toy"]).suite.validation == ["toy_v"]


@pytest.mark.parametrize("validation,named", [(["toy_v", "toy_v"], "a task is named twice"),
                                              (["nope"], "unknown task")])
def test_bad_validation_tasks_name_the_key(validation, named):
    with pytest.raises(ValueError, match=f"suite.validation: {named}"):
        SuiteConfig("x", sources=["toy_a"], targets=["toy_e"], validation=validation)
