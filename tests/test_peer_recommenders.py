"""benchmarks/peer_recommenders.py: cornac's SASRec and TIGER trained on the leave-one-out split for a budget.

No real data: 60 synthetic users over 30 items whose every next item is the item after the last one (item `i` is
followed by item `i + 1`, modulo 30), so a sequential model can learn it and popularity or random ranking cannot
(random Recall@10 is 1/3). Tiny model configs; the whole file takes about 20 s on one core.
"""

import importlib.util
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_lmindexer.data.recommendation import leave_one_out_split
from modeling_lmindexer.metrics import compute_retrieval_metrics


MODULE = Path(__file__).resolve().parents[1] / "benchmarks" / "peer_recommenders.py"
ITEMS = [f"item-{index}" for index in range(30)]
TINY_SASREC = {
    "embedding_dim": 32,
    "num_blocks": 1,
    "max_len": 10,
    "batch_size": 32,
    "n_sample": 16,
    "learning_rate": 5e-3,
}
TINY_TIGER = {
    "rqvae_num_levels": 2,
    "rqvae_codebook_size": 4,
    "d_model": 32,
    "d_ff": 64,
    "num_heads": 2,
    "d_kv": 16,
    "num_enc_layers": 1,
    "num_dec_layers": 1,
    "batch_size": 32,
    "learning_rate": 5e-3,
    "n_beams": 10,
}
# Generous: the learning checks stop on steps, not on the clock, so a loaded machine cannot make them fail.
NO_BUDGET = 5.0


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peer_recommenders", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def patterned_sequences(num_users: int = 60, seed: int = 0) -> dict[str, list[str]]:
    generator = random.Random(seed)
    sequences = {}
    for user in range(num_users):
        start, length = generator.randrange(len(ITEMS)), generator.randint(5, 9)
        sequences[f"user-{user}"] = [ITEMS[(start + offset) % len(ITEMS)] for offset in range(length)]
    return sequences


@pytest.fixture(scope="module")
def split():
    return leave_one_out_split(patterned_sequences())


def popularity_test_metrics(split) -> dict[str, float]:
    """The bench's popularity row: the most frequent training targets for every user."""
    most_popular = [item for item, _ in Counter(example.target for example in split.train).most_common(10)]
    return compute_retrieval_metrics([most_popular] * len(split.test), [{ex.target} for ex in split.test], (5, 10))


def check_result(result: dict, num_users: int) -> None:
    for point in result["curve"]:
        for split_name in ("validation", "test"):
            assert set(point[split_name]) == {"recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr@5", "mrr@10"}
            assert all(0.0 <= value <= 1.0 for value in point[split_name].values())
            assert point[split_name]["recall@5"] <= point[split_name]["recall@10"]
    minutes = [point["training_minutes"] for point in result["curve"]]
    assert minutes == sorted(minutes) and len(set(minutes)) == len(minutes)
    assert [point["steps"] for point in result["curve"]] == sorted(point["steps"] for point in result["curve"])
    final = result["curve"][-1]
    assert final["num_queries"] is None and final["test"] == result["test"] and final["steps"] == result["steps"]
    assert result["epochs"] == pytest.approx(result["examples"] / result["examples_per_epoch"])
    assert result["examples_per_second"] > 0
    # 60 users with 5 to 9 items: every item of items[1:-2] is a training example.
    assert result["examples_per_epoch"] == sum(len(items) - 3 for items in patterned_sequences(num_users).values())


def test_training_sequences_are_the_items_before_validation(peers):
    sequences = patterned_sequences(seed=3)
    sequences["short-user"] = ITEMS[:3]
    for max_history_length in (1, 4, 20):
        rebuilt = peers.training_sequences(leave_one_out_split(sequences, max_history_length))
        assert rebuilt == {user: items[:-2] for user, items in sequences.items()}


def test_cornac_index_covers_the_whole_catalogue_and_rejects_unknown_items(peers, split):
    catalogue = [*ITEMS, "never-seen"]
    train_set = peers.cornac_training_set(split, catalogue, seed=0)
    assert list(train_set.iid_map) == catalogue and train_set.num_items == len(catalogue)
    with pytest.raises(ValueError, match="item-29"):
        peers.cornac_training_set(split, ITEMS[:-1], seed=0)
    with pytest.raises(ValueError, match="duplicates"):
        peers.cornac_training_set(split, [*ITEMS, ITEMS[0]], seed=0)


def test_batched_sasrec_ranking_is_cornac_scoring(peers, split):
    from cornac.models import SASRec

    model = SASRec(**{**peers.SASREC_TUNED_CONFIG, **TINY_SASREC, "n_epochs": 1, "seed": 0})
    model.fit(peers.cornac_training_set(split, ITEMS, seed=0))
    model.model.eval()
    histories = [[model.iid_map[item] for item in example.history] for example in split.test[:7]]
    expected = [np.argsort(-model.score(0, history), kind="stable")[:5] for history in histories]
    np.testing.assert_array_equal(peers.sasrec_top_items(model, histories, depth=5, batch_size=3), expected)


