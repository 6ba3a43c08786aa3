#!/usr/bin/env python
"""
One prepared device check: `bash benchmarks/device_check.sh --device cuda --output_dir OUT --data_dir BEAUTY
--semantic_ids_file kmeans=IDS.json` (or `make device-check`). Sized to finish within 8 minutes on one H100.

1. The `gpu` tests (`pytest tests/test_device.py -m gpu`): a bfloat16 training step of the indexer and of the
   retriever, and constrained `generate()` / `recommend()` on the device giving the CPU's IDs for the same weights.
   With `--device cpu` they run on the CPU (`LMINDEXER_TEST_DEVICE=cpu`) and compare the CPU with itself: a check of
   the script and of the tests, not of a GPU.
2. Constrained-decoding latency, with the functions of `benchmarks/bench_decoding.py`: its random T5-small retriever
   (`tiny` with `--device cpu`) over `--num_ids` random IDs (10^6 on CUDA, 10^3 on the CPU), 20 beams, batches of 1
   and 64 random queries, in float32 and with the weights cast to bfloat16; the trie processor, the GENRE-style
   `prefix_allowed_tokens_fn`, unconstrained decoding and the ID-only head (with its own beam search), in
   milliseconds per query (median of `--repeats` round-robin runs, each timed between device synchronisations). The
   trie's overhead per decoding step (trie minus unconstrained, per batch) stands next to the published STATIC
   figure.
3. The Beauty recommendation benchmark, `examples/run_recommendation.py` once per `--semantic_ids_file`: IDs made on
   the CPU (faiss is not on the device machine), training in bfloat16 (`--bf16` on CUDA) for `--rec_train_minutes`
   with a validation point every `--rec_eval_every_minutes`, and the best validation checkpoint (Recall@10) restored
   before the test ranking (`--save_strategy best --load_best_model_at_end`). `--rec_args` passes more flags (e.g.
   `--max_users 2000` for a slice of the users).
4. Optional, `--indexing_args "..."`: a timed indexing run, `benchmarks/bench_indexing.py` with these arguments (it
   needs faiss and a backbone on the machine).

Writes `device_check.json` + `device_check.md` to `--output_dir`; the runs' own files (recommender models,
checkpoints, test reports) go to `--work_dir` (default: a new temporary folder), so that `--output_dir` holds the
results only. `device` and `machine` say where every number comes from.

What the device machine needs besides the working tree (name each in `carry`):
- `.whl/`: wheels of the packages it lacks, `datasets`, `dill`, `multiprocess` and `evaluate` (`faiss-cpu` too for
  `--indexing_args`); `device_check.sh` installs them with `pip install --target /tmp/site` when the folder exists.
  Its image holds transformers 5.17 and this code follows 5.25 (`cache=` for `past_key_values=`): should the `gpu`
  tests fail on that, carry wheels of this checkout's `transformers` and `huggingface_hub` too. `packages` in the
  JSON gives the versions that ran.
- `--data_dir`: a folder with `amazon-beauty-2014-interactions/Beauty.inter.json` and
  `amazon-beauty-2014-text/Beauty.items.derived.json` (4 MB; `../shared/data` holds both).
- the ID files, `SemanticIDs.save` tables of the Beauty items made on the CPU, passed as `--semantic_ids_file
  <scheme>=<file>`: `lmindexer=` the `semantic_ids.json` of a Beauty indexer (`bench_indexing.py --dataset beauty`;
  the IDs alone, 1 MB, where the indexer folder would not fit the 64 MiB that travel), `kmeans=` (or `random=`,
  `rq_kmeans=`) the `semantic_ids-<scheme>-seed<seed>.json` that `lmindexer-recommend --dataset beauty --id_scheme
  <scheme>` writes in its output folder.
"""

import argparse
import importlib.metadata
import json
import logging
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

import torch


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_decoding import (  # noqa: E402
    BATCH_SIZE,
    METHODS,
    build_retriever,
    decode,
    make_dict_trie,
    millisecond_summary,
    model_summary,
    random_queries,
    random_semantic_ids,
    round_robin_seconds,
    valid_id_fraction,
)

