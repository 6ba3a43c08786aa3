#!/usr/bin/env python
"""Time the main job end to end and keep its indexing report: `python benchmarks/bench_indexing.py [--dataset beauty]`.

`--corpus_file my_docs.jsonl` (with the job's corpus flags, e.g. `--text_column title body`) times it on your own
corpus instead, into `indexing_my_docs.*`.

Runs `accelerate launch examples/run_indexing.py` with the given arguments in a fresh process, measures its wall time
and peak memory, and writes `benchmarks/results/indexing_<dataset>.json` + `.md`: the wall time against the target
(30 minutes for the default MovieLens-1M run, 3 hours for Beauty), the machine, the commit, the seed, and the job's
own `indexing_report` (per-level code usage, collision rates, AMI, per-stage wall time and memory, how often the
saved model predicts its stored IDs).

`--new_document_fraction 0.1` measures IDs of new documents (`indexing_<dataset>_new_documents.*`): the job learns IDs
for 90% of the corpus and gives the held-out 10% IDs with `add_documents`, without retraining; its report compares
their ID quality with the indexed documents'. For a document retrieval corpus (Cranfield, SciFact, ...), the
retriever built from the indexer with no fine-tuning (`LMIndexerRetriever.from_indexer`, 20 beams) then answers the
test queries, and the metrics are computed separately over their new and their indexed relevant documents.
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_quality import zero_shot_rankings  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from modeling_lmindexer import LMIndexerForSemanticID, LMIndexerRetriever  # noqa: E402
from modeling_lmindexer.data import load_corpus  # noqa: E402
from modeling_lmindexer.data.retrieval_tasks import DOCUMENT_RETRIEVAL_DATASETS, load_retrieval_task  # noqa: E402
from modeling_lmindexer.data.user_files import TableSource  # noqa: E402
from modeling_lmindexer.metrics import compute_retrieval_metrics  # noqa: E402
from trainers.report import machine_info, repository_relative  # noqa: E402


TARGET_MINUTES = {"movielens": 30, "beauty": 180}
RETRIEVAL_K_VALUES = (1, 10)
RETRIEVAL_NUM_BEAMS = 20


def parse_arguments() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument(
        "--corpus_file",
        default=None,
        help="Your own corpus instead of --dataset (a .jsonl, .csv, .tsv or .parquet file; the results are named "
        "after its stem); --text_column, --id_column and the other corpus flags pass through to the job.",
    )
    parser.add_argument("--data_dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--output_dir", default=None, help="Job output (default: outputs/bench-<dataset>).")
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--results_name",
        default=None,
        help="Stem of the result files and of the default --output_dir (default: the dataset's name), e.g. "
        "beauty_bf16 to keep a run with other job flags beside the main one.",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--new_document_fraction",
        type=float,
        default=0.0,
        help="Hold out this fraction of the corpus and add it after training with add_documents (see above).",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue a stopped run in output_dir; the wall time is then the sum of the report's stage wall times.",
    )
    return parser.parse_known_args()


def new_document_retrieval(output_dir: Path, dataset: str, data_dir: str, new_doc_ids: set[str]) -> dict:
    """
    Test-query metrics of the retriever built from the saved indexer with no fine-tuning, over the relevant documents
    that were added after training (`"new"`), over those indexed in training (`"indexed"`), and over all of them;
    each row keeps the queries with at least one relevant document of its kind.
    """
    indexer = LMIndexerForSemanticID.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    retriever = LMIndexerRetriever.from_indexer(indexer)
    task = load_retrieval_task(dataset, data_dir, load_corpus(dataset, data_dir))
    task = task.restrict_to_documents(retriever.semantic_ids.doc_ids)
    ((rankings, milliseconds_per_query),) = zero_shot_rankings(
        retriever, tokenizer, [query.source for query in task.test], max(RETRIEVAL_K_VALUES), [RETRIEVAL_NUM_BEAMS]
    ).values()
    threshold = task.relevance_threshold
    subsets = {"new": lambda doc_id: doc_id in new_doc_ids, "indexed": lambda doc_id: doc_id not in new_doc_ids}
    subsets["all"] = lambda doc_id: True
    rows = {}
    for name, in_subset in subsets.items():
        references, predictions = [], []
        for query, ranking in zip(task.test, rankings):
            relevant = {doc_id: grade for doc_id, grade in query.relevance.items() if grade > 0 and in_subset(doc_id)}
            if any(grade >= threshold for grade in relevant.values()):
                references.append(relevant)
                predictions.append(ranking)
        metrics = (
            compute_retrieval_metrics(predictions, references, RETRIEVAL_K_VALUES, threshold) if references else {}
        )
        rows[name] = {
            "queries": len(references),
            "relevant documents": sum(len(relevant) for relevant in references),
            **metrics,
        }
    return {
        "retriever": "LMIndexerRetriever.from_indexer, no fine-tuning",
        "num_beams": RETRIEVAL_NUM_BEAMS,
        "relevance_threshold": threshold,
        "milliseconds_per_query": milliseconds_per_query,
        "labels": task.labels,
        "rows": rows,
    }


def new_document_markdown(retrieval: dict) -> list[str]:
    metric_names = [f"{metric}@{k}" for metric in ("recall", "ndcg", "mrr") for k in RETRIEVAL_K_VALUES]
    lines = [
        "## Retrieval over new and indexed documents (from-indexer retriever, no fine-tuning)",
        "",
        f"{retrieval['retriever']}, {retrieval['num_beams']} beams, {retrieval['milliseconds_per_query']:.1f} ms per "
        "query. Each row: the test queries with at least one relevant document of that kind, judged on those "
        "documents only.",
        "",
        f"| relevant documents | queries | judged documents | {' | '.join(metric_names)} |",
        f"|---|---|---|{'---|' * len(metric_names)}",
    ]
    for name, row in retrieval["rows"].items():
        values = " | ".join(f"{row[metric]:.4f}" if metric in row else "n/a" for metric in metric_names)
        lines.append(f"| {name} | {row['queries']} | {row['relevant documents']} | {values} |")
    return lines


def main() -> None:
    args, job_arguments = parse_arguments()
    if args.new_document_fraction:
        job_arguments += ["--new_document_fraction", str(args.new_document_fraction)]
    if args.corpus_file is not None:
        args.dataset = TableSource(args.corpus_file).name
        corpus_arguments = ["--corpus_file", str(Path(args.corpus_file).resolve())]
    else:
        corpus_arguments = [
            "--dataset",
            args.dataset,
            *(["--data_dir", args.data_dir] if args.dataset != "movielens" else []),
        ]
    name = args.results_name or (f"{args.dataset}_new_documents" if args.new_document_fraction else args.dataset)
    output_dir = Path(args.output_dir or REPO_ROOT / "outputs" / f"bench-{name}")
    if not args.resume:
        shutil.rmtree(output_dir, ignore_errors=True)
    command = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        str(REPO_ROOT / "examples" / "run_indexing.py"),
        *corpus_arguments,
        "--output_dir",
        str(output_dir),
        "--seed",
        str(args.seed),
        *job_arguments,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    invocation_time = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    report = json.loads((output_dir / "indexing_report.json").read_text())
    retrieval = None
    if args.new_document_fraction and args.corpus_file is None and args.dataset in DOCUMENT_RETRIEVAL_DATASETS:
        num_new = report["new_documents"]["new documents"]
        jsonl_lines = (output_dir / "semantic_ids.jsonl").read_text(encoding="utf-8").splitlines()
        new_doc_ids = {json.loads(line)["doc_id"] for line in jsonl_lines[len(jsonl_lines) - num_new :]}
        retrieval = new_document_retrieval(output_dir, args.dataset, args.data_dir, new_doc_ids)
    # A resumed run's own time misses the stages of earlier invocations; the stages' sum covers them all (minus the
    # final save and the baseline row, which are outside the stages).
    wall_time = report["total_wall_time_seconds"] if args.resume else invocation_time
    target = TARGET_MINUTES.get(args.dataset)
    result = {
        "dataset": args.dataset,
        "command": " ".join(["accelerate", *(repository_relative(part) for part in command[1:])]),
        "wall_time_minutes": round(wall_time / 60, 2),
        "resumed": args.resume,
        "last_invocation_minutes": round(invocation_time / 60, 2),
        "target_minutes": target,
        "within_target": None if target is None else wall_time / 60 <= target,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "seed": args.seed,
        "machine": machine_info(),
        "indexing_report": report,
        "new_document_retrieval": retrieval,
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"indexing_{name}.json").write_text(json.dumps(result, indent=2))
    summary = [
        f"# Indexing benchmark: {args.dataset}",
        "",
        "| dataset | documents | wall time (min) | target (min) | within target | peak RSS (MB) | commit | seed |",
        "|---|---|---|---|---|---|---|---|",
        f"| {args.dataset} | {report['num_documents']} | {result['wall_time_minutes']} | {target} | "
        f"{result['within_target']} | {result['peak_rss_mb']} | {result['machine'].get('git_commit')} | {args.seed} |",
        "",
        f"Command: `{result['command']}`; machine: {result['machine'].get('platform')}, "
        f"{result['machine'].get('cpu_count')} CPUs, torch {result['machine'].get('torch')}.",
        "",
        (output_dir / "indexing_report.md").read_text(),
        *(new_document_markdown(retrieval) if retrieval is not None else []),
    ]
    (results_dir / f"indexing_{name}.md").write_text("\n".join(summary) + "\n")


if __name__ == "__main__":
    main()
