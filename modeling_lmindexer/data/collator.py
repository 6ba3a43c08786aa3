"""Batches for progressive indexer training: tokenised documents, their frozen earlier codes and hard negatives."""

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


class PrefixGroups:
    """
    Documents grouped by their earlier codes, to draw hard negatives that share a document's prefix.

    Args:
        prefix_codes (`np.ndarray` of shape `(num_documents, level)`): Frozen codes of the earlier levels.
    """

    def __init__(self, prefix_codes: np.ndarray):
        _, group_ids = np.unique(prefix_codes, axis=0, return_inverse=True)
        self.group_ids = group_ids.reshape(-1)
        self.members_by_group = np.argsort(self.group_ids, kind="stable")
        sorted_groups = self.group_ids[self.members_by_group]
        self.group_starts = np.searchsorted(sorted_groups, np.arange(self.group_ids.max() + 1), side="left")
        self.group_ends = np.searchsorted(sorted_groups, np.arange(self.group_ids.max() + 1), side="right")

    def others(self, document_index: int) -> np.ndarray:
        """Indices of the other documents sharing `document_index`'s prefix."""
        group = self.group_ids[document_index]
        members = self.members_by_group[self.group_starts[group] : self.group_ends[group]]
        return members[members != document_index]


class LMIndexerDataCollator:
    """
    Collates corpus rows `{"doc_index": int, "text": str}` for the stage being trained.

    Each batch carries the reconstructor's masking noise; from the second level on, also the documents' frozen
    `prefix_codes` and up to `num_hard_negatives` documents sharing each document's prefix. Noise and hard negatives
    are drawn with generators seeded by `(seed, level, epoch, doc_index)`, so what a document gets depends neither on
    the batch it lands in nor on the number of processes, and a resumed run draws the same as an uninterrupted one.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
        texts (`Sequence[str]`): All document texts, indexed by `doc_index` (hard negatives are drawn from them).
        max_length (`int`): Token length documents are truncated to.
        num_hard_negatives (`int`): Hard negatives per document from the second level on.
        seed (`int`): Seed of the hard-negative draws.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        texts: Sequence[str],
        max_length: int,
        num_hard_negatives: int = 4,
        seed: int = 0,
    ):
        self.tokenizer = tokenizer
        self.texts = texts
        self.max_length = max_length
        self.num_hard_negatives = num_hard_negatives
        self.seed = seed
        self.level = 0
        self.epoch = 0
        self.prefix_codes: np.ndarray | None = None
        self.prefix_groups: PrefixGroups | None = None

    def set_level(self, level: int, prefix_codes: np.ndarray) -> None:
        """Switch to `level`, whose documents' earlier codes are `prefix_codes` `(num_documents, level)`."""
        self.level = level
        self.prefix_codes = prefix_codes[:, :level] if level else None
        use_hard_negatives = level > 0 and self.num_hard_negatives > 0
        self.prefix_groups = PrefixGroups(self.prefix_codes) if use_hard_negatives else None

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """`input_ids` and `attention_mask` `(len(texts), sequence_length)`, truncated to `max_length`."""
        encoded = self.tokenizer(texts, max_length=self.max_length, truncation=True, padding=True, return_tensors="pt")
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def _generator(self, document_index: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.level, self.epoch, document_index, purpose))

    def _reconstruction_noise(self, document_indices: list[int], sequence_length: int) -> torch.Tensor:
        """Uniform noise `(batch_size, sequence_length, sequence_length)`, cut from a per-document full-length draw."""
        noise = [
            self._generator(index, 0).random((self.max_length, self.max_length), dtype=np.float32)
            for index in document_indices
        ]
        return torch.from_numpy(np.stack(noise)[:, :sequence_length, :sequence_length])

    def _hard_negatives(self, document_indices: list[int]) -> dict[str, torch.Tensor]:
        negative_indices = np.zeros((len(document_indices), self.num_hard_negatives), dtype=np.int64)
        negative_mask = np.zeros_like(negative_indices, dtype=bool)
        for row, document_index in enumerate(document_indices):
            candidates = self.prefix_groups.others(document_index)
            chosen = self._generator(document_index, 1).permutation(candidates)[: self.num_hard_negatives]
            negative_indices[row] = document_index
            negative_indices[row, : len(chosen)] = chosen
            negative_mask[row, : len(chosen)] = True
        if not negative_mask.any():
            return {}
        encoded = self.tokenize([self.texts[index] for index in negative_indices.reshape(-1)])
        shape = (*negative_indices.shape, -1)
        return {
            "hard_negative_input_ids": encoded["input_ids"].view(shape),
            "hard_negative_attention_mask": encoded["attention_mask"].view(shape),
            "hard_negative_mask": torch.from_numpy(negative_mask),
        }

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        document_indices = [int(feature["doc_index"]) for feature in features]
        batch = self.tokenize([feature["text"] for feature in features])
        batch["reconstruction_noise"] = self._reconstruction_noise(document_indices, batch["input_ids"].shape[1])
        if self.level:
            batch["prefix_codes"] = torch.from_numpy(self.prefix_codes[document_indices])
        if self.prefix_groups is not None:
            batch.update(self._hard_negatives(document_indices))
        return batch


__all__ = ["LMIndexerDataCollator", "PrefixGroups"]