from modeling_lmindexer import LMIndexerRetriever, SemanticIDs  # noqa: E402
from modeling_lmindexer.data import load_corpus  # noqa: E402
from trainers.commands.common import BEST_VALIDATION_STATE_FLAGS  # noqa: E402
from trainers.commands.recommend import SAVED_ID_SCHEMES, id_files_by_scheme  # noqa: E402
from trainers.report import (  # noqa: E402
    learning_curve_table,
    machine_info,
    markdown_table,
    repository_relative,
    write_report_files,
)


logger = logging.getLogger(__name__)

# Read by the `device` fixture of tests/test_device.py.
TEST_DEVICE_VARIABLE = "LMINDEXER_TEST_DEVICE"
BUDGET_MINUTES = 8.0
TESTS_TIMEOUT_SECONDS = 300
DECODING_METHODS = ("trie", "prefix_fn", "unconstrained", "id_only_trie")
DECODING_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Su et al., "Vectorizing the Trie: Efficient Constrained Decoding for LLM-based Generative Retrieval on
# Accelerators" (arXiv:2602.22647): the latency overhead of their constraint in production, per decoding step.
STATIC_PUBLISHED = {
    "system": "STATIC (Su et al., 2026), published",
    "ms_per_step": 0.033,
    "what": "constraint overhead per decoding step in their production deployment (TPUs/GPUs)",
}
# The full-size check on CUDA; seconds of it on the CPU.
DEVICE_DEFAULTS = {
    "cuda": {"num_ids": 10**6, "model_size": "small", "repeats": 5, "train_minutes": 4.0, "eval_every_minutes": 0.5},
    "cpu": {"num_ids": 10**3, "model_size": "tiny", "repeats": 2, "train_minutes": 0.5, "eval_every_minutes": 0.1},
}
REC_METRIC_NAMES = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
PACKAGES = ("transformers", "huggingface_hub", "accelerate", "peft", "datasets", "evaluate")
# Seconds a recommendation run may take beyond its training budget: loading, validation, the test ranking, saving.
REC_OVERHEAD_SECONDS = 300


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), required=True)
    parser.add_argument("--output_dir", required=True, help="Where device_check.json and .md are written.")
    parser.add_argument("--work_dir", default=None, help="The runs' own files (default: a new temporary folder).")
    parser.add_argument("--data_dir", default=str(REPO_ROOT.parent / "shared" / "data"), help="The Beauty slice.")
    parser.add_argument(
        "--semantic_ids_file",
        action="append",
        default=[],
        metavar="SCHEME=FILE",
        help=f"Beauty IDs made on the CPU, one recommendation run each; SCHEME: {', '.join(SAVED_ID_SCHEMES)}.",
    )
    parser.add_argument("--rec_train_minutes", type=float, default=None, help="Training budget of every run.")
    parser.add_argument("--rec_eval_every_minutes", type=float, default=None, help="Validation interval.")
    parser.add_argument("--rec_args", default="", help="More run_recommendation.py flags, e.g. '--max_users 2000'.")
    parser.add_argument("--num_ids", type=int, default=None, help="IDs of the decoding benchmark.")
    parser.add_argument("--model_size", choices=("small", "tiny"), default=None, help="The decoding model.")
    parser.add_argument("--num_beams", type=int, default=20)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=None, help="Timed decoding runs per method and cell.")
    parser.add_argument("--indexing_args", default=None, help="Run bench_indexing.py with these arguments.")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("tests", "decoding", "recommendation", "indexing"),
        default=None,
        help="Parts to run (default: all; indexing with --indexing_args only).",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    defaults = DEVICE_DEFAULTS[args.device]
    args.num_ids = args.num_ids or defaults["num_ids"]
    args.model_size = args.model_size or defaults["model_size"]
    args.repeats = args.repeats or defaults["repeats"]
    args.rec_train_minutes = args.rec_train_minutes or defaults["train_minutes"]
    args.rec_eval_every_minutes = args.rec_eval_every_minutes or defaults["eval_every_minutes"]
    if args.parts is None:
        args.parts = ["tests", "decoding", "recommendation"] + (["indexing"] if args.indexing_args else [])
    if "indexing" in args.parts and args.indexing_args is None:
        parser.error("--parts indexing needs --indexing_args")
    try:
        args.id_files = id_files_by_scheme(args.semantic_ids_file)
    except ValueError as error:
        parser.error(f"--semantic_ids_file {error}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device")
    return args