def test_budgeted_sasrec_training_is_cornac_fit(peers, split):
    """Two epochs of the budgeted loop give the model that SASRec.fit(n_epochs=2) gives (same batches, same steps)."""
    from cornac.models import SASRec

    config = {**peers.SASREC_TUNED_CONFIG, **TINY_SASREC}
    model = SASRec(**{**config, "n_epochs": 2, "seed": 4})
    model.fit(peers.cornac_training_set(split, ITEMS, seed=4))
    model.model.eval()
    histories = [[model.iid_map[item] for item in example.history] for example in split.test]
    expected = compute_retrieval_metrics(
        [[ITEMS[index] for index in row] for row in peers.sasrec_top_items(model, histories, depth=10).tolist()],
        [{example.target} for example in split.test],
        (5, 10),
    )
    # 244 training examples in batches of 32: 8 steps per epoch.
    result = peers.train_and_evaluate_sasrec(
        split, ITEMS, budget_minutes=NO_BUDGET, seed=4, config={**TINY_SASREC, "n_epochs": 2}
    )
    assert result["stopped_by"] == "n_epochs" and result["steps"] == 16 and result["epochs"] == 2.0
    assert result["test"] == expected


def test_sasrec_learns_the_pattern_and_beats_popularity(peers, split):
    result = peers.train_and_evaluate_sasrec(
        split, ITEMS, budget_minutes=NO_BUDGET, seed=0, config=TINY_SASREC, max_steps=400
    )
    check_result(result, num_users=60)
    assert result["stopped_by"] == "max_steps" and result["steps"] == 400
    assert result["config"]["loss"] == "bce" and result["config"]["seed"] == 0
    popularity = popularity_test_metrics(split)
    assert popularity["recall@10"] < 0.5
    assert result["test"]["recall@10"] > 0.8 > popularity["recall@10"] + 0.3
    assert result["validation"]["ndcg@10"] > 0.6


def test_sasrec_stops_at_the_budget_with_a_curve(peers, split):
    result = peers.train_and_evaluate_sasrec(
        split, ITEMS, budget_minutes=0.02, eval_every_minutes=0.005, seed=1, config=TINY_SASREC, curve_max_queries=20
    )
    check_result(result, num_users=60)
    assert result["stopped_by"] == "budget" and result["training_minutes"] >= 0.02
    assert len(result["curve"]) >= 3
    assert all(point["num_queries"] == 20 for point in result["curve"][:-1])


@pytest.mark.parametrize("keep_best", [False, True])
def test_keep_best_tests_the_weights_of_the_best_validation_point(peers, keep_best):
    """A one-weight network counts its steps; validation Recall@10 peaks after step 2, the test metric reads the
    weight the final evaluation sees."""
    network = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(network.weight)

    def step(batch) -> int:
        with torch.no_grad():
            network.weight += 1.0
        return 2

    def evaluate(num_queries):
        weight = network.weight.item()
        return {"validation": {"recall@10": 1.0 - abs(weight - 2.0) / 10.0}, "test": {"weight": weight}}

    outcome = peers._train_with_budget(
        batches=lambda: [None] * 3,
        step=step,
        evaluate=evaluate,
        examples_per_epoch=6,
        budget_minutes=NO_BUDGET,
        eval_every_minutes=1e-9,  # a curve point after every step
        max_epochs=10,
        max_steps=5,
        curve_max_queries=None,
        keep_best_of=network if keep_best else None,
    )
    steps_of_the_curve = [point["steps"] for point in outcome["curve"]]
    # The last weights end the curve: a candidate (keep_best) or the final point.
    assert steps_of_the_curve == [1, 2, 3, 4, 5]
    if keep_best:
        assert outcome["test"] == {"weight": 2.0} and outcome["validation"]["recall@10"] == 1.0
        assert outcome["tested_weights"] == {
            "weights": "best validation",
            "step": 2,
            "training_minutes": outcome["curve"][1]["training_minutes"],
            "metric": "recall@10",
            "value": 1.0,
        }
    else:
        assert outcome["test"] == {"weight": 5.0} and outcome["tested_weights"] == {"weights": "last", "step": 5}
    with pytest.raises(ValueError, match="k_values \\[5\\] lack 10"):
        peers.train_and_evaluate_sasrec(None, ITEMS, budget_minutes=1, k_values=[5], keep_best=True)


def test_sasrec_is_deterministic_for_a_seed(peers, split):
    def run(seed):
        return peers.train_and_evaluate_sasrec(
            split, ITEMS, budget_minutes=NO_BUDGET, seed=seed, config=TINY_SASREC, max_steps=15
        )

    first, second = run(7), run(7)
    assert first["validation"] == second["validation"] and first["test"] == second["test"]


def test_tiger_learns_the_pattern(peers, split):
    embeddings = np.random.default_rng(0).normal(size=(len(ITEMS), 16)).astype(np.float32)
    result = peers.train_and_evaluate_tiger(
        split,
        ITEMS,
        embeddings,
        budget_minutes=NO_BUDGET,
        eval_every_minutes=0.002,
        seed=0,
        config=TINY_TIGER,
        max_steps=100,
        curve_max_queries=10,
    )
    check_result(result, num_users=60)
    assert result["stopped_by"] == "max_steps"
    assert result["semantic_ids"]["level_sizes"][:2] == [4, 4]
    # Random ranking gets Recall@10 = 1/3 in expectation.
    assert result["test"]["recall@10"] > 0.6


def test_tiger_needs_an_embedding_per_item_and_enough_beams(peers, split):
    embeddings = np.zeros((len(ITEMS), 4), dtype=np.float32)
    with pytest.raises(ValueError, match="one row per item"):
        peers.train_and_evaluate_tiger(split, ITEMS, embeddings[:-1], budget_minutes=1)
    with pytest.raises(ValueError, match="n_beams"):
        peers.train_and_evaluate_tiger(split, ITEMS, embeddings, budget_minutes=1, config={"n_beams": 5})
