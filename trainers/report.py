"""
The run reports, as JSON and readable Markdown: what a run cost and what it reached.

[`IndexingReport`], for a semantic indexing run: [`IndexingReport.build`] computes, from the final [`SemanticIDs`],
the code usage and collisions of every level, the collision rate before and after resolution, and the adjusted mutual
information (AMI) between the IDs and the documents' leaf categories; [`IndexingReport.write`] saves it, with optional
baseline rows (e.g. k-means on sentence embeddings) for comparison, and the cost (time and memory) of every stage.
[`RetrievalReport`], for a downstream retrieval or recommendation run: its metrics next to published ones, and its
cost.
"""

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers.utils import logging

from modeling_lmindexer.semantic_ids import SemanticIDs, code_groups, prefix_collision_rate

from .stages import STAGE_KINDS


logger = logging.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
_MISSING = "n/a"


@dataclass
class StageRecord:
    """
    Cost and outcome of one stage of the progressive indexing run.

    Args:
        name (`str`): Human-readable stage name, e.g. `"level 1 training"`.
        level (`int`): 0-based ID level the stage works on.
        kind (`str`): One of `"train"`, `"kmeans"`, `"assign"`, `"reassign"` (see [`IndexingStage`]).
        wall_time_seconds (`float`): Wall-clock duration.
        peak_memory_mb (`float`): Peak memory at the end of the stage (see [`peak_memory_mb`]).
        losses (`dict[str, float]`): Final value of every loss of the stage.
        code_usage_perplexity (`float`, *optional*): Perplexity of the level's code distribution after the stage.
        codes_used (`int`, *optional*): Number of distinct codes of the level after the stage.
        collision_rate (`float`, *optional*): Fraction of documents whose code prefix up to this level is shared
            (for a re-assignment, their learned codes).
        changed_code_fraction (`list[float]`, *optional*): For a re-assignment, the fraction of documents whose code
            changed at each re-assigned level.
        output_dir_mb (`float`, *optional*): Size of the run's output folder when the stage was saved, its
            checkpoints included (before they are removed).
    """

    name: str
    level: int
    kind: str
    wall_time_seconds: float
    peak_memory_mb: float
    losses: dict[str, float] = field(default_factory=dict)
    code_usage_perplexity: float | None = None
    codes_used: int | None = None
    collision_rate: float | None = None
    changed_code_fraction: list[float] | None = None
    output_dir_mb: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"stage kind {self.kind!r} of {self.name!r} is not one of {STAGE_KINDS}")

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "StageRecord":
        """The record written by [`~StageRecord.to_dict`]."""
        return cls(**data)


def peak_memory_mb() -> float:
    """
    Peak memory of this process so far, in MB.

    Returns:
        `float`: The peak CUDA memory allocated by torch (`torch.cuda.max_memory_allocated`) when CUDA is available,
        else the peak resident set size of the process (`ru_maxrss`).
    """
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in bytes on macOS and in kilobytes on Linux.
    return max_rss / 2**20 if sys.platform == "darwin" else max_rss / 2**10


def directory_size_mb(path: str | os.PathLike) -> float:
    """Size in MB of the file `path`, or of all files under the folder `path` (0 when it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file()) / 2**20


def adjusted_mutual_information(codes: np.ndarray, categories: Sequence[str]) -> float | None:
    """
    Adjusted mutual information between the code tuples (each distinct tuple a cluster) and the categories.

    Args:
        codes (`np.ndarray` of shape `(N,)` or `(N, t)`): Codes of the documents.
        categories (`Sequence[str]` of length `N`): Leaf category of every document, `""` when unknown; documents
            with an unknown category are left out.

    Returns:
        `float` (1 for codes that match the categories exactly, about 0 for random codes), or `None` when fewer than
        2 distinct categories remain.

    Raises:
        `ValueError`: When `codes` and `categories` have different lengths.
        `ImportError`: Without scikit-learn (the `examples` extra).
    """
    labels = code_groups(codes)
    categories = np.asarray(categories, dtype=object)
    if len(categories) != len(labels):
        raise ValueError(f"got {len(labels)} code rows but {len(categories)} categories")
    known = categories != ""
    if len(set(categories[known])) < 2:
        return None
    try:
        from sklearn.metrics import adjusted_mutual_info_score
    except ImportError:
        raise ImportError(
            "The AMI of IDs with categories needs scikit-learn: pip install 'lmindexer[examples]'."
        ) from None
    return float(adjusted_mutual_info_score(categories[known], labels[known]))


def _read_git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


# Read when the process imports this module, i.e. the commit of the code it runs: a commit made while a long job runs
# must not be recorded as the job's.
PROCESS_GIT_COMMIT = _read_git_commit()


def repository_relative(argument: str) -> str:
    """A command argument with this checkout's location removed, so that results name no machine paths."""
    if not Path(argument).is_absolute():
        return argument
    relative = Path(os.path.relpath(argument, REPO_ROOT))
    return str(relative) if not str(relative).startswith("../..") else argument


