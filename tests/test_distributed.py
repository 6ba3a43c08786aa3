"""Two CPU processes (gloo, `accelerate launch --num_processes 2`) learn the same IDs as one at equal global batch,
and share the ranking of a recommender's evaluation users."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import batch_spread, random_codes_ami_ceiling, synthetic_documents, synthetic_topics
from sklearn.metrics import adjusted_mutual_info_score

from modeling_lmindexer.metrics import compute_retrieval_metrics


SCRIPT = Path(__file__).parent / "scripts" / "tiny_indexing.py"
EVALUATION_SCRIPT = Path(__file__).parent / "scripts" / "tiny_recommender_evaluation.py"
BATCH_RECORDER = Path(__file__).parent / "batch_recorder.py"
NUM_DOCUMENTS = len(synthetic_documents())

pytestmark = pytest.mark.slow


def launch(
    output_dir: Path, num_processes: int, per_device_batch_size: int, sampling: str = "random", record: bool = False
) -> dict:
    """
    Train with `tests/scripts/tiny_indexing.py` and return its `ids.json`; with `record`, also every process's
    training batches (see `batch_recorder.py`) under `"batches"`, a list per process rank.
    """
    log_prefix = output_dir / "batches"
    recorder = [str(BATCH_RECORDER), str(log_prefix)] if record else []
    run_launched(num_processes, *recorder, str(SCRIPT), str(output_dir), str(per_device_batch_size), sampling)
    result = json.loads((output_dir / "ids.json").read_text())
    if record:
        result["batches"] = [
            [json.loads(line) for line in Path(f"{log_prefix}.rank{rank}.jsonl").read_text().splitlines()]
            for rank in range(num_processes)
        ]
    return result


def run_launched(num_processes: int, *script_and_arguments: str) -> None:
    """Run a script under `accelerate launch` with `num_processes` CPU processes; fail the test if it fails."""
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    distributed = ["--multi_gpu"] if num_processes > 1 else ["--cpu"]
    command = [accelerate, "launch", *distributed, "--num_processes", str(num_processes), "--num_machines", "1"]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    completed = subprocess.run([*command, *script_and_arguments], env=env, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-5000:]


def level_1_ami(ids: dict) -> float:
    """AMI between the first code of every document's ID and the topic of its synthetic text."""
    topics = synthetic_topics()
    doc_topics = [topics[int(doc_id.removeprefix("doc-"))] for doc_id in ids]
    return adjusted_mutual_info_score(doc_topics, [codes[0] for codes in ids.values()])


def global_epochs(batches_per_rank: list[list[dict]]) -> list[tuple[int, list[int], list[int]]]:
    """
    The training order as the sampler dealt it, `(level, doc indices, token counts)` per epoch: the processes'
    batches of one step side by side (accelerate gives process `r` every `world_size`-th batch of the sampler's
    order), and the steps cut into epochs of the corpus.
    """
    steps = list(zip(*batches_per_rank, strict=True))
    epochs, indices, lengths = [], [], []
    for step in steps:
        assert len({batch["level"] for batch in step}) == 1, "the processes trained different levels at one step"
        for batch in step:
            indices += batch["doc_indices"]
            lengths += batch["lengths"]
        if len(indices) == NUM_DOCUMENTS:
            assert sorted(indices) == list(range(NUM_DOCUMENTS)), "an epoch saw some document twice"
            epochs.append((step[0]["level"], indices, lengths))
            indices, lengths = [], []
    assert not indices, "the last epoch is incomplete"
    return epochs


def test_two_processes_learn_the_same_ids_as_one(tmp_path, t5_tokenizer):
    one = launch(tmp_path / "one", num_processes=1, per_device_batch_size=8)
    two = launch(tmp_path / "two", num_processes=2, per_device_batch_size=4)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    # The IDs are unique by construction; what can fail is their quality: level 1 follows the topics of the texts.
    assert level_1_ami(two["ids"]) > random_codes_ami_ceiling(synthetic_topics(), 4)
    assert two["ids"] == one["ids"]
    # The comparison is sensitive: one process at a different global batch learns different IDs.
    smaller_batch = launch(tmp_path / "one-small-batch", num_processes=1, per_device_batch_size=4)
    assert smaller_batch["ids"] != one["ids"]


