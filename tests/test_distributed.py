"""Two CPU processes (gloo, `accelerate launch --num_processes 2`) learn the same IDs as one at equal global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path


SCRIPT = Path(__file__).parent / "scripts" / "tiny_indexing.py"


def launch(output_dir: Path, num_processes: int, per_device_batch_size: int, sampling: str = "random") -> dict:
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    distributed = ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    command = [accelerate, "launch", *distributed, "--num_processes", str(num_processes), "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533"]
    command += [str(SCRIPT), str(output_dir), str(per_device_batch_size), sampling]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-5000:]
    return json.loads((output_dir / "ids.json").read_text())


def test_two_processes_learn_the_same_ids_as_one(tmp_path, t5_tokenizer):
    one = launch(tmp_path / "one", num_processes=1, per_device_batch_size=8)
    two = launch(tmp_path / "two", num_processes=2, per_device_batch_size=4)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert len({tuple(codes) for codes in two["ids"].values()}) == 40
    assert two["ids"] == one["ids"]
    # The comparison is sensitive: one process at a different global batch learns different IDs.
    smaller_batch = launch(tmp_path / "one-small-batch", num_processes=1, per_device_batch_size=4)
    assert smaller_batch["ids"] != one["ids"]


def test_group_by_length_keeps_two_processes_identical_to_one(tmp_path, t5_tokenizer):
    """Length-grouped batches (level 1) and length-sorted prefix chunks (level 2) are cut from the global batch."""
    one = launch(tmp_path / "one", num_processes=1, per_device_batch_size=8, sampling="group_by_length")
    two = launch(tmp_path / "two", num_processes=2, per_device_batch_size=4, sampling="group_by_length")
    assert len({tuple(codes) for codes in two["ids"].values()}) == 40
    assert two["ids"] == one["ids"]
