#!/usr/bin/env python
"""Time the main job end to end and keep its indexing report: `python benchmarks/bench_indexing.py [--dataset beauty]`.

Runs `accelerate launch examples/run_indexing.py` with the given arguments in a fresh process, measures its wall time
and peak memory, and writes `benchmarks/results/indexing_<dataset>.json` + `.md`: the wall time against the target
(30 minutes for the default MovieLens-1M run, 3 hours for Beauty), the machine, the commit, the seed, and the job's
own `indexing_report` (per-level code usage, collision rates, AMI, per-stage wall time and memory).
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

from trainers.report import machine_info  # noqa: E402


TARGET_MINUTES = {"movielens": 30, "beauty": 180}


def parse_arguments() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--data_dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--output_dir", default=None, help="Job output (default: outputs/bench-<dataset>).")
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue a stopped run in output_dir; the wall time is then the sum of the report's stage wall times.",
    )
    return parser.parse_known_args()


def main() -> None:
    args, job_arguments = parse_arguments()
    output_dir = Path(args.output_dir or REPO_ROOT / "outputs" / f"bench-{args.dataset}")
    if not args.resume:
        shutil.rmtree(output_dir, ignore_errors=True)
    command = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        str(REPO_ROOT / "examples" / "run_indexing.py"),
        "--dataset",
        args.dataset,
        "--output_dir",
        str(output_dir),
        "--seed",
        str(args.seed),
        *(["--data_dir", args.data_dir] if args.dataset != "movielens" else []),
        *job_arguments,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    invocation_time = time.perf_counter() - start
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    report = json.loads((output_dir / "indexing_report.json").read_text())
    # A resumed run's own time misses the stages of earlier invocations; the stages' sum covers them all (minus the
    # final save and the baseline row, which are outside the stages).
    wall_time = report["total_wall_time_seconds"] if args.resume else invocation_time
    target = TARGET_MINUTES.get(args.dataset)
    result = {
        "dataset": args.dataset,
        "command": " ".join(["accelerate", *command[1:]]),
        "wall_time_minutes": round(wall_time / 60, 2),
        "resumed": args.resume,
        "last_invocation_minutes": round(invocation_time / 60, 2),
        "target_minutes": target,
        "within_target": None if target is None else wall_time / 60 <= target,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "seed": args.seed,
        "machine": machine_info(),
        "indexing_report": report,
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"indexing_{args.dataset}.json").write_text(json.dumps(result, indent=2))
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
    ]
    (results_dir / f"indexing_{args.dataset}.md").write_text("\n".join(summary))


if __name__ == "__main__":
    main()