def machine_info() -> dict:
    """
    Where the run happened.

    Returns:
        `dict` with `platform`, `python`, `torch`, `cpu_count`, `cuda_device` (`None` without CUDA) and `git_commit`
        (the commit of this repository when the process started, `None` outside a git checkout).
    """
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": PROCESS_GIT_COMMIT,
    }


def _level_statistics(semantic_ids: SemanticIDs, level: int) -> dict:
    """Usage and prefix collisions of one 0-based level."""
    codebook_size = semantic_ids.codebook_sizes[level]
    perplexity = semantic_ids.code_usage_perplexity(level)
    return {
        "level": level + 1,
        "kind": "learned" if level < semantic_ids.num_learned_levels else "collision",
        "codebook_size": codebook_size,
        "codes_used": int(np.unique(semantic_ids.codes[:, level]).size),
        "code_usage_perplexity": perplexity,
        "perplexity_ratio": perplexity / codebook_size,
        "prefix_collision_rate": prefix_collision_rate(semantic_ids.codes[:, : level + 1]),
    }


def semantic_id_metrics(semantic_ids: SemanticIDs, categories: Sequence[str]) -> dict:
    """
    The comparison metrics of a semantic ID table, for the learned IDs or a baseline row of the report.

    Args:
        semantic_ids ([`SemanticIDs`]): The IDs.
        categories (`Sequence[str]`): Leaf category of every document in row order, `""` when unknown.

    Returns:
        `dict` with `ami_level_1` and `ami_full_id` (AMI of the first code and of the full learned ID, the collision
        level excluded, `None` without 2 known categories) and `collision_rate_before_resolution`.
    """
    learned_codes = semantic_ids.codes[:, : semantic_ids.num_learned_levels]
    return {
        "ami_level_1": adjusted_mutual_information(learned_codes[:, 0], categories),
        "ami_full_id": adjusted_mutual_information(learned_codes, categories),
        "collision_rate_before_resolution": semantic_ids.collision_rate_before_resolution,
    }


def code_agreement(stored_codes: np.ndarray, predicted_codes: np.ndarray) -> dict:
    """
    How often a model's predicted codes equal the stored ones.

    Args:
        stored_codes (`np.ndarray` of shape `(num_documents, num_levels)`): The stored learned codes.
        predicted_codes (`np.ndarray` of shape `(num_documents, num_levels)`): The codes the model predicts.

    Returns:
        `dict` with `per_level` (the fraction of documents whose code agrees, per level), `full_id` (the fraction
        whose codes agree at every level) and `num_documents`.
    """
    stored_codes, predicted_codes = np.asarray(stored_codes), np.asarray(predicted_codes)
    if stored_codes.shape != predicted_codes.shape or stored_codes.ndim != 2 or len(stored_codes) == 0:
        raise ValueError(
            f"stored and predicted codes must be non-empty arrays of one (num_documents, num_levels) shape, got "
            f"{stored_codes.shape} and {predicted_codes.shape}"
        )
    equal = stored_codes == predicted_codes
    return {
        "per_level": [float(fraction) for fraction in equal.mean(axis=0)],
        "full_id": float(equal.all(axis=1).mean()),
        "num_documents": len(stored_codes),
    }


