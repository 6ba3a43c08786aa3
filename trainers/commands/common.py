"""
What every command does the same way: parse its arguments, read the corpus (a benchmark by name, or your own file or
Hub dataset), set up logging, compute (or reuse) baseline IDs, and push its results once.
"""

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from datasets import Dataset
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import SaveStrategy, get_last_checkpoint

from modeling_lmindexer import LMIndexerForSemanticID, SemanticIDs
from modeling_lmindexer.baselines import baseline_semantic_ids
from modeling_lmindexer.collaborative import cooccurrence_embeddings
from modeling_lmindexer.data import load_corpus
from modeling_lmindexer.data.recommendation import training_parts
from modeling_lmindexer.data.user_files import NamedCorpus, TableSource, load_corpus_file
from trainers.callbacks import TimeBudgetCallback


logger = logging.getLogger(__name__)

# Training flags of run_recommendation.py and run_retrieval.py that test the weights of the best validation point
# (Recall@10, with --eval_every_minutes) instead of the last: the Trainer checkpoints every new best evaluation, keeps
# that checkpoint alone and loads it when training ends.
BEST_VALIDATION_STATE_FLAGS = [
    "--save_strategy", "best",
    "--metric_for_best_model", "recall@10",
    "--load_best_model_at_end", "True",
    "--save_total_limit", "1",
]  # fmt: skip


