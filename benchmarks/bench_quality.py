#!/usr/bin/env python
"""Learned IDs against two-stage IDs, side by side: `python benchmarks/bench_quality.py --task rec --dataset beauty`.

For every ID scheme (`random`, `kmeans`: DSI's hierarchical k-means on MiniLM sentence embeddings, `rq_kmeans`:
residual k-means on the same embeddings, `lmindexer`: the IDs of a trained `LMIndexerForSemanticID`, `--indexer`) it
trains the same generative model with the same budget (`--budget_minutes` of training, `--seed`) by running the task's
example script, then evaluates it on the test split with beam search constrained to the IDs:

- `--task rec` (Beauty, Office, MovieLens-1M): `examples/run_recommendation.py`, the decoder-only
  `LMIndexerRecommender` trained on every position of the users' sequences; `lmindexer_codebooks` is the LMIndexer IDs
  with the ID-token embeddings started from the indexer's codebooks. Peer recommenders from `cornac` (`--peers`:
  SASRec with its tuned config, SASRec with the full-softmax loss, TIGER) train on the same split for the same
  training minutes (`benchmarks/peer_recommenders.py`), and popularity is the floor. With `--eval_every_minutes`,
  every row records validation Recall@10 against training minutes, drawn in one plot.
- `--task retrieval` and `--task product_search` (the product-search SUBSTITUTE on Beauty/Office):
  `examples/run_retrieval.py`; `lmindexer` starts the retriever from its indexer as in the paper (fine-tuned at the
  script's learning rate for that start, 1e-4, the other rows at 5e-4), and `lmindexer_ids` puts the same IDs on a
  retriever started from the pretrained backbone like the baselines, which compares the IDs alone. BM25 (`bm25s`)
  and dense retrieval with the MiniLM encoder (exact cosine search, faiss) are the references.
  With an indexer, the zero-shot rows rank the same test queries with the retriever built from it and not fine-tuned
  (`LMIndexerRetriever.from_indexer`), at every beam width of `--zero_shot_beams` (20 50 100; none: no such rows);
  `--zero_shot_renormalized` adds the same rows with `renormalize_logits=True` (each level's code probability
  renormalised over the codes the IDs' prefix tree allows after the decoded prefix).

`--keep_best_validation_state` (with `--eval_every_minutes`) tests every trained row, the peers included, with the
weights of its best validation point (Recall@10) instead of its last; the table's `tested weights` column says which.

`--variants NAME=FLAGS ...` compares training choices side by side: every scheme and seed is trained once per variant
with the variant's script flags (e.g. `queries_only='--training_pairs query pseudo-query'`); with
`--eval_every_minutes` every run records validation Recall@10 against training minutes (retrieval: on
`--validation_queries N` training queries the script holds out, never the test split), drawn in one plot.

Published numbers (TIGER on Beauty ...) are shown where known, labelled as published.

Writes `--results_dir/quality_<task>_<dataset>.json` (stem: `--results_name`) + `.md` + two plots (`.png`,
embedded in the markdown): one row per ID scheme, variant and seed with the item-level metrics, the ID quality (AMI
of level-1 codes and of full IDs with the leaf category, collision rate before resolution, code-usage perplexity per
level), the training wall time and throughput, the milliseconds per test query on this machine and the commit its run
was trained at, plus the zero-shot, peer, reference and published rows (the references with their milliseconds per
query too), the commit the script started at (the markdown names any row trained at another commit: kept by
`--resume` or `--keep_rows_from`, or started after a commit made meanwhile), the machine, the seeds and the total
wall time. With several `--seeds`, a spread table gives each scheme's mean, minimum and maximum.

Every run's files stay in `--output_dir/<scheme>[-<variant>]-seed<seed>`; `--resume` keeps the finished runs there
(and the example scripts continue a stopped run from its last checkpoint, counting the training time it already spent
against `--budget_minutes`), so a comparison longer than a session continues where it stopped with equal budgets.
Where those folders are gone (a fresh checkout), `--keep_rows_from <results JSON>` keeps the rows an earlier run of
the same command wrote (e.g. the committed file) for the seeds it has and trains only the others; a row trained with an
indexer's IDs is kept only when `--indexer` (re-made) gives the same IDs.
Other arguments are passed to the example script unchanged, e.g. `--max_users 200` or
`--per_device_train_batch_size 64`.
"""

import argparse
import importlib.util
import json
import logging
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from transformers import AutoTokenizer


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from modeling_lmindexer import LMIndexerForSemanticID, LMIndexerRetriever, SemanticIDs  # noqa: E402
from modeling_lmindexer.collaborative import consecutive_prefix_sharing  # noqa: E402
from modeling_lmindexer.data import load_corpus  # noqa: E402
from modeling_lmindexer.data.recommendation import (  # noqa: E402
    PUBLISHED_RECOMMENDATION_RESULTS,
    leave_one_out_split,
    load_sequences,
    training_parts,
)
from modeling_lmindexer.data.retrieval_tasks import (  # noqa: E402
    EvaluationQuery,
    RetrievalTask,
    load_recommendation_task,
    load_retrieval_task,
)
from modeling_lmindexer.hub_utils import SEMANTIC_IDS_NAME  # noqa: E402
from modeling_lmindexer.metrics import compute_retrieval_metrics  # noqa: E402
from trainers.commands.common import BEST_VALIDATION_STATE_FLAGS  # noqa: E402
from trainers.commands.recommend import SAVED_ID_SCHEMES, id_files_by_scheme  # noqa: E402
from trainers.commands.retrieve import RetrievalArguments  # noqa: E402
from trainers.report import describe_tested_weights, machine_info, semantic_id_metrics  # noqa: E402


logger = logging.getLogger(__name__)