def new_document_metrics(
    semantic_ids: SemanticIDs, num_indexed: int, categories: Sequence[str], num_samples: int = 20, seed: int = 0
) -> dict[str, dict]:
    """
    ID quality of documents added after training next to that of the indexed ones.

    Args:
        semantic_ids ([`SemanticIDs`]): The indexed documents' rows first, then the added ones (as
            [`SemanticIDs.extend`] orders them).
        num_indexed (`int`): Number of indexed (training) documents.
        categories (`Sequence[str]`): Category of every row, `""` when unknown.
        num_samples (`int`): Random samples of indexed documents of the added set's size, whose mean AMI is a third
            row (AMI depends on the number of documents).
        seed (`int`): Seed of those samples.

    Returns:
        `dict[str, dict]`: Rows `"indexed documents"`, `"new documents"` and `"indexed documents, samples of the new
        set's size"`, each with `documents`, `ami_level_1`, `ami_full_id` (`None` without 2 known categories) and
        `collision_rate` (indexed: sharing learned codes with another indexed document; new: with any document).
    """
    learned_codes = semantic_ids.codes[:, : semantic_ids.num_learned_levels]
    num_new = len(semantic_ids) - num_indexed
    if not 0 < num_indexed < len(semantic_ids):
        raise ValueError(f"num_indexed = {num_indexed} must leave indexed and new rows among {len(semantic_ids)}")
    categories = np.asarray(categories, dtype=object)
    labels = code_groups(learned_codes)
    shared_with_any = np.bincount(labels)[labels] > 1

    def quality(rows: np.ndarray) -> dict:
        return {
            "documents": len(rows),
            "ami_level_1": adjusted_mutual_information(learned_codes[rows, 0], categories[rows]),
            "ami_full_id": adjusted_mutual_information(learned_codes[rows], categories[rows]),
        }

    indexed_rows, new_rows = np.arange(num_indexed), np.arange(num_indexed, len(semantic_ids))
    random = np.random.default_rng(seed)
    sample_amis = [
        adjusted_mutual_information(learned_codes[sample, 0], categories[sample])
        for sample in (random.choice(indexed_rows, num_new, replace=False) for _ in range(num_samples))
        if num_new <= num_indexed
    ]
    known_sample_amis = [ami for ami in sample_amis if ami is not None]
    return {
        "indexed documents": {
            **quality(indexed_rows),
            "collision_rate": prefix_collision_rate(learned_codes[indexed_rows]),
        },
        "new documents": {**quality(new_rows), "collision_rate": float(shared_with_any[new_rows].mean())},
        "indexed documents, samples of the new set's size": {
            "documents": num_new,
            "samples": len(known_sample_amis),
            "ami_level_1": float(np.mean(known_sample_amis)) if known_sample_amis else None,
            "ami_full_id": None,
            "collision_rate": None,
        },
    }


def _to_builtin(value: object) -> object:
    """JSON fallback for numpy scalars and arrays that callers may leave in stage records, baselines or extras."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_report_files(content: dict, markdown: str, output_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """
    Write `content` as `{name}.json` (indent 2, numpy values as lists) and `markdown` as `{name}.md` into
    `output_dir`, creating it if needed.

    Returns:
        `tuple[Path, Path]`: The JSON and Markdown files.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = output_dir / f"{name}.json", output_dir / f"{name}.md"
    serialized = json.dumps(content, indent=2, ensure_ascii=False, default=_to_builtin)
    json_path.write_text(serialized + "\n", encoding="utf-8")
    markdown_path.write_text(markdown, encoding="utf-8")
    logger.info(f"Wrote {json_path} and {markdown_path}.")
    return json_path, markdown_path


def _format_value(value: object) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _format_losses(losses: dict[str, float]) -> str:
    return ", ".join(f"{name}={value:.4f}" for name, value in losses.items()) or _MISSING


def _format_fractions(fractions: Sequence[float] | None) -> str:
    return _MISSING if fractions is None else ", ".join(f"{fraction:.4f}" for fraction in fractions)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join('---' for _ in header)}|"]
    lines.extend(f"| {' | '.join(_format_value(value) for value in row)} |" for row in rows)
    return lines


