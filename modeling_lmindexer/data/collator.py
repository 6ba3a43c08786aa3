"""Batches for progressive indexer training: tokenised documents, their masking noise and frozen earlier codes."""

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


class LMIndexerDataCollator:
    """
    Collates corpus rows `{"doc_index": int, "text": str}` for the stage being trained.

    Each batch carries the reconstructor's masking noise, from the second level on the documents' frozen
    `prefix_codes`, and, while `distillation_targets` is set, the documents' rows of it. The noise is drawn with
    generators seeded by `(seed, level, epoch, doc_index)`, so what a document gets depends neither on the batch it
    lands in nor on the number of processes, and a resumed run draws the same as an uninterrupted one. (Hard
    negatives come from the batch order: see [`PrefixGroupedSampler`].)

    Args:
        tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
        texts (`Sequence[str]`): All document texts, indexed by `doc_index`.
        max_length (`int`): Token length documents are truncated to.
        seed (`int`): Seed of the noise draws.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        max_length: int,
        seed: int = 0,
    ):
        self.tokenizer = tokenizer
        self.texts = texts
        self.max_length = max_length
        self.seed = seed
        self.level = 0
        self.epoch = 0
        self.prefix_codes: np.ndarray | None = None
        self.distillation_targets: np.ndarray | None = None

    def set_level(self, level: int, prefix_codes: np.ndarray) -> None:
        """Switch to `level`, whose documents' earlier codes are `prefix_codes` `(num_documents, level)`."""
        self.level = level
        self.prefix_codes = prefix_codes[:, :level] if level else None

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """`input_ids` and `attention_mask` `(len(texts), sequence_length)`, truncated to `max_length`."""
        encoded = self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _generator(self, document_index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.level, self.epoch, document_index, 0))

    def _reconstruction_noise(self, document_indices: list[int], sequence_length: int) -> torch.Tensor:
        """Uniform noise `(batch_size, sequence_length, sequence_length)`, cut from a per-document full-length draw."""
        noise = [
            self._generator(index).random((self.max_length, self.max_length), dtype=np.float32)
            for index in document_indices
        ]
        return torch.from_numpy(np.stack(noise)[:, :sequence_length, :sequence_length])

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        document_indices = [int(feature["doc_index"]) for feature in features]
        batch = self.tokenize([feature["text"] for feature in features])
        batch["reconstruction_noise"] = self._reconstruction_noise(document_indices, batch["input_ids"].shape[1])
        if self.level:
            batch["prefix_codes"] = torch.from_numpy(self.prefix_codes[document_indices])
        if self.distillation_targets is not None:
            batch["distillation_targets"] = torch.from_numpy(self.distillation_targets[document_indices])
        return batch


__all__ = ["LMIndexerDataCollator"]