def run_command(command: list[str], timeout: float | None, env: dict[str, str] | None = None) -> dict:
    """Run `command` in the repository root: its exit status (`None` on timeout), wall seconds and, when it failed,
    the end of its output."""
    logger.info(f"Running {shlex.join(command)}")
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
        returncode, output = completed.returncode, completed.stdout + completed.stderr
    except subprocess.TimeoutExpired as error:
        returncode, output = None, f"timed out after {timeout:.0f} s\n{error.stdout or ''}{error.stderr or ''}"
    return {
        "command": shlex.join(repository_relative(part) for part in command),
        "returncode": returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "output_tail": "" if returncode == 0 else str(output)[-3000:],
    }


def gpu_tests(device: torch.device, work_dir: Path) -> dict:
    """The `gpu` tests of `tests/test_device.py` on `device`, run by pytest in a subprocess: counts and outcomes."""
    report_path = work_dir / "gpu_tests.xml"
    command = [sys.executable, "-m", "pytest", "tests/test_device.py", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    run = run_command(
        [*command, f"--junitxml={report_path}"], TESTS_TIMEOUT_SECONDS, {TEST_DEVICE_VARIABLE: device.type}
    )
    tests = []
    if report_path.is_file():
        for case in ElementTree.parse(report_path).iter("testcase"):
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                element = case.find(kind)
                if element is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                    message = (element.get("message") or "").split("\n")[0][:300]
                    break
            tests.append(
                {
                    "name": case.get("name"),
                    "outcome": outcome,
                    "seconds": float(case.get("time", 0)),
                    "message": message,
                }
            )
    counts = {
        outcome: sum(test["outcome"] == outcome for test in tests)
        for outcome in ("passed", "failed", "error", "skipped")
    }
    return {"device": device.type, **counts, "tests": tests, "run": run}


def decoding_queries(batch_size: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
    """`batch_size` random queries: enough batches of `bench_decoding.random_queries`, cut to size, on `device`."""
    batches = [random_queries(seed + offset) for offset in range(math.ceil(batch_size / BATCH_SIZE))]
    return {name: torch.cat([batch[name] for batch in batches])[:batch_size].to(device) for name in batches[0]}


def time_decoding(
    model: LMIndexerRetriever, queries: dict, num_beams: int, dict_trie, repeats: int, device: torch.device
) -> dict:
    """
    One cell: every method of `DECODING_METHODS` once to warm up (its sequences checked), then `repeats` round-robin
    timed runs, each between two device synchronisations.
    """
    batch_size = queries["input_ids"].shape[0]
    num_steps = model.config.num_levels + 1
    warm_up = {method: decode(model, method, queries, num_beams, dict_trie).cpu() for method in DECODING_METHODS}
    seconds = round_robin_seconds(
        lambda method: decode(model, method, queries, num_beams, dict_trie), DECODING_METHODS, repeats, device
    )
    ms_per_step = {method: round(1000 * statistics.median(times) / num_steps, 4) for method, times in seconds.items()}
    return {
        "batch_size": batch_size,
        "ms_per_query": {method: millisecond_summary(times, batch_size) for method, times in seconds.items()},
        "ms_per_step": ms_per_step,
        "trie_overhead_ms_per_step": round(ms_per_step["trie"] - ms_per_step["unconstrained"], 4),
        "checks": {
            "trie_matches_prefix_fn": torch.equal(warm_up["trie"], warm_up["prefix_fn"]),
            "valid_id_fraction": {
                method: valid_id_fraction(model, sequences) for method, sequences in warm_up.items()
            },
        },
    }


def decoding_latency(args: argparse.Namespace, device: torch.device) -> dict:
    """Every (dtype, batch size) cell of the decoding benchmark on `device`."""
    semantic_ids = random_semantic_ids(args.num_ids, args.seed)
    dict_trie = make_dict_trie(semantic_ids)
    cells, model = [], None
    with torch.inference_mode():
        for dtype_name, dtype in DECODING_DTYPES.items():
            model = build_retriever(args.model_size, semantic_ids, args.seed).to(device=device, dtype=dtype)
            for batch_size in args.batch_sizes:
                logger.info(
                    f"Decoding {args.num_ids:,} IDs, {args.num_beams} beams, batch {batch_size}, {dtype_name}."
                )
                queries = decoding_queries(batch_size, args.seed, device)
                cells.append(
                    {
                        "dtype": dtype_name,
                        **time_decoding(model, queries, args.num_beams, dict_trie, args.repeats, device),
                    }
                )
    return {
        "device": device.type,
        "num_ids": args.num_ids,
        "num_beams": args.num_beams,
        "repeats": args.repeats,
        "model": model_summary(model, args.model_size),
        "methods": {method: METHODS[method] for method in DECODING_METHODS},
        "published": STATIC_PUBLISHED,
        "cells": cells,
    }


def recommendation_run(args: argparse.Namespace, scheme: str, ids_file: Path, work_dir: Path) -> dict:
    """
    One `run_recommendation.py` run on the IDs of `ids_file` (its `--semantic_ids_file`, so none are computed on the
    device). Refused before the run when the file does not cover the Beauty catalogue.
    """
    result = {"id_scheme": scheme, "semantic_ids_file": ids_file.name}
    try:
        semantic_ids = SemanticIDs.load(ids_file)
        catalogue = list(load_corpus("beauty", args.data_dir)["doc_id"])
    except (OSError, ValueError) as error:
        return result | {"error": str(error).splitlines()[0]}
    if semantic_ids.doc_ids != catalogue:
        return result | {
            "error": f"{ids_file.name} holds {len(semantic_ids)} IDs, not those of the {len(catalogue)} Beauty items"
        }
    output_dir = work_dir / f"recommendation-{scheme}"
    output_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "examples/run_recommendation.py",
        "--dataset", "beauty",
        "--data_dir", str(args.data_dir),
        "--semantic_ids_file", str(ids_file),
        "--id_scheme", scheme,
        "--seed", str(args.seed),
        "--output_dir", str(output_dir),
        "--max_train_minutes", str(args.rec_train_minutes),
        "--eval_every_minutes", str(args.rec_eval_every_minutes),
        *BEST_VALIDATION_STATE_FLAGS,
        *(["--bf16", "True"] if args.device == "cuda" else ["--use_cpu", "True"]),
        *shlex.split(args.rec_args),
    ]  # fmt: skip
    run = run_command(command, 60 * args.rec_train_minutes + REC_OVERHEAD_SECONDS)
    result["run"] = run
    report_path = output_dir / "recommendation_report.json"
    if run["returncode"] != 0 or not report_path.is_file():
        return result | {"error": "the run failed"}
    report = json.loads(report_path.read_text(encoding="utf-8"))
    curve = report["curve"]
    return result | {
        "bf16": args.device == "cuda",
        "metrics": report["metrics"],
        "best_validation_recall@10": max((point.get("eval_recall@10", 0.0) for point in curve), default=None),
        "curve": curve,
        "num_test_queries": report["num_test_queries"],
        "stopped_by_time_budget": report["stopped_by_time_budget"],
        "wall_time_seconds": report["wall_time_seconds"],
        "training": report["training"],
        "backbone": report["backbone"],
        "labels": report["labels"],
    }


def indexing_run(args: argparse.Namespace, work_dir: Path) -> dict:
    """`bench_indexing.py` with `--indexing_args`, its results read back."""
    results_dir = work_dir / "indexing"
    command = [
        sys.executable,
        "benchmarks/bench_indexing.py",
        "--results_dir", str(results_dir),
        "--output_dir", str(work_dir / "indexing-job"),
        "--seed", str(args.seed),
        *shlex.split(args.indexing_args),
    ]  # fmt: skip
    run = run_command(command, timeout=None)
    results = sorted(results_dir.glob("indexing_*.json"))
    if run["returncode"] != 0 or not results:
        return {"run": run, "error": "the run failed"}
    result = json.loads(results[0].read_text(encoding="utf-8"))
    return {"run": run} | {
        name: result[name]
        for name in ("dataset", "wall_time_minutes", "target_minutes", "peak_rss_mb", "indexing_report")
    }


def passed(result: dict) -> bool:
    """Whether every part that ran succeeded: tests without failures, only valid IDs when constrained, runs done."""
    checks = []
    if "gpu_tests" in result:
        tests = result["gpu_tests"]
        checks.append(
            tests["run"]["returncode"] == 0 and tests["passed"] > 0 and tests["failed"] == tests["error"] == 0
        )
    if "decoding" in result:
        for cell in result["decoding"]["cells"]:
            fractions = cell["checks"]["valid_id_fraction"]
            checks.append(cell["checks"]["trie_matches_prefix_fn"])
            checks.extend(fractions[method] == 1.0 for method in ("trie", "prefix_fn", "id_only_trie"))
    if "recommendation" in result:
        checks.extend("error" not in run for run in result["recommendation"]["runs"])
    if "indexing" in result:
        checks.append("error" not in result["indexing"])
    return all(checks)


def markdown_report(result: dict) -> str:
    machine = result["machine"]
    lines = [
        f"# Device check: {result['device']}",
        "",
        f"Command: `{result['command']}`; {machine.get('cuda_device') or 'no CUDA device'}, "
        f"{machine.get('cpu_count')} CPUs, torch {machine.get('torch')}, commit {machine.get('git_commit')}, seed "
        f"{result['seed']}. Every number below comes from this machine, on `{result['device']}`. Wall time "
        f"{result['wall_time_seconds']['total']:.0f} s (budget {BUDGET_MINUTES:g} minutes on CUDA). Passed: "
        f"{result['passed']}.",
    ]
    if "gpu_tests" in result:
        tests = result["gpu_tests"]
        lines += ["", f"## gpu tests on {tests['device']}", ""]
        lines += [
            f"{tests['passed']} passed, {tests['failed']} failed, {tests['error']} errors, {tests['skipped']} "
            "skipped.",
            "",
        ]
        lines += markdown_table(
            ["test", "outcome", "seconds", "message"],
            [[test["name"], test["outcome"], round(test["seconds"], 2), test["message"]] for test in tests["tests"]],
        )
    if "decoding" in result:
        decoding = result["decoding"]
        model = decoding["model"]
        published = decoding["published"]
        lines += [
            "",
            f"## Constrained decoding on {decoding['device']}: {decoding['num_ids']:,} IDs, "
            f"{decoding['num_beams']} beams",
            "",
            f"Random {model['backbone']} ({model['model_size']}, {model['parameters'] / 1e6:.1f}M parameters), "
            f"{len(model['codebook_sizes'])} levels x {model['codebook_sizes'][0]} codes; median (min-max) ms per "
            f"query of {decoding['repeats']} round-robin runs. Trie overhead per step: (a) minus (c), per batch and "
            f"decoding step; {published['system']}: {published['ms_per_step']} ms per step ({published['what']}).",
            "",
        ]
        header = ["dtype", "batch", *(decoding["methods"][method] for method in DECODING_METHODS)]
        header += ["trie overhead (ms/step)", "STATIC (ms/step)", "(a) = (b)", "constrained IDs valid"]
        rows = []
        for cell in decoding["cells"]:
            timings = [
                f"{cell['ms_per_query'][method]['median']:.3f} ({cell['ms_per_query'][method]['min']:.3f}-"
                f"{cell['ms_per_query'][method]['max']:.3f})"
                for method in DECODING_METHODS
            ]
            fractions = cell["checks"]["valid_id_fraction"]
            valid = all(fractions[method] == 1.0 for method in ("trie", "prefix_fn", "id_only_trie"))
            rows.append(
                [cell["dtype"], cell["batch_size"], *timings, f"{cell['trie_overhead_ms_per_step']:.4f}",
                 published["ms_per_step"], cell["checks"]["trie_matches_prefix_fn"], valid]
            )  # fmt: skip
        lines += markdown_table(header, rows)
    if "recommendation" in result:
        recommendation = result["recommendation"]
        lines += [
            "",
            f"## Beauty recommendation on {recommendation['device']}",
            "",
            f"`examples/run_recommendation.py`, IDs made on the CPU, {recommendation['train_minutes']:g} training "
            f"minutes, validation every {recommendation['eval_every_minutes']:g}, best validation Recall@10 restored.",
            "",
        ]
        rows = []
        for run in recommendation["runs"]:
            metrics = run.get("metrics", {})
            training = run.get("training", {})
            rows.append(
                [run["id_scheme"], run.get("bf16"), *(metrics.get(name) for name in REC_METRIC_NAMES),
                 run.get("best_validation_recall@10"), training.get("epochs done"),
                 training.get("next-item targets per second"), run.get("stopped_by_time_budget"),
                 run.get("error", "")]
            )  # fmt: skip
        header = ["IDs", "bf16", *REC_METRIC_NAMES, "best validation recall@10", "epochs", "targets/s", "budget stop"]
        lines += markdown_table([*header, "error"], rows)
        for run in recommendation["runs"]:
            if run.get("curve"):
                lines += ["", f"Validation curve, {run['id_scheme']} IDs:", ""]
                lines += learning_curve_table(run["curve"], list(REC_METRIC_NAMES))
    if "indexing" in result:
        indexing = result["indexing"]
        lines += ["", "## Timed indexing run", ""]
        if "error" in indexing:
            lines.append(f"Failed: `{indexing['run']['command']}`.")
        else:
            lines.append(
                f"{indexing['dataset']}: {indexing['wall_time_minutes']} minutes (target "
                f"{indexing['target_minutes']}), peak RSS {indexing['peak_rss_mb']} MB."
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the parts, write `device_check.json` + `.md` to `--output_dir`, and return the JSON content."""
    args = parse_arguments(argv)
    device = torch.device(args.device)
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="device-check-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    logger.info(f"Device check on {device}; the runs' files go to {work_dir}.")
    start = time.perf_counter()
    result = {
        "check": "device",
        "command": shlex.join(
            [
                "bash",
                "benchmarks/device_check.sh",
                *map(repository_relative, argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "device": device.type,
        "seed": args.seed,
        "machine": machine_info(),
        "packages": {name: importlib.metadata.version(name) for name in PACKAGES},
        "budget_minutes": BUDGET_MINUTES,
        "wall_time_seconds": {},
    }
    parts = {
        "tests": ("gpu_tests", lambda: gpu_tests(device, work_dir)),
        "decoding": ("decoding", lambda: decoding_latency(args, device)),
        "recommendation": (
            "recommendation",
            lambda: {
                "device": device.type,
                "train_minutes": args.rec_train_minutes,
                "eval_every_minutes": args.rec_eval_every_minutes,
                "runs": [recommendation_run(args, scheme, path, work_dir) for scheme, path in args.id_files.items()],
            },
        ),
        "indexing": ("indexing", lambda: indexing_run(args, work_dir)),
    }
    for part in args.parts:
        key, run_part = parts[part]
        part_start = time.perf_counter()
        result[key] = run_part()
        result["wall_time_seconds"][key] = round(time.perf_counter() - part_start, 1)
    total = time.perf_counter() - start
    result["wall_time_seconds"]["total"] = round(total, 1)
    result["within_budget"] = total <= 60 * BUDGET_MINUTES
    result["passed"] = passed(result)
    write_report_files(result, markdown_report(result), args.output_dir, "device_check")
    return result


if __name__ == "__main__":
    logging.basicConfig(
        format="%(asctime)s - %(message)s", level=logging.INFO, handlers=[logging.StreamHandler(sys.stdout)]
    )
    sys.exit(0 if main()["passed"] else 1)