def learning_curve_table(curve: Sequence[dict], metric_names: Sequence[str]) -> list[str]:
    """The markdown table of a [`~trainers.callbacks.LearningCurveMixin`] curve: one row per validation evaluation
    with its training minutes, step and the `eval_` value of every name of `metric_names` (e.g. `"recall@10"`)."""
    rows = [
        [point["training_minutes"], point["step"], *(point.get(f"eval_{name}") for name in metric_names)]
        for point in curve
    ]
    return markdown_table(["training minutes", "step", *metric_names], rows)


def tested_weights_record(
    step: int, best_of: str | None = None, value: float | None = None, training_minutes: float | None = None
) -> dict:
    """
    What a report's `tested_weights` holds: `{"weights": "last", "step": step}` for the last step's weights, or,
    when the weights of the best validation point of the metric `best_of` were restored, `{"weights": "best
    validation", "step", "training_minutes", "metric", "value"}` of that point.
    """
    if best_of is None:
        return {"weights": "last", "step": step}
    return {
        "weights": "best validation",
        "step": step,
        "training_minutes": training_minutes,
        "metric": best_of,
        "value": value,
    }


def describe_tested_weights(tested: dict | None, brief: bool = False) -> str:
    """
    A [`tested_weights_record`] in words: `"last (step 400)"` or `"best validation recall@10 0.0390 (step 200, 10.0
    training minutes)"`; `brief`, for a table column: `"last"` or `"best at 10.0 min"`, and `"-"` for no record (as
    for zero-shot rows).
    """
    if not tested:
        return "-" if brief else "last"
    minutes = tested.get("training_minutes")
    if tested["weights"] != "best validation":
        return "last" if brief else f"last (step {tested['step']})"
    if brief:
        return f"best at {minutes:.1f} min" if minutes is not None else f"best at step {tested['step']}"
    when = f", {minutes:.1f} training minutes" if minutes is not None else ""
    return f"best validation {tested['metric']} {tested['value']:.4f} (step {tested['step']}{when})"


