"""
Saving, loading and sharing shared by every model that carries semantic IDs (indexer, retriever, recommender): the
IDs and prefix-group means saved next to the weights, the model card scaffold, the folder check, one-commit push.
"""

import json
import os
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData
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
from .semantic_ids import SemanticIDs


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


def load_prefix_group_means(
    pretrained_model_name_or_path: str | os.PathLike, codebook_sizes: list[int], from_pretrained_kwargs: dict
) -> PrefixGroupMeans | None:
    """The [`PrefixGroupMeans`] saved next to a model, or `None` when it has none; a file that does not fit
    `codebook_sizes` raises `ValueError` naming it."""
    means_file = cached_optional_file(pretrained_model_name_or_path, PREFIX_GROUP_MEANS_NAME, from_pretrained_kwargs)
    if means_file is None:
        return None
    return PrefixGroupMeans.from_tensors(codebook_sizes, load_file(means_file), source=means_file)


def render_model_card(
    title: str,
    summary: str,
    facts: list[str],
    metrics: dict | None,
    usage: list[str],
    dataset_name: str | None,
    task_tag: str,
) -> str:
    """
    A model card in the layout every lmindexer model shares: YAML metadata (library, the `lmindexer`, `semantic-ids`
    and `task_tag` tags, the dataset), title, a one-paragraph summary, a list of facts (backbone, levels, dataset,
    ...), a metrics table when there are metrics, and a Python usage block.
    """
    card_data = ModelCardData(
        library_name="transformers",
        tags=["lmindexer", "semantic-ids", task_tag],
        datasets=[dataset_name] if dataset_name else None,
    )
    lines = ["---", card_data.to_yaml(), "---", "", f"# {title}", "", summary, "", *(f"- {fact}" for fact in facts)]
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in metrics.items()]
    lines += ["", "## Usage", "", "```python", *usage, "```", ""]
    return "\n".join(lines)


class SemanticIDsHubMixin:
    """
    `save_pretrained`, `from_pretrained` and `push_to_hub` for a `PreTrainedModel` that carries semantic IDs: the
    [`SemanticIDs`] (`semantic_ids.json`), the [`PrefixGroupMeans`] (`prefix_group_means.safetensors`, when fitted)
    and the model card are saved next to the weights and read back by `from_pretrained`, so a loaded model indexes
    and retrieves with nothing else; `push_to_hub` uploads the folder `save_pretrained` writes, in one commit. Put it
    before `PreTrainedModel` in the bases.

    A model using it provides `semantic_ids` (`SemanticIDs | None`), `prefix_group_means` (`None` for a model
    without them), `model_card() -> str` and `set_semantic_ids(semantic_ids, source)`, which checks that the IDs fit
    the model (naming `source`).
    """

    def save_pretrained(self, save_directory: str | os.PathLike, is_main_process: bool = True, **kwargs) -> None:
        """Save weights (safetensors), config, the [`SemanticIDs`], the prefix-group means (when there are any) and
        a model card."""
        super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        if not is_main_process:
            return
        if self.semantic_ids is not None:
            self.semantic_ids.save(os.path.join(save_directory, SEMANTIC_IDS_NAME))
        group_means = {} if self.prefix_group_means is None else self.prefix_group_means.to_tensors()
        if group_means:
            save_file(group_means, os.path.join(save_directory, PREFIX_GROUP_MEANS_NAME))
        self._write_model_card(save_directory)

    def save_config_and_model_card(self, save_directory: str | os.PathLike) -> None:
        """Rewrite only the config and the model card of a folder the model was saved to, e.g. once its test metrics
        are in the config, without writing its weights again."""
        self.config.save_pretrained(save_directory)
        self._write_model_card(save_directory)

    def _write_model_card(self, save_directory: str | os.PathLike) -> None:
        with open(os.path.join(save_directory, MODEL_CARD_NAME), "w", encoding="utf-8") as card_file:
            card_file.write(self.model_card())

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs):
        """
        Load the model as [`PreTrainedModel.from_pretrained`] does, plus its [`SemanticIDs`] and prefix-group means
        if saved.

        Raises:
            `OSError`: Naming the file, when a JSON or safetensors file of a local folder is corrupt or truncated.
            `ValueError`: Naming the file, when the saved IDs or prefix-group means are invalid or do not fit the
            config.
        """
        check_model_folder(pretrained_model_name_or_path, kwargs)
        loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        ids_file = cached_optional_file(pretrained_model_name_or_path, SEMANTIC_IDS_NAME, kwargs)
        if ids_file is not None:
            model.set_semantic_ids(SemanticIDs.load(ids_file), source=ids_file)
        group_means = load_prefix_group_means(pretrained_model_name_or_path, model.config.codebook_sizes, kwargs)
        if group_means is not None:
            model.prefix_group_means = group_means
        return loaded

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
        card = ModelCard.load(card_path)
        card.data.tags = sorted(set(card.data.tags or []) | set(tags))
        card.save(card_path)


__all__ = [
    "MODEL_CARD_NAME",
    "PREFIX_GROUP_MEANS_NAME",
    "SEMANTIC_IDS_NAME",
    "SemanticIDsHubMixin",
    "cached_optional_file",
    "check_model_folder",
    "load_prefix_group_means",
    "render_model_card",
]
