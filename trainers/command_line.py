"""
What every example script does the same way: parse its arguments, set up logging, compute (or reuse) baseline IDs,
and push its results once.
"""

import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import transformers
from datasets import Dataset
from transformers import HfArgumentParser, TrainingArguments

from modeling_lmindexer import SemanticIDs
from modeling_lmindexer.baselines import baseline_semantic_ids


logger = logging.getLogger(__name__)


def parse_command_line(parser: HfArgumentParser, output_prefix: str, default_dataset: str) -> tuple:
    """
    The parser's dataclasses from `sys.argv`, `--output_dir` defaulting to `outputs/<output_prefix>-<dataset>`; an
    unknown flag or a value the arguments refuse (e.g. a training argument `TrainingArguments` rejects) ends the run
    with one error line instead of a traceback.
    """
    if "--output_dir" not in sys.argv:
        dataset = sys.argv[sys.argv.index("--dataset") + 1] if "--dataset" in sys.argv else default_dataset
        sys.argv += ["--output_dir", f"outputs/{output_prefix}-{dataset}"]
    try:
        parsed = parser.parse_args_into_dataclasses(return_remaining_strings=True)
    except ValueError as error:
        sys.exit(f"error: {str(error).strip()}")
    *dataclasses, unknown = parsed
    if unknown:
        sys.exit(f"error: unrecognized arguments: {' '.join(unknown)} (see --help)")
    return tuple(dataclasses)


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
    scheme: str, corpus: Dataset, codebook_sizes: list[int], training_args: TrainingArguments
) -> SemanticIDs:
    """
    [`baseline_semantic_ids`] of the corpus (`doc_id` and `text` columns), computed once by the main process and read
    by the others from `output_dir/semantic_ids-<scheme>-seed<seed>.json` (also reused when a stopped run resumes).
    """
    path = Path(training_args.output_dir) / f"semantic_ids-{scheme}-seed{training_args.seed}.json"
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