@dataclass
class CorpusFileArguments:
    """Your own corpus, instead of a benchmark `--dataset`: a file or a Hub dataset, and which columns hold what."""

    corpus_file: str | None = field(
        default=None,
        metadata={"help": "Your own corpus, one document per row: a .jsonl, .csv, .tsv or .parquet file."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Your own corpus from the Hub: a dataset id for datasets.load_dataset."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    dataset_split: str = field(default="train", metadata={"help": "The Hub dataset's split."})
    id_column: str = field(default="id", metadata={"help": "Column of the document ids."})
    text_column: list[str] = field(
        default_factory=lambda: ["text"],
        metadata={"help": "Column(s) of the text; several are joined with spaces (e.g. --text_column title body)."},
    )
    category_column: str | None = field(
        default=None, metadata={"help": "Column of a category, for the AMI of the IDs in the indexing report."}
    )
    skip_bad_rows: bool = field(
        default=False,
        metadata={"help": "Leave out bad rows (empty text, duplicate or unknown id), counted in the log and report."},
    )

    def __post_init__(self):
        # Checked as the command line is parsed, so that it ends the run with one error line before any work.
        if self.corpus_file is not None and self.dataset_name is not None:
            raise ValueError("pass either --corpus_file or --dataset_name, not both.")

    @property
    def source(self) -> TableSource | None:
        """Where your corpus is read from; None for a benchmark dataset."""
        if self.corpus_file is None and self.dataset_name is None:
            return None
        return TableSource(self.corpus_file, self.dataset_name, self.dataset_config_name, self.dataset_split)


def load_documents(dataset: str, data_dir: str | None, corpus_args: CorpusFileArguments) -> NamedCorpus:
    """
    Your corpus when `--corpus_file` or `--dataset_name` is given, else the benchmark corpus `dataset`.

    Raises:
        `ValueError` (a [`~modeling_lmindexer.data.user_files.DataFileError`] for a bad file or row) and
        `FileNotFoundError`, each with one line naming the file, line and id.
    """
    source = corpus_args.source
    if source is None:
        return NamedCorpus(load_corpus(dataset, data_dir), dataset)
    return load_corpus_file(
        source, corpus_args.id_column, corpus_args.text_column, corpus_args.category_column, corpus_args.skip_bad_rows
    )


def _flag_value(flag: str) -> str | None:
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else None


def argument_given(parser: HfArgumentParser, name: str) -> bool:
    """
    Whether the command line sets the argument `name` in any spelling the parser accepts (`--name value`,
    `--name=value`, an abbreviation), so that a default chosen from other arguments never overrides the user's value.
    """
    default = parser.get_default(name)
    unset = object()
    parser.set_defaults(**{name: unset})
    try:
        namespace, _ = parser.parse_known_args(sys.argv[1:])
    finally:
        parser.set_defaults(**{name: default})
    return getattr(namespace, name) is not unset


@dataclass
class CollaborativeArguments:
    """Co-occurrence in users' interaction sequences as a second similarity the IDs are clustered on."""

    collaborative_share: float = field(
        default=0.0,
        metadata={
            "help": "Share, in [0, 1), of the cosine similarity the IDs are clustered on that comes from items "
            "co-occurring in the training part of the interaction sequences (the rest from the texts); 0: texts alone."
        },
    )
    collaborative_dimension: int = field(default=64, metadata={"help": "Width of the co-occurrence embeddings."})
    collaborative_window: int = field(
        default=3, metadata={"help": "Items at most this many positions apart in a sequence co-occur."}
    )

    def __post_init__(self):
        if not 0 <= self.collaborative_share < 1:
            raise ValueError(f"--collaborative_share {self.collaborative_share} must lie in [0, 1).")

    def training_embeddings(self, sequences: dict[str, list[str]], item_ids: list[str]) -> np.ndarray:
        """
        [`cooccurrence_embeddings`] of the items of `item_ids` (rows in that order) from the training part of each
        user's sequence: all items but the last two, the validation and test targets of the leave-one-out split,
        so they do not shape the IDs. Items outside `item_ids` (documents held out or left out) are skipped.
        Shape `(len(item_ids), min(--collaborative_dimension, len(item_ids)))`.
        """
        known = set(item_ids)
        return cooccurrence_embeddings(
            [[item for item in items if item in known] for items in training_parts(sequences)],
            item_ids,
            dimension=min(self.collaborative_dimension, len(item_ids)),
            window=self.collaborative_window,
        )


def parse_command_line(parser: HfArgumentParser, output_prefix: str, default_dataset: str) -> tuple:
    """
    The parser's dataclasses from `sys.argv`, `--output_dir` defaulting to `outputs/<output_prefix>-<dataset>` (the
    stem of `--corpus_file` or the name of `--dataset_name` for your own corpus, else of `--interactions_file`); an
    unknown flag or a value the arguments refuse (e.g. a training argument `TrainingArguments` rejects) ends the run
    with one error line instead of a traceback. Without an accelerator the training arguments do not pin memory:
    pinning needs one, and asking for it only makes torch warn on every run.
    """
    if "--output_dir" not in sys.argv:
        corpus_file = _flag_value("--corpus_file") or _flag_value("--interactions_file")
        hub_dataset = _flag_value("--dataset_name")
        if corpus_file is not None or hub_dataset is not None:
            dataset = TableSource(corpus_file, None if corpus_file else hub_dataset).name
        else:
            dataset = _flag_value("--dataset") or default_dataset
        sys.argv += ["--output_dir", f"outputs/{output_prefix}-{dataset}"]
    try:
        # The command line is the whole input: an `<entry point>.args` file, which HfArgumentParser would otherwise
        # read too, would set arguments that the defaults chosen from the command line (`argument_given`) cannot see.
        parsed = parser.parse_args_into_dataclasses(return_remaining_strings=True, look_for_args_file=False)
    except ValueError as error:
        sys.exit(f"error: {str(error).strip()}")
    *dataclasses, unknown = parsed
    if unknown:
        sys.exit(f"error: unrecognized arguments: {' '.join(unknown)} (see --help)")
    if not torch.accelerator.is_available():
        for arguments in dataclasses:
            if isinstance(arguments, TrainingArguments):
                arguments.dataloader_pin_memory = False
    return tuple(dataclasses)


def load_indexer(path: str) -> LMIndexerForSemanticID:
    """
    The indexer of a command's `--indexer` (a local folder or a Hub repository), with its semantic IDs, or one error
    line naming `path`.
    """
    try:
        indexer = LMIndexerForSemanticID.from_pretrained(path)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        if not Path(path).exists():
            # Hub ids and local paths look alike ("org/name", "outputs/run"), and the Hub's error alone reads as if
            # only a repository had been looked for.
            reason = f"no such folder, nor a Hub repository that could be loaded ({reason})"
        sys.exit(f"error: cannot load the indexer '{path}': {reason}")
    if indexer.semantic_ids is None:
        sys.exit(
            f"error: the indexer '{path}' carries no semantic IDs; make them with examples/run_indexing.py "
            "(lmindexer-index)."
        )
    return indexer


def time_budget_callback(args: Any) -> TimeBudgetCallback | None:
    """
    The training budget of a command's `--max_train_minutes`, `--eval_every_minutes` and `--lr_decay_over_budget`
    (None without minutes), or one error line.
    """
    if args.max_train_minutes is None:
        if args.lr_decay_over_budget is not None:
            sys.exit("error: --lr_decay_over_budget decays over the training minutes: add --max_train_minutes.")
        if args.eval_every_minutes is not None:
            sys.exit("error: --eval_every_minutes counts training minutes: add --max_train_minutes.")
        return None
    try:
        return TimeBudgetCallback(args.max_train_minutes, args.eval_every_minutes, args.lr_decay_over_budget)
    except ValueError as error:
        sys.exit(f"error: {error}")


def checkpoint_to_resume(training_args: TrainingArguments, auto_resume: bool) -> str | None:
    """
    The checkpoint a `Trainer` run of a command continues from: `--resume_from_checkpoint` (one error line when it is
    not a checkpoint folder), else, with `auto_resume`, the newest `checkpoint-*` in `--output_dir`, else None. With
    `--save_strategy best` the only checkpoint kept is the best validation point, so a stopped run continues from there
    rather than from where it stopped (a warning says so).
    """
    checkpoint = training_args.resume_from_checkpoint
    if checkpoint:
        if not os.path.isfile(os.path.join(checkpoint, TRAINER_STATE_NAME)):
            sys.exit(
                f"error: --resume_from_checkpoint {checkpoint}: not a checkpoint folder (no {TRAINER_STATE_NAME}); "
                "give a checkpoint-<step> folder of an earlier run with the same arguments."
            )
        return checkpoint
    if not auto_resume or not os.path.isdir(training_args.output_dir):
        return None
    checkpoint = get_last_checkpoint(training_args.output_dir)
    if checkpoint is not None and training_args.save_strategy == SaveStrategy.BEST:
        logger.warning(
            f"Continuing from {checkpoint}, the best validation point so far, not from where the run stopped: "
            "--save_strategy best keeps no later state (--auto_resume False starts over)."
        )
    elif checkpoint is not None:
        logger.info(f"Continuing from {checkpoint} (--auto_resume False starts over).")
    return checkpoint


def configure_logging(training_args: TrainingArguments) -> None:
    """Timestamped logs on stdout, at INFO on the main process and WARNING on the others."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
        level=logging.INFO if training_args.should_log else logging.WARNING,
    )
    transformers.utils.logging.set_verbosity(logging.INFO if training_args.should_log else logging.WARNING)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    for noisy_logger in ("faiss", "transformers.configuration_utils", "transformers.modeling_utils"):
        logging.getLogger(noisy_logger).setLevel(logging.WARNING)


def cached_baseline_semantic_ids(
    scheme: str,
    corpus: Dataset,
    codebook_sizes: list[int],
    training_args: TrainingArguments,
    embed: Callable[[], np.ndarray] | None = None,
    file_label: str | None = None,
) -> SemanticIDs:
    """
    [`baseline_semantic_ids`] of the corpus (`doc_id` and `text` columns), computed once by the main process and read
    by the others from `output_dir/semantic_ids-<file_label>-seed<seed>.json` (`file_label` defaults to the scheme;
    also reused when a stopped run resumes). `embed`, called only when the IDs are computed, returns the embeddings
    to cluster instead of the texts' MiniLM ones (one row per document of the corpus).
    """
    path = Path(training_args.output_dir) / f"semantic_ids-{file_label or scheme}-seed{training_args.seed}.json"
    doc_ids = list(corpus["doc_id"])
    with training_args.main_process_first(desc=f"{scheme} semantic IDs"):
        if path.is_file():
            try:
                semantic_ids = SemanticIDs.load(path)
            except ValueError as error:
                logger.warning(f"Computing the {scheme} IDs again: the saved ones are unreadable ({error}).")
            else:
                learned_sizes = list(semantic_ids.codebook_sizes[: semantic_ids.num_learned_levels])
                if semantic_ids.doc_ids == doc_ids and learned_sizes == list(codebook_sizes):
                    logger.info(f"Reusing the {scheme} IDs of {path}.")
                    return semantic_ids
        semantic_ids = baseline_semantic_ids(
            scheme,
            doc_ids,
            list(corpus["text"]),
            codebook_sizes,
            seed=training_args.seed,
            show_progress_bar=training_args.should_log,
            embeddings=None if embed is None else embed(),
        )
        if training_args.should_save:
            path.parent.mkdir(parents=True, exist_ok=True)
            semantic_ids.save(path)
    return semantic_ids


@dataclass(frozen=True)
class HubPush:
    """Where a run pushes what it saved: one repository, one commit per saved object, after the run's last save."""

    repo_id: str
    token: str | None
    private: bool | None

    @classmethod
    def take_from(cls, training_args: TrainingArguments) -> tuple[TrainingArguments, "HubPush | None"]:
        """
        `training_args` without its push, and the push for the run to do at the end (None without `--push_to_hub`).

        The `Trainer` would push every checkpoint (with the resume state), and at `save_model` overwrite the model's
        card with its own generic one; the run pushes the finished model, its IDs and card, and its tokenizer instead.
        """
        if not training_args.push_to_hub:
            return training_args, None
        push = cls(
            repo_id=training_args.hub_model_id or Path(training_args.output_dir).name,
            token=training_args.hub_token,
            private=training_args.hub_private_repo,
        )
        return replace(training_args, push_to_hub=False), push

    def push(self, *saved_objects) -> None:
        """`push_to_hub` each object (a model, a tokenizer) to the repository."""
        for saved_object in saved_objects:
            saved_object.push_to_hub(self.repo_id, token=self.token, private=self.private)
