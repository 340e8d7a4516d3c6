"""Every registered method refuses a ``model.encoders`` that does not name one encoder per modality
with the same one-line ``UserError`` (it used to be a raw unpacking error for SMIL)."""


import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError

SPEC = DatasetSpec(name="toy", modalities=("a", "b"), shapes=((6,), (5,)), task="classification",
                   num_classes=3)


@pytest.mark.parametrize("name", sorted(methods.REGISTRY))
def test_wrong_encoder_count_is_one_user_error(name):
    entry = methods.entry(name)
    config = ExperimentConfig(model=ModelConfig(encoders=("mlp",), hidden=8, feature_dim=4),
                              method=entry.config_class(name=name))
    with pytest.raises(UserError, match="model.encoders names 1 encoders for 2 modalities"):
        methods.make(config, SPEC)
