import math

import numpy as np
import pytest
import torch

from modeling_lmindexer import IDTokenLayout
from modeling_lmindexer.id_tokens import smoothed_cross_entropy


LAYOUT = IDTokenLayout(text_vocab_size=100, codebook_sizes=(4, 5, 3), eos_token_id=1, pad_token_id=0)


def test_token_ids_of_every_level_follow_the_text_vocabulary():
    assert LAYOUT.level_start_token_ids == (100, 104, 109)
    assert LAYOUT.vocab_size == 112
    assert list(LAYOUT.level_token_ids(1)) == [104, 105, 106, 107, 108]
    assert LAYOUT.id_token_ids([3, 4, 2]) == [103, 108, 111, 1]


def test_step_token_ranges_are_the_level_codes_then_eos_then_pad():
    assert [LAYOUT.step_token_range(step) for step in range(5)] == [(100, 104), (104, 109), (109, 112), (1, 2), (0, 1)]
    without_pad = IDTokenLayout(100, (4, 5, 3), eos_token_id=1)
    assert without_pad.finish_token_id == 1
    assert without_pad.step_token_range(4) == (1, 2)


def test_codes_and_tokens_round_trip_for_tensors_and_arrays_from_any_level():
    codes = torch.tensor([[0, 4, 2], [3, 0, 0]])
    tokens = LAYOUT.codes_to_tokens(codes)
    assert tokens.tolist() == [[100, 108, 111], [103, 104, 109]]
    assert torch.equal(LAYOUT.tokens_to_codes(tokens), codes)
    assert LAYOUT.codes_to_tokens(np.array([[4, 2]]), first_level=1).tolist() == [[108, 111]]
    assert LAYOUT.tokens_to_codes(torch.tensor([[111]]), first_level=2).tolist() == [[2]]
    with pytest.raises(ValueError, match="do not fit IDs of 3 levels"):
        LAYOUT.codes_to_tokens(codes, first_level=1)


def test_bad_layouts_are_refused():
    with pytest.raises(ValueError, match="eos_token_id = 100 must be a text token"):
        IDTokenLayout(100, (4, 4), eos_token_id=100)
    with pytest.raises(ValueError, match="at least 2 codes"):
        IDTokenLayout(100, (4, 1), eos_token_id=1)
    with pytest.raises(ValueError, match="3 codes for IDs of 2 levels"):
        IDTokenLayout(100, (4, 4), eos_token_id=1).id_token_ids([0, 0, 0])
    with pytest.raises(ValueError, match="outside the 3 ID levels"):
        LAYOUT.level_token_ids(3)


def test_smoothed_cross_entropy_spreads_the_smoothing_over_the_possible_tokens_only():
    """Per target: torch's label-smoothed cross-entropy of the finite scores alone, finite next to `-inf` scores."""
    torch.manual_seed(0)
    scores = torch.randn(3, 6)
    possible = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    targets = torch.tensor([2, 4, 0])
    losses = smoothed_cross_entropy(scores.masked_fill(~possible, -math.inf), targets, smoothing=0.3)
    expected = [
        torch.nn.functional.cross_entropy(
            scores[row, possible[row]], targets[row] - possible[row].long().argmax(), label_smoothing=0.3
        )
        for row in range(3)
    ]
    assert torch.allclose(losses, torch.stack(expected), atol=1e-6)
    leaf = scores.masked_fill(~possible, -math.inf).requires_grad_()
    smoothed_cross_entropy(leaf, targets, smoothing=0.3).sum().backward()
    assert torch.isfinite(leaf.grad).all() and (leaf.grad[~possible] == 0).all()
    plain = smoothed_cross_entropy(scores, targets)
    assert torch.allclose(plain, torch.nn.functional.cross_entropy(scores, targets, reduction="none"), atol=1e-6)