def test_group_by_length_keeps_two_processes_identical_to_one(tmp_path, t5_tokenizer):
    """Length-grouped batches (level 1) and length-sorted prefix chunks (level 2) are cut from the global batch."""
    one = launch(tmp_path / "one", num_processes=1, per_device_batch_size=8, sampling="group_by_length", record=True)
    two = launch(tmp_path / "two", num_processes=2, per_device_batch_size=4, sampling="group_by_length", record=True)
    assert level_1_ami(two["ids"]) > random_codes_ami_ceiling(synthetic_topics(), 4)
    assert two["ids"] == one["ids"]
    epochs = global_epochs(one["batches"])
    # Both runs trained on the same global batches in the same order.
    assert global_epochs(two["batches"]) == epochs
    # The strategy is active, not the random sampler. At level 1 transformers' LengthGroupedSampler sorts each
    # mega-batch (here one global batch of 8: 40 documents are too few for more) longest first, then swaps the corpus's
    # longest document to the front of the epoch; so past its first document every batch is in non-increasing length.
    level_1 = [lengths for level, _, lengths in epochs if level == 0]
    level_2 = [lengths for level, _, lengths in epochs if level == 1]
    assert len(level_1) == 3 and len(level_2) == 2  # level 1: warm-up, continuous, joint; level 2: continuous, joint
    for lengths in level_1:
        assert lengths[0] == max(lengths)
        for start in range(0, NUM_DOCUMENTS, 8):
            batch = lengths[start + 1 : start + 8]
            assert batch == sorted(batch, reverse=True), lengths
    # At level 2 the PrefixGroupedSampler orders the prefix chunks of the epoch (one mega-batch) by their longest
    # document, so that a process's batch of 4 holds documents of similar length: less padding than 99% of random
    # orders of the same documents (measured when written: a spread of 1.2 tokens per batch; random orders 2.3 on
    # average, 1.8 at their 1st percentile).
    rng = np.random.default_rng(0)
    for lengths in level_2:
        lengths = np.asarray(lengths)
        random_spreads = [batch_spread(rng.permutation(lengths), 4) for _ in range(1000)]
        assert batch_spread(lengths, 4) < np.quantile(random_spreads, 0.01), (
            batch_spread(lengths, 4),
            np.mean(random_spreads),
        )


def test_two_processes_rank_half_the_users_each_and_report_the_metrics_of_all(tmp_path):
    """The recommender trainer's evaluate() shares the users between processes and gathers the rankings back in
    order: every process reports the metrics that one process computes alone."""
    for num_processes in (1, 2):
        run_launched(num_processes, str(EVALUATION_SCRIPT), str(tmp_path / str(num_processes)))
    one = json.loads((tmp_path / "1" / "evaluation.rank0.json").read_text())
    two = [json.loads((tmp_path / "2" / f"evaluation.rank{rank}.json").read_text()) for rank in range(2)]
    assert len(one["ranked"]) == 9
    assert [len(result["ranked"]) for result in two] == [5, 4]
    assert sorted(map(str, two[0]["ranked"] + two[1]["ranked"])) == sorted(map(str, one["ranked"]))
    # The targets sit at ranks 1 to 9 of their users' rankings: recall@1 is 1/9 and recall@5 5/9.
    assert one["metrics"]["eval_recall@1"] == pytest.approx(1 / 9)
    assert one["metrics"]["eval_recall@5"] == pytest.approx(5 / 9)
    # The check can fail: the rankings given back shard after shard (users 0, 2, ..., 8, then 1, 3, ..., 7) would
    # score otherwise.
    shard_order = [*range(0, 9, 2), *range(1, 9, 2)]
    misplaced = compute_retrieval_metrics(
        [one["rankings"][user] for user in shard_order], [{target} for target in one["targets"]], [1, 5, 10]
    )
    assert (misplaced["recall@1"], misplaced["ndcg@10"]) != pytest.approx(
        (one["metrics"]["eval_recall@1"], one["metrics"]["eval_ndcg@10"])
    )
    for result in two:
        assert result["metrics"] == pytest.approx(one["metrics"])