SCHEME_NAMES = {
    "random": "random IDs",
    "kmeans": "hierarchical k-means (DSI) on MiniLM embeddings",
    "rq_kmeans": "residual k-means on MiniLM embeddings",
    "lmindexer": "LMIndexer (learned)",
    "lmindexer_codebooks": "LMIndexer (learned), ID-token embeddings from its codebooks",
    "lmindexer_ids": "LMIndexer IDs, retriever from the pretrained backbone as the baselines",
}
ID_SCHEMES = tuple(SCHEME_NAMES)
RETRIEVAL_SCHEMES = ("random", "kmeans", "rq_kmeans", "lmindexer", "lmindexer_ids")
# The schemes that train with the IDs of `--indexer` (unless `--semantic_ids_file` gives them).
INDEXER_SCHEMES = ("lmindexer", "lmindexer_codebooks", "lmindexer_ids")
TASKS = {
    "rec": {
        "script": "run_recommendation.py",
        "report": "recommendation_report.json",
        "datasets": ("beauty", "office", "movielens"),
        "k_values": (5, 10),
        "schemes": ("random", "kmeans", "rq_kmeans", "lmindexer", "lmindexer_codebooks"),
    },
    "retrieval": {
        "script": "run_retrieval.py",
        "report": "retrieval_report.json",
        "datasets": ("scifact", "msmarco5k", "cranfield", "cacm"),
        "k_values": (1, 10),
        "schemes": RETRIEVAL_SCHEMES,
    },
    "product_search": {
        "script": "run_retrieval.py",
        "report": "retrieval_report.json",
        "datasets": ("beauty", "office"),
        "k_values": (1, 10),
        "schemes": RETRIEVAL_SCHEMES,
    },
}
# Peer recommenders of `--task rec` (cornac 3.0.1, benchmarks/peer_recommenders.py): the model and its config over
# the module's defaults. SASRec's tuned config uses cornac's sampled BCE; `sasrec_ce` its full-softmax loss.
PEERS = {
    "sasrec": ("sasrec", {}),
    "sasrec_ce": ("sasrec", {"loss": "ce"}),
    "tiger": ("tiger", {}),
}
PEER_NAMES = {
    "sasrec": "SASRec (cornac), tuned config (loss bce)",
    "sasrec_ce": "SASRec (cornac), tuned config with loss ce",
    "tiger": "TIGER (cornac), residual k-means IDs",
}
# SASRec reads the last 50 items of a history (its tuned max_len); TIGER the last 20 (cornac's default).
PEER_HISTORY_LENGTH = {"sasrec": 50, "tiger": 20}
# The table's metric columns per task.
METRIC_COLUMNS = {
    "rec": ("recall@5", "recall@10", "ndcg@5", "ndcg@10"),
    "retrieval": ("recall@1", "recall@10", "mrr@10", "ndcg@10"),
    "product_search": ("recall@1", "recall@10", "mrr@10", "ndcg@10"),
}
PUBLISHED = {("rec", name): results for name, results in PUBLISHED_RECOMMENDATION_RESULTS.items()}
PREFIX_SHARING_COLUMN = "consecutive training items sharing 1, 2, ... codes"
ZERO_SHOT_NAME = "LMIndexer, no fine-tuning (zero-shot), {num_beams} beams"
ZERO_SHOT_RENORMALIZED_NAME = ZERO_SHOT_NAME + ", scores renormalised over the valid codes"
DEFAULT_ZERO_SHOT_BEAMS = [20, 50, 100]
PRODUCT_SEARCH_LABEL = (
    "SUBSTITUTE for product search: Amazon ESCI is not available; queries are an item's leaf category and brand."
)


def parse_arguments(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=tuple(TASKS), default="rec")
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--data_dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument(
        "--schemes", nargs="+", choices=ID_SCHEMES, default=None, help="Default: every scheme of the task."
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=tuple(PEERS),
        default=None,
        help="rec: cornac peer recommenders trained for the same minutes (default sasrec sasrec_ce).",
    )
    parser.add_argument(
        "--eval_every_minutes",
        type=float,
        default=None,
        help="Validation Recall@10 at this interval of training minutes, for every row's curve (retrieval: with "
        "--validation_queries N, passed to the script, which holds N training queries out for it).",
    )
    parser.add_argument(
        "--keep_best_validation_state",
        action="store_true",
        help="With --eval_every_minutes: test every trained row (peers too) with the weights of its best validation "
        "point (Recall@10; the scripts' evaluation before training included) instead of its last (the scripts' "
        "--save_strategy best --load_best_model_at_end True --metric_for_best_model recall@10).",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        metavar="NAME=FLAGS",
        help="Training choices compared side by side: every scheme and seed is trained once per variant, with the "
        "variant's script flags added, e.g. all= queries_only='--training_pairs query pseudo-query' "
        "lr_1e-3='--learning_rate 1e-3' (an empty FLAGS is the script's defaults). Default: one run per scheme.",
    )
    parser.add_argument(
        "--results_name",
        default=None,
        help="Stem of the result files (default quality_<task>_<dataset>), e.g. to keep a comparison of variants "
        "beside the main table.",
    )
    parser.add_argument(
        "--num_validation_users",
        type=int,
        default=5000,
        help="rec: validation users of every curve point, a fixed random sample (the final test ranking uses all "
        "test users).",
    )
    parser.add_argument(
        "--indexer",
        default=None,
        help="Folder of the trained LMIndexerForSemanticID of the dataset (needed for the lmindexer rows; default "
        "outputs/bench-<dataset>, what benchmarks/bench_indexing.py writes).",
    )
    parser.add_argument(
        "--semantic_ids_file",
        nargs="+",
        default=[],
        metavar="SCHEME=FILE",
        help="rec: a scheme's IDs read from a saved SemanticIDs table (an indexer's semantic_ids.json, or IDs made on "
        f"another machine) instead of made here; run_recommendation.py's --semantic_ids_file. SCHEME: "
        f"{', '.join(SAVED_ID_SCHEMES)} (lmindexer then needs no --indexer).",
    )
    parser.add_argument(
        "--zero_shot_beams",
        type=int,
        nargs="*",
        default=None,
        help="retrieval with an indexer: beam widths of the zero-shot rows, the retriever built from the indexer "
        f"with no fine-tuning (default {' '.join(map(str, DEFAULT_ZERO_SHOT_BEAMS))}; no values: no such rows).",
    )
    parser.add_argument(
        "--zero_shot_renormalized",
        action="store_true",
        help="retrieval with an indexer: also rank every zero-shot width with renormalize_logits=True, each level's "
        "code probability renormalised over the codes the IDs' prefix tree allows after the decoded prefix.",
    )
    parser.add_argument(
        "--retriever_config",
        default=None,
        help="retrieval: train the retriever of every row but lmindexer (which starts from its indexer) from scratch "
        "with this seq2seq config: a model type (t5) or a config's Hub id or folder; run_retrieval.py's "
        "--backbone_config. (rec trains its decoder from scratch always: pass --decoder_config_overrides.)",
    )
    parser.add_argument(
        "--retriever_config_overrides",
        default=None,
        help="Changes to --retriever_config, e.g. 'num_layers=4,d_model=128,d_ff=1024,num_heads=6,d_kv=64' (TIGER).",
    )
    parser.add_argument("--budget_minutes", type=float, default=20.0, help="Training minutes of every scheme.")
    parser.add_argument("--num_train_epochs", type=float, default=100.0, help="Epoch cap; the budget usually binds.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--output_dir", default=None, help="Runs' folders (default outputs/quality-<task>-<dataset>).")
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--resume", action="store_true", help="Keep finished runs and continue stopped ones.")
    parser.add_argument(
        "--keep_rows_from",
        type=Path,
        default=None,
        help="A results JSON of an earlier run of this same command: its rows of the asked seeds are kept instead of "
        "trained again (rows with an indexer's IDs only when --indexer gives the same IDs: equal ID quality).",
    )
    parser.add_argument("--max_users", type=int, default=None, help="rec: only the first N users (quick runs).")
    parser.add_argument("--max_documents", type=int, default=None, help="retrieval: index only N documents.")
    parser.add_argument("--max_test_queries", type=int, default=None, help="retrieval: evaluate N test queries.")
    args, script_arguments = parser.parse_known_args(argv)
    if args.dataset not in TASKS[args.task]["datasets"]:
        parser.error(f"--task {args.task} takes --dataset {' | '.join(TASKS[args.task]['datasets'])}")
    if args.budget_minutes <= 0:
        parser.error(f"--budget_minutes must be positive, got {args.budget_minutes}")
    if args.eval_every_minutes is not None and args.eval_every_minutes <= 0:
        parser.error(f"--eval_every_minutes must be positive, got {args.eval_every_minutes}")
    if args.keep_best_validation_state and args.eval_every_minutes is None:
        parser.error("--keep_best_validation_state picks among validation points: pass --eval_every_minutes too")
    args.variants = parse_variants(parser, args.variants)
    if args.eval_every_minutes is not None and args.task != "rec":
        missing = [
            name or "default"
            for name, flags in args.variants
            if "--validation_queries" not in script_arguments + flags
        ]
        if missing:
            parser.error(
                "--eval_every_minutes in retrieval ranks validation queries held out of the training queries: pass "
                f"--validation_queries N (missing for {', '.join(missing)})"
            )
    task = TASKS[args.task]
    args.schemes = list(task["schemes"]) if args.schemes is None else args.schemes
    other_task_schemes = [scheme for scheme in args.schemes if scheme not in task["schemes"]]
    if other_task_schemes:
        parser.error(f"--task {args.task} takes --schemes {' | '.join(task['schemes'])}, not {other_task_schemes}")
    if args.task == "rec":
        args.peers = ["sasrec", "sasrec_ce"] if args.peers is None else args.peers
        if args.retriever_config is not None:
            parser.error("--retriever_config is for retrieval; rec takes --decoder_config_overrides (passed through)")
    elif args.peers:
        parser.error("--peers are recommenders: they need --task rec")
    else:
        args.peers = []
    if args.task == "rec" and args.zero_shot_beams:
        parser.error("--zero_shot_beams is for the retrieval tasks: rec has no retriever built from the indexer")
    if args.zero_shot_beams is None:
        args.zero_shot_beams = [] if args.task == "rec" else list(DEFAULT_ZERO_SHOT_BEAMS)
    narrow = [width for width in args.zero_shot_beams if width < max(task["k_values"])]
    if narrow:
        parser.error(f"--zero_shot_beams must be at least the largest cut-off {max(task['k_values'])}, got {narrow}")
    try:
        args.id_files = id_files_by_scheme(args.semantic_ids_file)
    except ValueError as error:
        parser.error(f"--semantic_ids_file {error}")
    if args.id_files and args.task != "rec":
        parser.error("--semantic_ids_file is for --task rec (a retriever of saved IDs has no indexer to start from)")
    unused_files = sorted(set(args.id_files) - set(args.schemes))
    if unused_files:
        parser.error(f"--semantic_ids_file names schemes that are not in --schemes: {', '.join(unused_files)}")
    if set(INDEXER_SCHEMES) & set(args.schemes) - set(args.id_files):
        args.indexer = args.indexer or str(REPO_ROOT / "outputs" / f"bench-{args.dataset}")
        if not (Path(args.indexer) / "config.json").is_file():
            parser.error(
                f"the lmindexer row needs a trained indexer of '{args.dataset}', and '{args.indexer}' holds none: "
                f"run benchmarks/bench_indexing.py --dataset {args.dataset}, pass --indexer, or leave lmindexer out "
                "of --schemes"
            )
    else:
        args.zero_shot_beams = []  # without an lmindexer row there is no indexer to build them from
    if args.zero_shot_renormalized and not args.zero_shot_beams:
        parser.error(
            "--zero_shot_renormalized scores the zero-shot rows: it needs a retrieval task, --zero_shot_beams "
            "widths and the lmindexer row's indexer"
        )
    # The zero-shot rows truncate queries as the script's retrievers do (its --max_query_length, passed through).
    script_flags = argparse.ArgumentParser(add_help=False)
    script_flags.add_argument("--max_query_length", type=int, default=RetrievalArguments.max_query_length)
    args.max_query_length = script_flags.parse_known_args(script_arguments)[0].max_query_length
    args.output_dir = Path(args.output_dir or REPO_ROOT / "outputs" / f"quality-{args.task}-{args.dataset}")
    return args, script_arguments


