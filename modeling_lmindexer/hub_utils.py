"""Hub helpers shared by the indexer and the retriever: optional files saved next to the weights, one-commit push."""

import json
import os
import tempfile
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers.tokenization_utils_base import (
    ADDED_TOKENS_FILE,
    FULL_TOKENIZER_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    TOKENIZER_CONFIG_FILE,
)
from transformers.utils import CONFIG_NAME, GENERATION_CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, cached_file
from transformers.utils.hub import hf_api

from .codebook import PrefixGroupMeans


SEMANTIC_IDS_NAME = "semantic_ids.json"
PREFIX_GROUP_MEANS_NAME = "prefix_group_means.safetensors"
MODEL_CARD_NAME = "README.md"
# The JSON files that loading a model folder and its tokenizer reads (reports saved beside them are not needed).
MODEL_FOLDER_JSON_FILES = (
    CONFIG_NAME,
    GENERATION_CONFIG_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SEMANTIC_IDS_NAME,
    FULL_TOKENIZER_FILE,
    TOKENIZER_CONFIG_FILE,
    SPECIAL_TOKENS_MAP_FILE,
    ADDED_TOKENS_FILE,
)
HUB_KWARG_NAMES = ("cache_dir", "force_download", "token", "revision", "local_files_only", "subfolder")


def cached_optional_file(
    pretrained_model_name_or_path: str | os.PathLike, filename: str, from_pretrained_kwargs: dict
) -> str | None:
    """
    Local path of `filename` saved next to a model (a folder or a Hub repo, downloaded into the cache if needed), or
    `None` when the model has no such file. The Hub arguments of `from_pretrained_kwargs` (`revision`, `token`, ...)
    are used.
    """
    hub_kwargs = {name: from_pretrained_kwargs[name] for name in HUB_KWARG_NAMES if name in from_pretrained_kwargs}
    return cached_file(
        pretrained_model_name_or_path,
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )


def check_model_folder(pretrained_model_name_or_path: str | os.PathLike, from_pretrained_kwargs: dict) -> None:
    """
    Raise one `OSError` naming the first unreadable file of a local model folder (its `subfolder` when given): a JSON
    file of the model or its tokenizer ([`MODEL_FOLDER_JSON_FILES`]) that does not parse, or a `.safetensors` file
    whose header is broken or whose data is cut short.
    Without it, a truncated file surfaces as an error from inside safetensors or the JSON decoder that names no file.
    A Hub id is left to the Hub download, which checks what it serves.
    """
    folder = Path(pretrained_model_name_or_path, from_pretrained_kwargs.get("subfolder") or "")
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name in MODEL_FOLDER_JSON_FILES:
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError as error:
                raise OSError(f"{path}: not valid JSON, the file is corrupt or truncated ({error}).") from None
        elif path.suffix == ".safetensors":
            try:
                with safe_open(path, framework="pt"):
                    pass
            except SafetensorError as error:
                raise OSError(f"{path}: not a readable safetensors file, corrupt or truncated ({error}).") from None


def save_corpus_files_and_model_card(
    save_directory: str | os.PathLike, semantic_ids, prefix_group_means: PrefixGroupMeans, model_card: str
) -> None:
    """Write the [`SemanticIDs`] and the [`PrefixGroupMeans`] (when there are any) and the model card next to the
    weights."""
    if semantic_ids is not None:
        semantic_ids.save(os.path.join(save_directory, SEMANTIC_IDS_NAME))
    group_means = prefix_group_means.to_tensors()
    if group_means:
        save_file(group_means, os.path.join(save_directory, PREFIX_GROUP_MEANS_NAME))
    with open(os.path.join(save_directory, MODEL_CARD_NAME), "w", encoding="utf-8") as card_file:
        card_file.write(model_card)


def load_prefix_group_means(
    pretrained_model_name_or_path: str | os.PathLike, codebook_sizes: list[int], from_pretrained_kwargs: dict
) -> PrefixGroupMeans | None:
    """The [`PrefixGroupMeans`] saved next to a model, or `None` when it has none; a file that does not fit
    `codebook_sizes` raises `ValueError` naming it."""
    means_file = cached_optional_file(pretrained_model_name_or_path, PREFIX_GROUP_MEANS_NAME, from_pretrained_kwargs)
    if means_file is None:
        return None
    return PrefixGroupMeans.from_tensors(codebook_sizes, load_file(means_file), source=means_file)


class SavedFolderPushMixin:
    """
    `push_to_hub` for models whose `save_pretrained` writes extra files (semantic IDs, model card): the folder that
    `save_pretrained` writes is uploaded as it is, in one commit.
    """

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
    ) -> str:
        """
        Upload config, safetensors weights, learned IDs, model card and modeling code to `repo_id` in one commit.
        Arguments are those of [`PreTrainedModel.push_to_hub`]; `tags` are added to the model card.
        """
        repo_id = hf_api().create_repo(repo_id, private=private, token=token, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as working_dir:
            self.save_pretrained(working_dir, max_shard_size=max_shard_size)
            if tags:
                self._add_model_card_tags(os.path.join(working_dir, MODEL_CARD_NAME), tags)
            return self._upload_modified_files(
                working_dir,
                repo_id,
                files_timestamps={},
                commit_message=commit_message,
                token=token,
                create_pr=create_pr,
                revision=revision,
                commit_description=commit_description,
            )

    @staticmethod
    def _add_model_card_tags(card_path: str, tags: list[str]) -> None:
        from huggingface_hub import ModelCard

        card = ModelCard.load(card_path)
        card.data.tags = sorted(set(card.data.tags or []) | set(tags))
        card.save(card_path)


__all__ = [
    "MODEL_CARD_NAME",
    "PREFIX_GROUP_MEANS_NAME",
    "SEMANTIC_IDS_NAME",
    "SavedFolderPushMixin",
    "cached_optional_file",
    "check_model_folder",
    "load_prefix_group_means",
    "save_corpus_files_and_model_card",
]
