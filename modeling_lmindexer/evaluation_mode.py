"""Running a model in evaluation mode for a block, and giving it back in the mode it was in, even after an error."""

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """
    Put `module` in evaluation mode (no dropout) inside the block; on leaving it, however it is left, put it back in
    training mode if it was in it, so that an error while ranking or encoding does not change how training goes on.
    """
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


__all__ = ["evaluation_mode"]
