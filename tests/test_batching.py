"""The shared batching helpers (inference/batching.py) and the doctests of the prediction path."""
from __future__ import annotations

import doctest

import pytest
import torch

from xinwen.inference import batching, text
from xinwen.inference.batching import length_batches, pad_batch, pad_states
from xinwen.inference.topic import runtimes


@pytest.mark.parametrize("module", [batching, text, runtimes])
def test_docstring_examples_run(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_length_batches_sort_by_length_and_keep_ties_in_input_order():
    lengths = [5, 2, 5, 1, 2, 9, 5]
    assert length_batches(lengths, batch_size=3) == [[3, 1, 4], [0, 2, 6], [5]]
    budgeted = length_batches(lengths, batch_size=1, max_batch_tokens=10)
    assert budgeted == [[3, 1, 4], [0, 2], [6], [5]]  # 3 short rows share a batch; 9 > 10/2 stands alone
    assert length_batches([], batch_size=4) == [] and length_batches([], 4, 100) == []
    with pytest.raises(ValueError, match="batch_size: expected >= 1"):
        length_batches(lengths, batch_size=0)


def test_padding_of_ids_and_of_states():
    batch = pad_batch([[7, 8], [9], [1, 2, 3]], pad_id=0)
    assert batch["input_ids"].tolist() == [[7, 8, 0], [9, 0, 0], [1, 2, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert batch["input_ids"].dtype == torch.long
    hidden, mask = pad_states([torch.ones(2, 4, dtype=torch.float16), torch.full((3, 4), 2.0)])
    assert hidden.shape == (2, 3, 4) and hidden.dtype == torch.float32
    assert hidden[0, 2].abs().sum() == 0 and mask.tolist() == [[1, 1, 0], [1, 1, 1]]
