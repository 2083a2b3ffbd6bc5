"""An ``EvaluationData`` around a test split, as a job builds it, for evaluation tests."""

from __future__ import annotations

from downsample_study.data.batches import Split
from downsample_study.evaluations.base import EvaluationData


def evaluation_data(split: Split, mean=(0.5,), std=(0.3,), batch_size: int = 64,
                    num_classes: int = 10, seed: int = 0, initial=None) -> EvaluationData:
    return EvaluationData(split, tuple(mean), tuple(std), batch_size, num_classes, seed,
                          title="a test", initial=initial)