def parse_variants(parser: argparse.ArgumentParser, values: list[str] | None) -> list[tuple[str, list[str]]]:
    """`--variants NAME=FLAGS ...` as `(name, script flags)` pairs; no variants is one unnamed run with no flags."""
    if values is None:
        return [("", [])]
    variants = []
    for value in values:
        name, separator, flags = value.partition("=")
        if not separator or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            parser.error(f"--variants takes NAME=FLAGS with a name of letters, digits, '_', '.' or '-', got '{value}'")
        variants.append((name, shlex.split(flags)))
    names = [name for name, _ in variants]
    if len(set(names)) < len(names):
        parser.error(f"--variants names must differ, got {names}")
    return variants


def run_name(scheme: str, variant: str) -> str:
    """The key of a scheme's run under a variant: its folder stem and its row's `scheme`."""
    return f"{scheme}-{variant}" if variant else scheme


def script_command(args: argparse.Namespace, scheme: str, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    """The example-script command that trains and evaluates the model (retriever or recommender) of one scheme and
    seed."""
    task = TASKS[args.task]
    command = [
        sys.executable,
        str(REPO_ROOT / "examples" / task["script"]),
        "--dataset",
        args.dataset,
        "--data_dir",
        args.data_dir,
        "--output_dir",
        str(run_dir),
        "--seed",
        str(seed),
        "--max_train_minutes",
        str(args.budget_minutes),
        "--num_train_epochs",
        str(args.num_train_epochs),
        "--k_values",
        *(str(k) for k in task["k_values"]),
    ]
    if scheme in args.id_files:
        command += ["--semantic_ids_file", str(args.id_files[scheme])]
        command += [] if scheme == "lmindexer" else ["--id_scheme", scheme]
    elif scheme == "lmindexer":
        command += ["--indexer", args.indexer]
    elif scheme == "lmindexer_codebooks":
        command += ["--indexer", args.indexer, "--init_from_codebooks", "True"]
    elif scheme == "lmindexer_ids":
        command += ["--indexer", args.indexer, "--retriever_init", "backbone"]
    else:
        command += ["--id_scheme", scheme]
    if scheme != "lmindexer" and args.retriever_config is not None:
        command += ["--backbone_config", args.retriever_config]
        if args.retriever_config_overrides is not None:
            command += ["--backbone_config_overrides", args.retriever_config_overrides]
    if args.task == "rec" and args.max_users is not None:
        command += ["--max_users", str(args.max_users)]
    if args.eval_every_minutes is not None:
        # The curve starts with the model before training (for lmindexer: its indexer's zero-shot quality).
        command += ["--eval_every_minutes", str(args.eval_every_minutes), "--eval_on_start", "True"]
    if args.keep_best_validation_state:
        command += BEST_VALIDATION_STATE_FLAGS
    if args.task == "rec":
        command += ["--num_validation_users", str(args.num_validation_users)]
    else:
        for name in ("max_documents", "max_test_queries"):
            if getattr(args, name) is not None:
                command += [f"--{name}", str(getattr(args, name))]
    return command + extra


# Flags that choose which rows a run trains or where its files go, not how a row is trained.
ROW_SELECTION_FLAGS = {"--seeds": "+", "--resume": 0, "--keep_rows_from": 1}


def training_command(command: str) -> list[str]:
    """A bench command's words without the flags of `ROW_SELECTION_FLAGS` and their values."""
    words, kept = shlex.split(command), []
    skipping = False
    for word in words:
        if word in ROW_SELECTION_FLAGS:
            skipping = ROW_SELECTION_FLAGS[word] != 0
            continue
        if skipping and not word.startswith("--"):
            continue
        skipping = False
        kept.append(word)
    return kept


def kept_rows(
    args: argparse.Namespace,
    command: str,
    category_of: dict[str, str],
    training_sequences: list[list[str]] | None,
) -> dict[tuple[str, int], dict]:
    """
    `--keep_rows_from`'s rows of the asked seeds, by (row scheme, seed), after checking that they come from the same
    command (up to the seeds and the resume flags) and, for a row trained with IDs read from `--indexer` or
    `--semantic_ids_file`, that those IDs are the ones of this run: the same ID quality (collision rate, AMI, code
    usage, ...). Anything else ends the run with one error line naming the file and the row.
    """
    if args.keep_rows_from is None:
        return {}
    source = args.keep_rows_from
    try:
        earlier = json.loads(source.read_text())
        earlier_command, earlier_rows = earlier["command"], earlier["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        message = f"error: --keep_rows_from {source}: not a results JSON of bench_quality.py ({error})"
        raise SystemExit(message) from None
    if training_command(earlier_command) != training_command(command):
        raise SystemExit(
            f"error: --keep_rows_from {source}: its rows come from another command ({earlier_command}); keep rows "
            "only of the same command, with other --seeds at most"
        )
    rows = {(row["scheme"], row["seed"]): row for row in earlier_rows if row["seed"] in args.seeds}
    for (name, seed), row in rows.items():
        ids_file = args.id_files.get(row["id_scheme"])
        if ids_file is None and row["id_scheme"] in INDEXER_SCHEMES:
            ids_file = Path(args.indexer) / SEMANTIC_IDS_NAME
        if ids_file is None:
            continue
        quality = id_quality(SemanticIDs.load(ids_file), category_of, training_sequences)
        if row["id_quality"] != quality:
            raise SystemExit(
                f"error: --keep_rows_from {source}: row {name} seed {seed} was trained with other IDs than "
                f"{ids_file} holds now (ID quality {row['id_quality']} there, {quality} here); re-make the same "
                "indexer or train the row again"
            )
    return rows


def run_scheme(args: argparse.Namespace, scheme: str, variant: str, seed: int, extra: list[str]) -> dict:
    """
    Train and evaluate one scheme, variant and seed (or, with `--resume`, reuse its finished run) and return its
    report (`retrieval_report.json` or `recommendation_report.json`). The script's output goes to
    `<run_dir>/bench.log`; `extra` holds the pass-through flags, then the variant's.
    """
    name = run_name(scheme, variant)
    run_dir = args.output_dir / f"{name}-seed{seed}"
    report_file = run_dir / TASKS[args.task]["report"]
    if args.resume and report_file.is_file():
        logger.info(f"Reusing the finished {name} run (seed {seed}) in {run_dir}.")
        return json.loads(report_file.read_text())
    if not args.resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = script_command(args, scheme, seed, run_dir, extra)
    model = "recommender" if args.task == "rec" else "retriever"
    logger.info(f"Training the {name} {model} (seed {seed}): {' '.join(command)}")
    log_file = run_dir / "bench.log"
    with log_file.open("a") as log:
        completed = subprocess.run(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0 or not report_file.is_file():
        last_lines = log_file.read_text().strip().splitlines()[-5:]
        raise RuntimeError(
            f"the {name} run (seed {seed}) failed with exit code {completed.returncode}; see {log_file}:\n"
            + "\n".join(last_lines)
        )
    return json.loads(report_file.read_text())


def load_peer_recommenders():
    """`benchmarks/peer_recommenders.py` (it imports cornac, an extra: `pip install -e .[bench]`)."""
    try:
        import cornac  # noqa: F401
    except ImportError as error:
        raise SystemExit("error: the peer rows need cornac: pip install -e .[bench] (or pass --peers)") from error
    path = Path(__file__).with_name("peer_recommenders.py")
    spec = importlib.util.spec_from_file_location("peer_recommenders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def task_sequences(args: argparse.Namespace) -> dict[str, list[str]]:
    """rec: every user's item sequence of `--dataset`, the first `--max_users` users with that flag."""
    sequences = load_sequences(args.dataset, args.data_dir)
    if args.max_users is not None:
        sequences = dict(list(sequences.items())[: args.max_users])
    return sequences


def run_peer(args: argparse.Namespace, peer: str, seed: int) -> dict:
    """
    Train and evaluate one cornac peer recommender for `--budget_minutes` of training on the scripts' split (or, with
    `--resume`, reuse its result in `<output_dir>/peer-<peer>-seed<seed>/peer_result.json`) and return its row.
    """
    run_dir = args.output_dir / f"peer-{peer}-seed{seed}"
    result_file = run_dir / "peer_result.json"
    if args.resume and result_file.is_file():
        logger.info(f"Reusing the finished {peer} run (seed {seed}) in {run_dir}.")
        return json.loads(result_file.read_text())
    peers = load_peer_recommenders()
    model, config = PEERS[peer]
    sequences = task_sequences(args)
    split = leave_one_out_split(sequences, PEER_HISTORY_LENGTH[model])
    item_ids = list(load_corpus(args.dataset, args.data_dir)["doc_id"])
    options = {
        "budget_minutes": args.budget_minutes,
        "eval_every_minutes": args.eval_every_minutes,
        "seed": seed,
        "config": {**config, "n_epochs": args.num_train_epochs},
        "k_values": TASKS["rec"]["k_values"],
        "curve_max_queries": args.num_validation_users,
        "keep_best": args.keep_best_validation_state,
    }
    logger.info(f"Training the {peer} peer recommender (seed {seed}, {args.budget_minutes:g} training minutes).")
    if model == "sasrec":
        outcome = peers.train_and_evaluate_sasrec(split, item_ids, **options)
    else:
        from modeling_lmindexer.baselines import sentence_embeddings

        texts = list(load_corpus(args.dataset, args.data_dir)["text"])
        outcome = peers.train_and_evaluate_tiger(split, item_ids, sentence_embeddings(texts), **options)
    row = {
        "scheme": peer,
        "system": PEER_NAMES[peer],
        "seed": seed,
        "commit": machine_info().get("git_commit"),
        "config": outcome["config"],
        "metrics": outcome["test"],
        "training_wall_time_seconds": round(outcome["training_minutes"] * 60, 1),
        "evaluation_wall_time_seconds": round(outcome["evaluation_seconds"], 1),
        "stopped_by": outcome["stopped_by"],
        "optimizer_steps": outcome["steps"],
        "epochs_done": round(outcome["epochs"], 3),
        "targets_per_second": round(outcome["examples_per_second"] or 0.0, 1),
        "curve": [
            {"training_minutes": point["training_minutes"], "recall@10": point["validation"].get("recall@10")}
            for point in outcome["curve"]
        ],
        "tested_weights": outcome["tested_weights"],
        "num_test_queries": len(split.test),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(row, indent=2))
    return row


def id_quality(
    semantic_ids: SemanticIDs, category_of: dict[str, str], training_sequences: list[list[str]] | None = None
) -> dict:
    """
    AMI with the leaf category, collision rate before resolution and code-usage perplexity of every level; with the
    training part of users' sequences (rec), the share of consecutive training items whose IDs share 1, 2, ... codes.
    """
    categories = [category_of.get(doc_id, "") for doc_id in semantic_ids.doc_ids]
    learned_codes = semantic_ids.codes[:, : semantic_ids.num_learned_levels]
    return {
        **semantic_id_metrics(semantic_ids, categories),
        "code_usage_perplexity": [
            round(semantic_ids.code_usage_perplexity(level), 2) for level in range(semantic_ids.num_learned_levels)
        ],
        "codebook_sizes": list(semantic_ids.codebook_sizes),
        "consecutive_prefix_sharing": None
        if training_sequences is None
        else [
            round(share, 4)
            for share in consecutive_prefix_sharing(training_sequences, semantic_ids.doc_ids, learned_codes)
        ],
    }


def load_task(
    args: argparse.Namespace, seed: int, indexed_doc_ids: Sequence[str] | None = None
) -> tuple[RetrievalTask, list[str], list[str]]:
    """
    The evaluation task as the example scripts build it, with the corpus's doc ids and their texts. Retrieval test
    queries keep those with a relevant document among `indexed_doc_ids` (default: the corpus's), as the script keeps
    those with a relevant document among its retriever's IDs.
    """
    corpus = load_corpus(args.dataset, args.data_dir)
    if args.task == "rec":
        task = load_recommendation_task(args.dataset, args.data_dir, max_users=args.max_users)
        return task, list(corpus["doc_id"]), list(corpus["text"])
    if args.max_documents is not None:
        corpus = corpus.select(range(min(args.max_documents, len(corpus))))
    task = load_retrieval_task(args.dataset, args.data_dir, corpus, seed=seed)
    task = task.restrict_to_documents(list(corpus["doc_id"]) if indexed_doc_ids is None else list(indexed_doc_ids))
    if args.max_test_queries is not None:
        task = replace(task, test=task.test[: args.max_test_queries])
    return task, list(corpus["doc_id"]), list(corpus["text"])


def milliseconds_per_query(seconds: float, num_queries: int) -> float | None:
    """The wall time of ranking `num_queries` queries, per query in milliseconds (None without queries)."""
    return 1000 * seconds / num_queries if num_queries else None


def zero_shot_rankings(
    retriever: LMIndexerRetriever,
    tokenizer,
    queries: list[str],
    k: int,
    beam_widths: Sequence[int],
    renormalize: bool = False,
) -> dict[int, tuple[list[list[str]], float | None]]:
    """
    `retriever.retrieve` of `queries` (top `k` doc ids each) at every beam width, with `renormalize_logits =
    renormalize`: the rankings and their wall time in milliseconds per query. One-time costs (the prefix tree of the
    IDs, the first CUDA kernels) are paid by one warm-up query before the timed rankings, as a served retriever pays
    them once at start.
    """
    rank = partial(retriever.retrieve, tokenizer=tokenizer, k=k, renormalize_logits=renormalize)
    rank(queries[:1], num_beams=beam_widths[0])
    return {
        num_beams: timed_rankings(partial(rank, queries, num_beams=num_beams), len(queries))
        for num_beams in beam_widths
    }


def timed_rankings(rank: Callable[[], list[list[str]]], num_queries: int) -> tuple[list[list[str]], float | None]:
    """The rankings of `rank()` (which ranks `num_queries` queries) and its wall time in milliseconds per query."""
    start = time.perf_counter()
    rankings = rank()
    return rankings, milliseconds_per_query(time.perf_counter() - start, num_queries)


def popularity_index(task: RetrievalTask, depth: int) -> Callable[[Sequence[EvaluationQuery]], list[list[str]]]:
    """Every user gets the `depth` items most often the target of a training pair (ties: first seen)."""
    counts = Counter(pair.target for pair in task.train)
    most_popular = [item for item, _ in counts.most_common(depth)]
    return lambda users: [most_popular for _ in users]


def bm25_index(doc_ids: list[str], texts: list[str], depth: int) -> Callable[[list[str]], list[list[str]]]:
    """BM25 (`bm25s`, Lucene variant, English stop words) over the document texts: the index's search of queries."""
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)

    def search(queries: list[str]) -> list[list[str]]:
        query_tokens = bm25s.tokenize(queries, stopwords="en", show_progress=False)
        rows, _ = retriever.retrieve(query_tokens, k=min(depth, len(doc_ids)), show_progress=False, n_threads=1)
        return [[doc_ids[row] for row in ranked] for ranked in rows.tolist()]

    return search


def dense_index(doc_ids: list[str], texts: list[str], depth: int) -> Callable[[list[str]], list[list[str]]]:
    """
    Exact cosine search (faiss inner product on unit vectors) with mean-pooled all-MiniLM-L6-v2 embeddings: the
    index's search of queries, which embeds them first.
    """
    import faiss

    from modeling_lmindexer.baselines import sentence_embeddings

    document_embeddings = sentence_embeddings(texts, show_progress_bar=True)
    index = faiss.IndexFlatIP(document_embeddings.shape[1])
    index.add(document_embeddings)

    def search(queries: list[str]) -> list[list[str]]:
        _, rows = index.search(sentence_embeddings(queries), min(depth, len(doc_ids)))
        return [[doc_ids[row] for row in ranked if row >= 0] for ranked in rows.tolist()]

    return search


def reference_rows(args: argparse.Namespace, seed: int) -> list[dict]:
    """
    The non-generative rows on the same test queries and metrics, each with its wall time (building its index
    included) and its milliseconds per query: the search of the test queries alone (query encoding included).
    """
    task, doc_ids, texts = load_task(args, seed)
    k_values = TASKS[args.task]["k_values"]
    depth = max(k_values)
    references = [query.relevance for query in task.test]
    if args.task == "rec":
        queries = task.test
        indexes = {"popularity (most frequent training targets)": partial(popularity_index, task, depth)}
    else:
        queries = [query.source for query in task.test]
        indexes = {
            "BM25 (bm25s)": partial(bm25_index, doc_ids, texts, depth),
            "dense retrieval (MiniLM, exact cosine, faiss)": partial(dense_index, doc_ids, texts, depth),
        }
    rows = []
    for name, build_index in indexes.items():
        start = time.perf_counter()
        rankings, search_milliseconds = timed_rankings(partial(build_index(), queries), len(queries))
        rows.append(
            {
                "system": name,
                "metrics": compute_retrieval_metrics(rankings, references, k_values, task.relevance_threshold),
                "wall_time_seconds": round(time.perf_counter() - start, 1),
                "milliseconds_per_query": search_milliseconds,
                "num_test_queries": len(references),
            }
        )
    return rows


def zero_shot_rows(args: argparse.Namespace, seed: int, category_of: dict[str, str]) -> list[dict]:
    """
    One row per `--zero_shot_beams` width, twice with `--zero_shot_renormalized` (the ID log-probabilities, then the
    renormalised ones): the retriever built from the indexer with no fine-tuning (`LMIndexerRetriever.from_indexer`,
    where the `lmindexer` row's training starts) ranks the test queries of the trained rows (those of `seed`'s
    split), with their metrics and the wall time of ranking them all per query.
    """
    indexer = LMIndexerForSemanticID.from_pretrained(args.indexer)
    tokenizer = AutoTokenizer.from_pretrained(args.indexer)
    retriever = LMIndexerRetriever.from_indexer(
        indexer, max_query_length=args.max_query_length, dataset_name=args.dataset
    )
    # The device the script's Trainer evaluates on, so that the milliseconds compare with the trained rows'.
    device = "cuda" if torch.cuda.is_available() else "cpu"
    retriever.to(device)
    task, _, _ = load_task(args, seed, indexed_doc_ids=retriever.semantic_ids.doc_ids)
    queries = [query.source for query in task.test]
    references = [query.relevance for query in task.test]
    k_values = TASKS[args.task]["k_values"]
    quality = id_quality(retriever.semantic_ids, category_of)
    backbone = retriever.config.backbone_name_or_path or retriever.config.seq2seq_config.model_type
    rows = []
    for renormalize in (False, True) if args.zero_shot_renormalized else (False,):
        timed = zero_shot_rankings(retriever, tokenizer, queries, max(k_values), args.zero_shot_beams, renormalize)
        for num_beams, (rankings, milliseconds) in timed.items():
            rows.append(
                {
                    "scheme": "lmindexer_zero_shot",
                    "system": (ZERO_SHOT_RENORMALIZED_NAME if renormalize else ZERO_SHOT_NAME).format(
                        num_beams=num_beams
                    ),
                    "seed": seed,
                    "retriever": f"{backbone} (the indexer's, no fine-tuning)",
                    "num_beams": num_beams,
                    "renormalize_logits": renormalize,
                    "metrics": compute_retrieval_metrics(rankings, references, k_values, task.relevance_threshold),
                    "milliseconds_per_query": milliseconds,
                    "device": device,
                    "id_quality": quality,
                    "training_wall_time_seconds": 0.0,
                    "num_test_queries": len(queries),
                    "labels": task.labels,
                }
            )
            logger.info(f"{rows[-1]['system']}: {rows[-1]['metrics']}, {milliseconds:.1f} ms per query.")
    return rows


def scheme_row(
    scheme: str,
    variant: tuple[str, list[str]],
    seed: int,
    report: dict,
    run_dir: Path,
    category_of: dict[str, str],
    training_sequences: list[list[str]] | None = None,
) -> dict:
    """
    One table row from a run's report and saved IDs; `variant` is the `(name, script flags)` it was trained with,
    `training_sequences` the training part of users' sequences (rec).
    """
    semantic_ids = SemanticIDs.load(run_dir / "semantic_ids.json")
    evaluation_seconds = report["wall_time_seconds"].get("evaluation")
    variant_name, variant_flags = variant
    return {
        "scheme": run_name(scheme, variant_name),
        "id_scheme": scheme,
        "variant": variant_name,
        "variant_flags": variant_flags,
        "system": SCHEME_NAMES[scheme]
        + (f" [{variant_name}: {shlex.join(variant_flags) or 'defaults'}]" if variant_name else ""),
        "seed": seed,
        "commit": report["machine"].get("git_commit"),
        "retriever": report["backbone"],
        "metrics": report["metrics"],
        "id_quality": id_quality(semantic_ids, category_of, training_sequences),
        "training_wall_time_seconds": round(report["wall_time_seconds"].get("training", 0.0), 1),
        "evaluation_wall_time_seconds": round(evaluation_seconds or 0.0, 1),
        # The recommendation report keeps its beam width with the training fields.
        "num_beams": report.get("num_beams", report["training"].get("beams")),
        "milliseconds_per_query": None
        if evaluation_seconds is None
        else milliseconds_per_query(evaluation_seconds, report["num_test_queries"]),
        "stopped_by_time_budget": report["stopped_by_time_budget"],
        "tested_weights": report.get("tested_weights"),
        "optimizer_steps": report["training"].get("optimizer steps"),
        "epochs_done": report["training"].get("epochs done"),
        "targets_per_second": report["training"].get("next-item targets per second"),
        # Training pairs by kind (retrieval: query, pseudo-query, indexing), what an epoch of the row holds.
        "training_examples": report.get("training_examples"),
        # Validation Recall@10 against training minutes (runs with --eval_every_minutes).
        "curve": [
            {"training_minutes": point["training_minutes"], "recall@10": point.get("eval_recall@10")}
            for point in report.get("curve", [])
        ],
        "num_test_queries": report["num_test_queries"],
        "labels": report["labels"],
    }


# A label that names the seed it was drawn with ("... (--validation_queries, seed 43)"): one per seed in the rows.
SEEDED_LABEL = re.compile(r"seed (?P<seed>\d+)\)$")


def table_labels(rows: list[dict]) -> list[str]:
    """The runs' labels for the table's top, each once: labels that differ only in the seed they end with become one
    naming the seeds; a label that not every scheme carries names the rows that do (a variant's training choice is not
    the whole table's)."""
    seeds_of: dict[str, list[str]] = {}
    schemes_of: dict[str, list[str]] = {}
    for row in rows:
        for label in row["labels"]:
            seeded = SEEDED_LABEL.search(label)
            stem = label[: seeded.start()] if seeded else label
            seeds_of.setdefault(stem, [])
            if seeded and seeded["seed"] not in seeds_of[stem]:
                seeds_of[stem].append(seeded["seed"])
            schemes_of.setdefault(stem, [])
            if row["scheme"] not in schemes_of[stem]:
                schemes_of[stem].append(row["scheme"])
    every_scheme = list(dict.fromkeys(row["scheme"] for row in rows))
    labels = []
    for stem, seeds in seeds_of.items():
        label = f"{stem}seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})" if seeds else stem
        if len(schemes_of[stem]) < len(every_scheme):
            label = f"{label} (rows {', '.join(schemes_of[stem])})"
        labels.append(label)
    return labels


def seed_spread(rows: list[dict], metric_names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scheme and metric: mean, minimum, maximum and population standard deviation over the seeds."""
    spread = {}
    for scheme in dict.fromkeys(row["scheme"] for row in rows):
        values = {name: [row["metrics"][name] for row in rows if row["scheme"] == scheme] for name in metric_names}
        spread[scheme] = {
            name: {
                "mean": statistics.fmean(series),
                "min": min(series),
                "max": max(series),
                "std": statistics.pstdev(series),
                "seeds": len(series),
            }
            for name, series in values.items()
        }
    return spread


def _format(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return ", ".join(_format(item) if not isinstance(item, float) else f"{item:g}" for item in value)
    return str(value)


def write_plots(result: dict, results_dir: Path, name: str) -> list[str]:
    """
    Two PNG files: the headline metrics of every row (schemes, zero-shot, peers, references, published), and
    Recall@10 against training minutes of every trained row (its validation curve where it has one, else its final
    test value), the zero-shot rows at 0 minutes and the reference rows as horizontal lines. Returns their file
    names.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric_names = [metric for metric in result["metric_columns"] if metric.endswith("@10")]
    generative = [*result["rows"], *result.get("zero_shot_rows", []), *result.get("peer_rows", [])]
    rows = [(f"{row['system']} (seed {row['seed']})", row["metrics"]) for row in generative]
    rows += [(row["system"], row["metrics"]) for row in result["reference_rows"]]
    rows += list(result["published"].items())
    figure, axis = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    height = 0.8 / len(metric_names)
    for index, metric in enumerate(metric_names):
        positions = [row + index * height for row in range(len(rows))]
        axis.barh(positions, [metrics.get(metric, 0.0) for _, metrics in rows], height=height, label=metric)
    axis.set_yticks([row + 0.4 - height / 2 for row in range(len(rows))], [label for label, _ in rows], fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("metric value")
    axis.set_title(f"{result['task']} on {result['dataset']}: metrics by system")
    axis.legend()
    figure.tight_layout()
    metrics_png = f"{name}_metrics.png"
    figure.savefig(results_dir / metrics_png, dpi=110)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in [*result["rows"], *result.get("peer_rows", [])]:
        label = f"{row['scheme']} seed {row['seed']}"
        curve = [point for point in row.get("curve", []) if point["recall@10"] is not None]
        if curve:
            axis.plot(
                [point["training_minutes"] for point in curve],
                [point["recall@10"] for point in curve],
                marker=".",
                label=f"{label} (validation)",
            )
        else:
            point = (row["training_wall_time_seconds"] / 60, row["metrics"].get("recall@10", 0.0))
            axis.scatter(*point, label=f"{label} (test, end of training)")
    for row in result.get("zero_shot_rows", []):
        axis.scatter(0.0, row["metrics"].get("recall@10", 0.0), marker="x", label=f"{row['system']} (test)")
    for row in result["reference_rows"]:
        axis.axhline(row["metrics"].get("recall@10", 0.0), linestyle="--", color="grey", linewidth=0.8)
        axis.annotate(row["system"], (0, row["metrics"].get("recall@10", 0.0)), fontsize=7, color="grey")
    axis.set_xlabel("training minutes")
    axis.set_ylabel("Recall@10")
    axis.set_title("Recall@10 against training minutes")
    axis.legend(fontsize=7)
    figure.tight_layout()
    time_png = f"{name}_recall_vs_time.png"
    figure.savefig(results_dir / time_png, dpi=110)
    plt.close(figure)
    return [metrics_png, time_png]


def _other_commits_note(result: dict) -> list[str]:
    """
    A line naming the rows (peer recommenders' included) trained at another commit than the table's, if any: runs
    kept by `--resume` or `--keep_rows_from`, or runs that started after a commit made while the benchmark ran.
    """
    table_commit = result["machine"].get("git_commit")
    rows = [*result["rows"], *result.get("peer_rows", [])]
    others = [row for row in rows if row.get("commit") and row["commit"] != table_commit]
    if not others:
        return []
    runs = ", ".join(f"{row['scheme']} seed {row['seed']} at {row['commit'][:7]}" for row in others)
    return [
        "> **Rows trained at another commit than the table's (kept by `--resume` or `--keep_rows_from`, or started "
        f"after a commit): {runs}.**",
        "",
    ]


def _milliseconds(row: dict) -> str:
    """A row's milliseconds per query for the tables; n/a where it was not measured."""
    value = row.get("milliseconds_per_query")
    return "n/a" if value is None else f"{value:.3f}"


def _latency_note(result: dict) -> str:
    """What the ms per query columns measure, on which machine."""
    machine = result["machine"]
    device = machine.get("cuda_device") or "CPU"
    return (
        f"ms per query: the wall time of ranking all test queries divided by their number, on this machine ({device}, "
        f"{result['torch_threads']} torch threads). Trained rows: the script's test evaluation at the row's beam "
        "width (`Trainer.evaluate`, constrained beam search in batches of the eval batch size, the metrics and "
        "one-time setup such as the IDs' prefix tree included). Zero-shot rows: `LMIndexerRetriever.retrieve` in "
        "batches of 16, after one warm-up query. References: query encoding and search only, building the index "
        "(and loading the MiniLM encoder of dense retrieval) excluded. n/a: not measured."
    )


def markdown_report(result: dict, plots: Sequence[str]) -> str:
    """
    The readable table: labels, one row per scheme and seed and per zero-shot beam width, reference and published
    rows, spread, plots.
    """
    metrics = result["metric_columns"]
    machine = result["machine"]
    sharing = any(row["id_quality"].get("consecutive_prefix_sharing") is not None for row in result["rows"])
    lines = [
        f"# Quality benchmark: {result['task']} on {result['dataset']}",
        "",
        *(f"> **{label}**\n" for label in result["labels"]),
        f"Command: `{result['command']}`; commit {machine.get('git_commit')}; seeds {result['seeds']}; machine: "
        f"{machine.get('platform')}, {machine.get('cpu_count')} CPUs, torch {machine.get('torch')}; total wall time "
        f"{result['wall_time_seconds'] / 60:.1f} min. Every scheme: the same retriever script, the retriever of its "
        f"row (the baselines' and `lmindexer_ids` the same), {result['budget_minutes']:g} training minutes at most, "
        "test split evaluated by constrained beam search; item-level metrics (a hit is the right item).",
        "",
        *_other_commits_note(result),
        "## ID schemes",
        "",
        "| IDs | retriever | seed | "
        + " | ".join(metrics)
        + " | beams | ms per query | AMI level 1 | AMI full ID | collisions before resolution | "
        "code-usage perplexity per level | "
        + (PREFIX_SHARING_COLUMN + " | " if sharing else "")
        + "training (min) | steps | epochs | targets/s | stopped by budget | tested weights |",
        "|---|---|---|" + "---|" * (len(metrics) + 12 + sharing),
    ]
    # The zero-shot rows (not trained: no steps, epochs or budget) follow the trained rows they compare with.
    for row in [*result["rows"], *result.get("zero_shot_rows", [])]:
        quality = row["id_quality"]
        lines.append(
            f"| {row['system']} | {row['retriever']} | {row['seed']} | "
            + " | ".join(_format(row["metrics"].get(metric)) for metric in metrics)
            + f" | {_format(row.get('num_beams'))} | {_milliseconds(row)} | {_format(quality['ami_level_1'])} | "
            f"{_format(quality['ami_full_id'])} | {_format(quality['collision_rate_before_resolution'])} | "
            f"{_format(quality['code_usage_perplexity'])} | "
            + (f"{_format(quality.get('consecutive_prefix_sharing'))} | " if sharing else "")
            + f"{row['training_wall_time_seconds'] / 60:.1f} | "
            f"{row.get('optimizer_steps', '-')} | {row.get('epochs_done', '-')} | "
            f"{_format(row.get('targets_per_second'))} | {_format(row.get('stopped_by_time_budget'))} | "
            f"{describe_tested_weights(row.get('tested_weights'), brief=True)} |"
        )
    lines += ["", _latency_note(result)]
    if sharing:
        lines += [
            "",
            f"{PREFIX_SHARING_COLUMN}: of the consecutive pairs of two different items in the training part of the "
            "users' sequences (all items but the last two), the share whose IDs have the same first code, the same "
            "first two codes, and so on: how much of what is consumed together the ID prefixes group.",
        ]
    if result.get("peer_rows"):
        lines += [
            "",
            "## Peer recommenders (cornac), same split and training minutes",
            "",
            "| system | seed | "
            + " | ".join(metrics)
            + " | training (min) | steps | epochs | targets/s | stopped by | tested weights |",
            "|---|---|" + "---|" * (len(metrics) + 6),
        ]
        for row in result["peer_rows"]:
            lines.append(
                f"| {row['system']} | {row['seed']} | "
                + " | ".join(_format(row["metrics"].get(metric)) for metric in metrics)
                + f" | {row['training_wall_time_seconds'] / 60:.1f} | {row['optimizer_steps']} | "
                f"{row['epochs_done']} | {_format(row['targets_per_second'])} | {row['stopped_by']} | "
                f"{describe_tested_weights(row.get('tested_weights'), brief=True)} |"
            )
    lines += ["", "## Reference rows (not generative) and published numbers", ""]
    lines += [
        "| system | " + " | ".join(metrics) + " | ms per query | wall time with the index (s) |",
        "|---|" + "---|" * (len(metrics) + 2),
    ]
    for row in result["reference_rows"]:
        values = " | ".join(_format(row["metrics"].get(metric)) for metric in metrics)
        lines.append(f"| {row['system']} | {values} | {_milliseconds(row)} | {row['wall_time_seconds']} |")
    for system, values in result["published"].items():
        cells = " | ".join(_format(values.get(metric)) for metric in metrics)
        lines.append(f"| {system} | {cells} | n/a | - |")
    if len(result["seeds"]) > 1:
        lines += ["", "## Seed-to-seed spread: mean (min-max, standard deviation)", ""]
        lines += ["| IDs | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        systems = {row["scheme"]: row["system"] for row in [*result["rows"], *result.get("peer_rows", [])]}
        for scheme, spread in result["seed_spread"].items():
            cells = [
                f"{spread[metric]['mean']:.4f} ({spread[metric]['min']:.4f}-{spread[metric]['max']:.4f}, "
                f"{spread[metric]['std']:.4f})"
                for metric in metrics
            ]
            lines.append(f"| {systems[scheme]} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""] + [f"![{plot}]({plot})" for plot in plots]
    return "\n".join(lines) + "\n"


def write_results(result: dict, results_dir: Path) -> tuple[Path, Path]:
    """Write `quality_<task>_<dataset>.json`, its plots and `.md` into `results_dir`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    name = result.get("results_name") or f"quality_{result['task']}_{result['dataset']}"
    plots = write_plots(result, results_dir, name)
    json_file, markdown_file = results_dir / f"{name}.json", results_dir / f"{name}.md"
    json_file.write_text(json.dumps(result, indent=2))
    markdown_file.write_text(markdown_report(result, plots))
    return json_file, markdown_file


def main(argv: Sequence[str] | None = None) -> dict:
    start = time.time()
    machine = machine_info()
    args, extra = parse_arguments(argv)
    command = " ".join(["python", "benchmarks/bench_quality.py", *(argv if argv is not None else sys.argv[1:])])
    corpus = load_corpus(args.dataset, args.data_dir)
    category_of = dict(zip(corpus["doc_id"], corpus["category"]))
    training_sequences = training_parts(task_sequences(args)) if args.task == "rec" else None
    kept = kept_rows(args, command, category_of, training_sequences)
    rows = []
    for seed in args.seeds:
        for scheme in args.schemes:
            for variant in args.variants:
                if (run_name(scheme, variant[0]), seed) in kept:
                    rows.append(kept[(run_name(scheme, variant[0]), seed)])
                    logger.info(f"Keeping {rows[-1]['scheme']} (seed {seed}) from {args.keep_rows_from}.")
                    continue
                report = run_scheme(args, scheme, variant[0], seed, extra + variant[1])
                run_dir = args.output_dir / f"{run_name(scheme, variant[0])}-seed{seed}"
                rows.append(scheme_row(scheme, variant, seed, report, run_dir, category_of, training_sequences))
                logger.info(f"{rows[-1]['scheme']} (seed {seed}): {rows[-1]['metrics']}")
    peer_rows = []
    for seed in args.seeds:
        for peer in args.peers:
            peer_rows.append(run_peer(args, peer, seed))
            logger.info(f"{peer} (seed {seed}): {peer_rows[-1]['metrics']}")
    labels = table_labels(rows)
    if args.task == "product_search" and PRODUCT_SEARCH_LABEL not in labels:
        labels.insert(0, PRODUCT_SEARCH_LABEL)
    metric_columns = METRIC_COLUMNS[args.task]
    result = {
        "benchmark": "quality",
        "task": args.task,
        "dataset": args.dataset,
        "command": command,
        "results_name": args.results_name,
        "seeds": args.seeds,
        "budget_minutes": args.budget_minutes,
        "variants": {name: flags for name, flags in args.variants if name},
        "labels": labels,
        "metric_columns": list(metric_columns),
        "rows": rows,
        "zero_shot_rows": zero_shot_rows(args, args.seeds[0], category_of) if args.zero_shot_beams else [],
        "peer_rows": peer_rows,
        "reference_rows": reference_rows(args, args.seeds[0]),
        "published": PUBLISHED.get((args.task, args.dataset), {}),
        "seed_spread": seed_spread(rows + peer_rows, metric_columns),
        "machine": machine,
        # The threads of every timed ranking: the example scripts inherit this process's environment.
        "torch_threads": torch.get_num_threads(),
    }
    result["wall_time_seconds"] = round(time.time() - start, 1)
    json_file, markdown_file = write_results(result, Path(args.results_dir))
    logger.info(f"Wrote {json_file} and {markdown_file}.")
    return result


if __name__ == "__main__":
    logging.basicConfig(
        format="%(asctime)s - %(message)s", level=logging.INFO, handlers=[logging.StreamHandler(sys.stdout)]
    )
    main()
