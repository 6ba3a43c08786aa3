#!/usr/bin/env python
"""Faults the main job must survive: `python benchmarks/bench_faults.py [--num_kills 8]`.

Kills: a small run of `examples/run_indexing.py` (MovieLens-1M items, the offline MiniLM backbone) is run once without
interruption, its log giving the moments each phase starts (setup, every stage of the plan by kind: `kmeans`,
`assign`, `train`, `reassign`, the `save` after each stage, and the `final save` of the model, IDs and report). Each
kill then starts the same command in a fresh folder, sends it SIGKILL at a random moment of a phase (phases taken in
turn so every kind is hit), and runs the command again until it finishes; the run passes when its
`semantic_ids.json` equals the uninterrupted run's and the report's ID metrics (per-level code usage, collision rates,
AMI, stored = predicted) are the same.

Corrupt files: every file of a saved indexer folder and every benchmark data file in `--data_dir` is truncated to
half, and separately overwritten in the middle with bytes that are neither UTF-8 nor JSON, in a copy, and loaded as
the example scripts load it. A load passes when it ends in one error line naming the file; a corruption that leaves a
file the loader can still read (a cut SMART text file, a model card) is reported as `loaded`.

Writes `benchmarks/results/faults.json` + `.md` with the commit, seed and machine.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from modeling_lmindexer.data import (  # noqa: E402
    load_amazon_beauty,
    load_amazon_office,
    load_cacm_corpus,
    load_cacm_queries,
    load_cranfield_corpus,
    load_cranfield_queries,
    load_msmarco5k_corpus,
    load_msmarco5k_queries,
    load_scifact_corpus,
    load_scifact_queries,
)
from modeling_lmindexer.data.recommendation import load_beauty_sequences, load_office_sequences  # noqa: E402
from trainers.report import machine_info  # noqa: E402


JOB_SCRIPT = REPO_ROOT / "examples" / "run_indexing.py"
SMALL_JOB_ARGUMENTS = (
    "--max_documents", "96", "--codebook_sizes", "4", "4", "--warmup_epochs", "0.5", "--continuous_epochs", "0.5",
    "--joint_epochs", "0.5", "--per_device_train_batch_size", "16", "--save_steps", "1", "--kmeans_baseline", "False",
)  # fmt: skip
# Report fields that must not change when a run is killed and re-run (the wall times do).
ID_METRIC_FIELDS = (
    "per_level",
    "collision_rate_before_resolution",
    "collision_rate_after_resolution",
    "ami_level_1",
    "ami_full_id",
    "prediction_agreement",
)
# Log lines of run_indexing.py that start a phase, and the phase they start.
PHASE_MARKERS = (
    (re.compile(r"Indexing \d+ documents of"), lambda match: "setup"),
    (re.compile(r"Stage \d+/\d+ '[^']+' \((\w+), level"), lambda match: match.group(1)),
    (re.compile(r"Finished stage '"), lambda match: "save"),
    (re.compile(r"Assigned \d+ unique semantic IDs"), lambda match: "final save"),
)
RESUME_MARKER = re.compile(r"Resuming .* at stage (\d+)/")
CORRUPTION_OUTCOMES = ("clear error", "unclear error", "loaded")
GARBAGE = b"\xff\xfe\x00garbage\x80{"
CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "garbage": lambda data: data[: len(data) // 2] + GARBAGE + data[len(data) // 2 + len(GARBAGE) :],
}
# Every benchmark data file (relative to the data folder) and a load that reads it.
DATA_FILE_LOADS: dict[str, Callable[[Path], object]] = {
    "amazon-beauty-2014-text/Beauty.items.derived.json": load_amazon_beauty,
    "amazon-beauty-2014-interactions/Beauty.inter.json": load_beauty_sequences,
    "amazon-office-2014/Office.item.json": load_amazon_office,
    "amazon-office-2014/Office.inter.json": load_office_sequences,
    "scifact/scifact.zip": load_scifact_corpus,
    "scifact/qrels.train.tsv": partial(load_scifact_queries, split="train"),
    "scifact/qrels.test.tsv": partial(load_scifact_queries, split="test"),
    "msmarco-passage-5k-trecdl/corpus.jsonl": load_msmarco5k_corpus,
    "msmarco-passage-5k-trecdl/queries.jsonl": load_msmarco5k_queries,
    "msmarco-passage-5k-trecdl/qrels.test.tsv": load_msmarco5k_queries,
    "cranfield/cran.all.1400": load_cranfield_corpus,
    "cranfield/cran.qry": load_cranfield_queries,
    "cranfield/cranqrel": load_cranfield_queries,
    "cacm/cacm.all": load_cacm_corpus,
    "cacm/query.text": load_cacm_queries,
    "cacm/qrels.text": load_cacm_queries,
}


@dataclass
class Phase:
    """One phase of a job's log: its kind and when it started, in seconds after the job's first phase."""

    kind: str
    start_seconds: float


@dataclass
class JobRun:
    """
    One invocation of the job: its exit code, phases, when it ended (seconds after its first phase), the stage it
    resumed at (1-based) and its output tail.
    """

    returncode: int
    phases: list[Phase]
    end_seconds: float
    resumed_at_stage: int | None
    killed_in: str | None
    output_tail: str


def run_job(output_dir: Path, job_arguments: tuple[str, ...], kill_at: tuple[int, float] | None = None) -> JobRun:
    """
    Run the job once; with `kill_at = (phase_index, delay)`, send it SIGKILL `delay` seconds after the start of its
    phase number `phase_index` (or when it ends, if the phase is shorter). Phases are read from its log as it runs.
    """
    command = [sys.executable, str(JOB_SCRIPT), *job_arguments, "--output_dir", str(output_dir)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    phases: list[Phase] = []
    lines: list[str] = []
    first_phase_time: list[float] = []

    def read_log() -> None:
        for line in process.stdout:
            lines.append(line)
            for pattern, kind in PHASE_MARKERS:
                match = pattern.search(line)
                if match:
                    now = time.monotonic()
                    first_phase_time[:] = first_phase_time or [now]
                    phases.append(Phase(kind(match), now - first_phase_time[0]))

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    killed_in = None
    while process.poll() is None:
        if kill_at is not None and killed_in is None and len(phases) > kill_at[0]:
            phase = phases[kill_at[0]]
            elapsed = time.monotonic() - first_phase_time[0] - phase.start_seconds
            if elapsed >= kill_at[1] or len(phases) > kill_at[0] + 1:
                killed_in = phases[-1].kind
                process.send_signal(signal.SIGKILL)
        time.sleep(0.01)
    reader.join()
    end_seconds = time.monotonic() - first_phase_time[0] if first_phase_time else 0.0
    resumed = next((int(m.group(1)) for line in lines if (m := RESUME_MARKER.search(line))), None)
    return JobRun(process.returncode, phases, end_seconds, resumed, killed_in, "".join(lines[-20:]))


def id_metrics(output_dir: Path) -> dict:
    """The report fields that a kill must not change."""
    report = json.loads((output_dir / "indexing_report.json").read_text(encoding="utf-8"))
    return {name: report[name] for name in ID_METRIC_FIELDS}


def kill_trials(
    work_dir: Path, num_kills: int, seed: int, job_arguments: tuple[str, ...], phase_kinds: list[str] | None = None
) -> dict:
    """
    The uninterrupted run, then `num_kills` killed and re-run ones compared with it (see the module docstring), the
    kills going to the phases of `phase_kinds` in turn (default: every kind the uninterrupted run went through).
    """
    reference_dir = work_dir / "uninterrupted"
    start = time.perf_counter()
    reference = run_job(reference_dir, job_arguments)
    if reference.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed:\n{reference.output_tail}")
    reference_seconds = time.perf_counter() - start
    reference_ids = (reference_dir / "semantic_ids.json").read_text(encoding="utf-8")
    reference_metrics = id_metrics(reference_dir)
    phase_ends = [phase.start_seconds for phase in reference.phases[1:]] + [reference.end_seconds]
    durations = [
        (phase.kind, index, end - phase.start_seconds)
        for index, (phase, end) in enumerate(zip(reference.phases, phase_ends, strict=True))
    ]
    run_kinds = sorted({kind for kind, _, _ in durations})
    kinds = phase_kinds or run_kinds
    if not set(kinds) <= set(run_kinds):
        raise ValueError(f"--kill_phases {kinds}: the uninterrupted run has only the phases {run_kinds}")
    rng = random.Random(seed)
    trials = []
    for trial in range(num_kills):
        kind = kinds[trial % len(kinds)]
        _, phase_index, duration = rng.choice([entry for entry in durations if entry[0] == kind])
        delay = rng.uniform(0.0, duration)
        output_dir = work_dir / f"kill-{trial}"
        killed = run_job(output_dir, job_arguments, kill_at=(phase_index, delay))
        rerun = run_job(output_dir, job_arguments)
        same_ids = (
            rerun.returncode == 0 and (output_dir / "semantic_ids.json").read_text(encoding="utf-8") == reference_ids
        )
        trials.append(
            {
                "target_phase": kind,
                "phase_index": phase_index,
                "delay_seconds": round(delay, 3),
                "killed_in": killed.killed_in,
                "killed": killed.returncode == -signal.SIGKILL,
                "rerun_returncode": rerun.returncode,
                "resumed_at_stage": rerun.resumed_at_stage,
                "same_ids": same_ids,
                "same_id_metrics": same_ids and id_metrics(output_dir) == reference_metrics,
                "rerun_output_tail": None if rerun.returncode == 0 else rerun.output_tail,
            }
        )
        shutil.rmtree(output_dir, ignore_errors=True)
    return {
        "job_arguments": list(job_arguments),
        "uninterrupted_seconds": reference_seconds,
        "phases": [asdict(phase) for phase in reference.phases],
        "trials": trials,
        "survived": sum(trial["killed"] and trial["same_id_metrics"] for trial in trials),
    }


def load_saved_indexer(folder: Path) -> None:
    """Load an indexer folder as the example scripts do: the model with its IDs, then its tokenizer."""
    from transformers import AutoTokenizer

    from modeling_lmindexer import LMIndexerForSemanticID

    LMIndexerForSemanticID.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)


def corruption_outcome(load: Callable[[], object], path: Path) -> dict:
    """
    Run `load` and classify what happened: `clear error` (an `OSError` or `ValueError` whose message is one line
    naming `path`), `unclear error` (anything else raised) or `loaded`.
    """
    try:
        load()
    except (OSError, ValueError) as error:
        message = str(error)
        named = str(path) in message or path.name in message
        outcome = "clear error" if named and "\n" not in message.strip() else "unclear error"
        return {"outcome": outcome, "error": f"{type(error).__name__}: {message.strip().splitlines()[0][:300]}"}
    except Exception as error:  # noqa: BLE001 - any other exception is exactly what this check reports
        return {"outcome": "unclear error", "error": f"{type(error).__name__}: {str(error).strip()[:300]}"}
    return {"outcome": "loaded", "error": None}


def corrupt_copies(
    source_folder: Path, relative_files: list[str], load: Callable[[Path, str], object], work_dir: Path
) -> list[dict]:
    """
    For each file of `relative_files` and each corruption, copy `source_folder`'s top folder of that file, corrupt the
    file in the copy, and classify `load(copy_root, relative_file)` (see [`corruption_outcome`]).
    """
    rows = []
    for relative_file in relative_files:
        top = Path(relative_file).parts[0]
        for name, corrupt in CORRUPTIONS.items():
            copy_root = work_dir / "corrupt"
            shutil.rmtree(copy_root, ignore_errors=True)
            if (source_folder / top).is_dir():
                shutil.copytree(source_folder / top, copy_root / top)
                os.chmod(copy_root / relative_file, 0o644)
            else:
                shutil.copytree(source_folder, copy_root)
            target = copy_root / relative_file
            target.write_bytes(corrupt(target.read_bytes()))
            outcome = corruption_outcome(partial(load, copy_root, relative_file), target)
            if outcome["error"] is not None:
                # Results name no machine paths.
                outcome["error"] = outcome["error"].replace(str(copy_root), "<copy>")
            rows.append({"file": relative_file, "corruption": name, **outcome})
    shutil.rmtree(work_dir / "corrupt", ignore_errors=True)
    return rows


def indexer_corruption_rows(indexer_dir: Path, work_dir: Path) -> list[dict]:
    """Corrupt each file of a saved indexer folder in turn (see [`corrupt_copies`])."""
    files = sorted(path.name for path in indexer_dir.iterdir() if path.is_file())
    return corrupt_copies(indexer_dir, files, lambda root, relative_file: load_saved_indexer(root), work_dir)


def data_corruption_rows(data_dir: Path, work_dir: Path) -> list[dict]:
    """Corrupt each benchmark data file present in `data_dir` in turn (see [`corrupt_copies`])."""
    files = [relative for relative in DATA_FILE_LOADS if (data_dir / relative).is_file()]
    return corrupt_copies(data_dir, files, lambda root, relative_file: DATA_FILE_LOADS[relative_file](root), work_dir)


def markdown(result: dict) -> str:
    kills = result["kills"]
    lines = [
        "# Fault injection: kills and corrupt files",
        "",
        f"Commit {result['machine']['git_commit']}; seed {result['seed']}; machine: {result['machine']['platform']}, "
        f"{result['machine']['cpu_count']} CPUs, torch {result['machine']['torch']}; total wall time "
        f"{result['wall_time_minutes']:.1f} min.",
        "",
        "## Kills (SIGKILL, then the same command again)",
        "",
        f"Job: `python examples/run_indexing.py {' '.join(kills['job_arguments'])}`; uninterrupted run "
        f"{kills['uninterrupted_seconds']:.0f} s. **{kills['survived']} of {len(kills['trials'])} kills survived** "
        "(same `semantic_ids.json` and the same ID metrics as the uninterrupted run).",
        "",
        "| target phase | killed in | delay (s) | killed | re-run resumed at stage | same IDs | same ID metrics |",
        "|---|---|---|---|---|---|---|",
    ]
    for trial in kills["trials"]:
        lines.append(
            f"| {trial['target_phase']} | {trial['killed_in']} | {trial['delay_seconds']} | {trial['killed']} | "
            f"{trial['resumed_at_stage'] or 'start'} | {trial['same_ids']} | {trial['same_id_metrics']} |"
        )
    for title, rows in (("saved indexer folder", result["indexer_files"]), ("data files", result["data_files"])):
        counts = {outcome: sum(row["outcome"] == outcome for row in rows) for outcome in CORRUPTION_OUTCOMES}
        lines += [
            "",
            f"## Corrupt files: {title}",
            "",
            f"{counts['clear error']} clear errors, {counts['unclear error']} unclear errors, "
            f"{counts['loaded']} loaded of {len(rows)} corrupt copies.",
            "",
            "| file | corruption | outcome | error |",
            "|---|---|---|---|",
            *(
                f"| {row['file']} | {row['corruption']} | {row['outcome']} | {(row['error'] or '').replace('|', '/')} "
                "|"
                for row in rows
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--kill_phases", nargs="+", default=None, help="Phase kinds to kill in (default: every kind, in turn)."
    )
    parser.add_argument("--data_dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--job_arguments",
        nargs=argparse.REMAINDER,
        default=list(SMALL_JOB_ARGUMENTS),
        help="Arguments of examples/run_indexing.py for the killed job (last; default: a small MovieLens run).",
    )
    args = parser.parse_args(argv)
    job_arguments = (*args.job_arguments, "--seed", str(args.seed))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmindexer-faults-") as work:
        work_dir = Path(work)
        kills = kill_trials(work_dir, args.num_kills, args.seed, job_arguments, args.kill_phases)
        indexer_rows = indexer_corruption_rows(work_dir / "uninterrupted", work_dir)
    with tempfile.TemporaryDirectory(prefix="lmindexer-faults-") as work:
        data_rows = data_corruption_rows(Path(args.data_dir), Path(work))
    result = {
        "seed": args.seed,
        "machine": machine_info(),
        "wall_time_minutes": (time.perf_counter() - start) / 60,
        "kills": kills,
        "indexer_files": indexer_rows,
        "data_files": data_rows,
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "faults.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (results_dir / "faults.md").write_text(markdown(result), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