@dataclass
class IndexingReport:
    """
    Cost and quality of a semantic indexing run.

    Args:
        dataset (`str`): Corpus name.
        num_documents (`int`): Number of indexed documents.
        backbone (`str`): Backbone name or path.
        codebook_sizes (`list[int]`): Codebook size of every level, the collision level included.
        stages (`list[StageRecord]`): Every stage in run order.
        per_level (`list[dict]`): Per level (1-based `level`): `kind` (`"learned"` or `"collision"`),
            `codebook_size`, `codes_used`, `code_usage_perplexity`, `perplexity_ratio` (perplexity / codebook size)
            and `prefix_collision_rate`.
        collision_rate_before_resolution (`float`): Fraction of documents sharing their learned codes.
        collision_rate_after_resolution (`float`): Fraction of documents sharing their full ID (0 after resolution).
        ami_level_1 (`float`, *optional*): AMI between the first code and the categories.
        ami_full_id (`float`, *optional*): AMI between the full learned ID (collision level excluded) and the
            categories.
        total_wall_time_seconds (`float`): Sum of the stage wall times.
        baselines (`dict[str, dict]`): Rows to compare with, e.g. `{"kmeans on sentence embeddings": {"ami_level_1":
            ..., "ami_full_id": ..., "collision_rate_before_resolution": ...}}` (see [`semantic_id_metrics`]).
        extra (`dict`): Anything else worth recording: machine, commit, seed, ...
        prediction_agreement (`dict`, *optional*): How often the saved model, reloaded, predicts the stored learned
            codes of every document (see [`code_agreement`]).
        new_documents (`dict`, *optional*): Documents added after training with
            [`~LMIndexerForSemanticID.add_documents`]: `rows` (see [`new_document_metrics`]) and the cost.
        disk_use_mb (`dict`, *optional*): Size of the output folder: `peak` (the largest at a stage's save, stage
            checkpoints included), `final` (after the run) and `model` (the saved weights).
        skipped_rows (`int`): Bad rows of your corpus file left out with `--skip_bad_rows`.
    """

    dataset: str
    num_documents: int
    backbone: str
    codebook_sizes: list[int]
    stages: list[StageRecord]
    per_level: list[dict]
    collision_rate_before_resolution: float
    collision_rate_after_resolution: float
    ami_level_1: float | None
    ami_full_id: float | None
    total_wall_time_seconds: float
    baselines: dict[str, dict] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    prediction_agreement: dict | None = None
    new_documents: dict | None = None
    disk_use_mb: dict | None = None
    skipped_rows: int = 0

    @classmethod
    def build(
        cls,
        dataset: str,
        backbone: str,
        semantic_ids: SemanticIDs,
        categories: Sequence[str],
        stages: Sequence[StageRecord],
        baselines: dict[str, dict] | None = None,
        extra: dict | None = None,
    ) -> "IndexingReport":
        """
        Compute the report from the final IDs.

        Args:
            dataset (`str`): Corpus name.
            backbone (`str`): Backbone name or path.
            semantic_ids ([`SemanticIDs`]): The final IDs, collision level included.
            categories (`Sequence[str]`): Leaf category of every document in row order, `""` when unknown.
            stages (`Sequence[StageRecord]`): Every stage in run order.
            baselines (`dict[str, dict]`, *optional*): Comparison rows (see [`semantic_id_metrics`]).
            extra (`dict`, *optional*): Anything else worth recording (see [`machine_info`]).

        Returns:
            [`IndexingReport`].
        """
        metrics = semantic_id_metrics(semantic_ids, categories)
        return cls(
            dataset=dataset,
            num_documents=len(semantic_ids),
            backbone=backbone,
            codebook_sizes=list(semantic_ids.codebook_sizes),
            stages=list(stages),
            per_level=[_level_statistics(semantic_ids, level) for level in range(semantic_ids.num_levels)],
            collision_rate_before_resolution=metrics["collision_rate_before_resolution"],
            collision_rate_after_resolution=prefix_collision_rate(semantic_ids.codes),
            ami_level_1=metrics["ami_level_1"],
            ami_full_id=metrics["ami_full_id"],
            total_wall_time_seconds=float(sum(stage.wall_time_seconds for stage in stages)),
            baselines=dict(baselines or {}),
            extra=dict(extra or {}),
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field, the stages as dicts."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "IndexingReport":
        """The report written by [`~IndexingReport.to_dict`] (or read back from its JSON file)."""
        return cls(**{**data, "stages": [StageRecord.from_dict(stage) for stage in data["stages"]]})

    def to_markdown(self) -> str:
        """The readable report: summary, per-level, per-stage and (with baselines) comparison tables."""
        sections = [
            [f"# Indexing report: {self.dataset}"],
            ["## Summary", "", *self._summary_table()],
            ["## Levels", "", *self._level_table()],
            ["## Stages", "", *self._stage_table()],
        ]
        if self.baselines:
            sections.append(["## Comparison with baselines", "", *self._comparison_table()])
        if self.new_documents:
            sections.append(["## New documents (add_documents, no retraining)", "", *self._new_document_table()])
        return "\n\n".join("\n".join(section) for section in sections) + "\n"

    def _summary_table(self) -> list[str]:
        rows = [
            ("documents", self.num_documents),
            *(
                [("bad rows of the corpus file left out (--skip_bad_rows)", self.skipped_rows)]
                if self.skipped_rows
                else []
            ),
            ("backbone", f"`{self.backbone}`"),
            ("levels", self._levels_description()),
            ("codebook sizes", ", ".join(map(str, self.codebook_sizes))),
            ("collision rate before resolution", self.collision_rate_before_resolution),
            ("collision rate after resolution", self.collision_rate_after_resolution),
            ("AMI level 1", self.ami_level_1),
            ("AMI full ID", self.ami_full_id),
            ("stored IDs = predicted by the saved model (full learned ID)", self._agreement("full_id")),
            ("total wall time (s)", self.total_wall_time_seconds),
            *((f"output folder, {name} (MB)", value) for name, value in (self.disk_use_mb or {}).items()),
        ]
        return markdown_table(["metric", "value"], rows)

    def _agreement(self, key: str) -> object:
        return None if self.prediction_agreement is None else self.prediction_agreement[key]

    def _levels_description(self) -> str:
        num_learned_levels = sum(row["kind"] == "learned" for row in self.per_level)
        if num_learned_levels == len(self.per_level):
            return f"{num_learned_levels} learned"
        return f"{len(self.per_level)} ({num_learned_levels} learned + 1 collision)"

    def _level_table(self) -> list[str]:
        header = [
            "level",
            "kind",
            "codebook size",
            "codes used",
            "usage perplexity",
            "perplexity / size",
            "collision",
            "stored = predicted",
        ]
        keys = [
            "level",
            "kind",
            "codebook_size",
            "codes_used",
            "code_usage_perplexity",
            "perplexity_ratio",
            "prefix_collision_rate",
        ]
        agreement = self._agreement("per_level") or []
        rows = [
            [*(row[key] for key in keys), agreement[position] if position < len(agreement) else None]
            for position, row in enumerate(self.per_level)
        ]
        return markdown_table(header, rows)

    def _new_document_table(self) -> list[str]:
        details = {key: value for key, value in self.new_documents.items() if key != "rows"}
        lines = [", ".join(f"{key}: {_format_value(value)}" for key, value in details.items()), ""]
        header = ["documents", "count", "AMI level 1", "AMI full ID", "collision rate"]
        keys = ["documents", "ami_level_1", "ami_full_id", "collision_rate"]
        rows = [[name, *(metrics.get(key) for key in keys)] for name, metrics in self.new_documents["rows"].items()]
        return lines + markdown_table(header, rows)

    def _stage_table(self) -> list[str]:
        header = [
            "stage",
            "level",
            "kind",
            "wall time (s)",
            "peak memory (MB)",
            "final losses",
            "usage perplexity",
            "collision rate",
            "codes changed",
        ]
        rows = [
            [
                stage.name,
                stage.level + 1,
                stage.kind,
                stage.wall_time_seconds,
                stage.peak_memory_mb,
                _format_losses(stage.losses),
                stage.code_usage_perplexity,
                stage.collision_rate,
                _format_fractions(stage.changed_code_fraction),
            ]
            for stage in self.stages
        ]
        return markdown_table(header, rows)

    def _comparison_table(self) -> list[str]:
        header = ["IDs", "AMI level 1", "AMI full ID", "collision rate before resolution"]
        keys = ["ami_level_1", "ami_full_id", "collision_rate_before_resolution"]
        learned = {key: getattr(self, key) for key in keys}
        rows = [
            [name, *(metrics.get(key) for key in keys)]
            for name, metrics in {f"learned ({self.backbone})": learned, **self.baselines}.items()
        ]
        return markdown_table(header, rows)

    def write(self, output_dir: str | os.PathLike, name: str = "indexing_report") -> tuple[Path, Path]:
        """
        Write `{name}.json` (indent 2) and `{name}.md` into `output_dir`, creating it if needed.

        Args:
            output_dir (`str` or `os.PathLike`): Output folder.
            name (`str`): File name without extension.

        Returns:
            `tuple[Path, Path]`: The JSON and Markdown files.
        """
        return write_report_files(self.to_dict(), self.to_markdown(), output_dir, name)


@dataclass
class RetrievalReport:
    """
    What a downstream retrieval or recommendation run reached and cost.

    Args:
        dataset (`str`): The dataset.
        task_type (`str`): `"sequential recommendation"`, `"document retrieval"` or the product-search substitute
            label.
        split_description (`str`): How training and evaluation queries were made.
        labels (`list[str]`): Notes shown at the top of every output (substitutes, pseudo-queries, time order).
        id_scheme (`str`): Where the IDs come from (`"LMIndexer (<path>)"`, `"random"`, ...).
        backbone (`str`): The retriever's backbone.
        num_documents (`int`): Indexed documents (IDs the retriever can generate).
        codebook_sizes (`list[int]`): Codebook size of every ID level, the collision level included.
        k_values (`list[int]`): The cut-offs K.
        num_beams (`int`): Beam width of the constrained beam search.
        num_test_queries (`int`): Evaluated queries.
        num_dropped_test_queries (`int`): Test queries left out because no relevant document has an ID.
        training_examples (`dict[str, int]`): Training pairs by kind.
        metrics (`dict[str, float]`): Test metrics, e.g. `{"recall@10": 0.06}`.
        published (`dict[str, dict[str, float]]`): Published results to compare with, by system.
        wall_time_seconds (`dict[str, float]`): `training`, `evaluation` and `total`.
        stopped_by_time_budget (`bool`): Whether training was cut by the time budget.
        training (`dict`): Epochs, steps, learning rate, batch size, budget, ...
        machine (`dict`): Where the run happened (see [`machine_info`]).
        curve (`list[dict]`): Validation metrics against training minutes (`LMIndexerRetrieverTrainer.curve`), empty
            without validation queries.
        tested_weights (`dict`, *optional*): Which weights the test metrics are of (see
            [`~trainers.callbacks.LearningCurveMixin.tested_weights`]); None: the last step's.
    """

    dataset: str
    task_type: str
    split_description: str
    labels: list[str]
    id_scheme: str
    backbone: str
    num_documents: int
    codebook_sizes: list[int]
    k_values: list[int]
    num_beams: int
    num_test_queries: int
    num_dropped_test_queries: int
    training_examples: dict[str, int]
    metrics: dict[str, float]
    published: dict[str, dict[str, float]] = field(default_factory=dict)
    wall_time_seconds: dict[str, float] = field(default_factory=dict)
    stopped_by_time_budget: bool = False
    training: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    curve: list[dict] = field(default_factory=list)
    tested_weights: dict | None = None

    def to_dict(self) -> dict:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    def _metric_names(self) -> list[str]:
        return [f"{name}@{k}" for name in ("recall", "ndcg", "mrr") for k in self.k_values]

    def to_markdown(self) -> str:
        """The readable report: the labels, a summary, and our metrics next to any published ones."""
        names = self._metric_names()
        rows = [[f"{self.id_scheme} IDs (this run)", *(self.metrics.get(name) for name in names)]]
        rows += [[system, *(values.get(name) for name in names)] for system, values in self.published.items()]
        summary = {
            "task": self.task_type,
            "split": self.split_description,
            "IDs": self.id_scheme,
            "backbone": self.backbone,
            "indexed documents": self.num_documents,
            "codebook sizes": ", ".join(str(size) for size in self.codebook_sizes),
            "test queries": self.num_test_queries,
            "test queries dropped (no relevant document with an ID)": self.num_dropped_test_queries,
            "training examples": ", ".join(f"{kind}: {count}" for kind, count in self.training_examples.items()),
            "decoding": f"beam search constrained to the indexed IDs, {self.num_beams} beams",
            "wall time (s)": ", ".join(f"{name}: {value:.1f}" for name, value in self.wall_time_seconds.items()),
            "stopped by the time budget": self.stopped_by_time_budget,
            "tested weights": describe_tested_weights(self.tested_weights),
            **{name: f"{value:g}" if isinstance(value, float) else value for name, value in self.training.items()},
            **{name: value for name, value in self.machine.items()},
        }
        sections = [
            [f"# Retrieval report: {self.dataset} ({self.task_type})"],
            *([f"> **{label}**"] for label in self.labels),
            ["## Metrics", "", *markdown_table(["system", *names], rows)],
            ["## Run", "", *markdown_table(["field", "value"], list(summary.items()))],
        ]
        if self.curve:
            sections.append(["## Validation curve", "", *learning_curve_table(self.curve, names)])
        return "\n\n".join("\n".join(section) for section in sections) + "\n"

    def write(self, output_dir: str | os.PathLike, name: str = "retrieval_report") -> tuple[Path, Path]:
        """
        Write `{name}.json` (indent 2) and `{name}.md` into `output_dir`, creating it if needed.

        Returns:
            `tuple[Path, Path]`: The JSON and Markdown files.
        """
        return write_report_files(self.to_dict(), self.to_markdown(), output_dir, name)


__all__ = [
    "IndexingReport",
    "RetrievalReport",
    "StageRecord",
    "adjusted_mutual_information",
    "code_agreement",
    "describe_tested_weights",
    "directory_size_mb",
    "learning_curve_table",
    "machine_info",
    "new_document_metrics",
    "peak_memory_mb",
    "prefix_collision_rate",
    "repository_relative",
    "semantic_id_metrics",
    "tested_weights_record",
]
