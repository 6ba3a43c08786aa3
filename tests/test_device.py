"""
The GPU path, checked wherever it can be: bfloat16 for the indexer, the retriever and the recommender.

On the CPU: a training step under `torch.autocast("cpu", dtype=torch.bfloat16)` (alone and through the trainers'
`bf16=True`), constrained decoding under autocast and with weights cast to bfloat16, and the code scores that stay in
`float32`. The `gpu` tests run the same model code on `LMINDEXER_TEST_DEVICE` (default `cuda`; skipped without CUDA)
against the CPU in `float32` with the same weights; `benchmarks/device_check.sh` runs them, with `--device cpu` on the
CPU (`LMINDEXER_TEST_DEVICE=cpu`), where they compare the CPU with itself. No tokenizer is needed there: the device
machine need not carry one. The slow test runs `benchmarks/device_check.sh --device cpu` end to end on the synthetic
Beauty files and checks what its JSON reports.

Tolerances. bfloat16 keeps 8 bits of mantissa: a loss of a tiny model under autocast is within 2% of its `float32`
value, and the log-probability of a decoded ID within 0.05. Two rankings are compared where they can be: their scores
must agree within the tolerance, and their IDs wherever a rank's reference score is more than twice the tolerance
away from its neighbours' (near-ties may swap). On another device in `float32` the tolerance is 1e-4.
"""

import copy
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_indexer_config
from test_indexer_trainer import make_corpus
from test_modeling_lmindexer import level_one_inputs, make_model
from test_recommender import ITEMS, tiny_recommender
from test_retrieval_tasks import SYNTHETIC_SEQUENCES, write_synthetic_beauty
from test_retriever import (  # noqa: F401 (trained_retriever is a fixture)
    DOC_IDS,
    QUERIES,
    random_ids,
    tiny_retriever,
    train,
    trained_retriever,
    training_batch,
)
from test_retriever_trainer import make_trainer as make_retriever_trainer
from transformers import TrainingArguments

from modeling_lmindexer import LMIndexerRecommender, LMIndexerRetriever
from modeling_lmindexer.baselines import baseline_semantic_ids
from modeling_lmindexer.data import load_corpus
from trainers import LMIndexerTrainer, RecommendationCollator, default_stage_plan, recommendation_training_dataset


REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DEVICE_VARIABLE = "LMINDEXER_TEST_DEVICE"
BF16_LOSS_RTOL = 0.02
BF16_SCORE_ATOL = 0.05
# An ID's log-probability sums one bfloat16-rounded score per level, so its error grows with its magnitude: CPUs'
# bfloat16 kernels (AMX or not) round differently, and a low-ranked ID of a few nats moves by more than the atol.
BF16_SCORE_RTOL = 2**-7
DEVICE_SCORE_ATOL = 1e-4
# Gradients of the same step under autocast point nearly the same way as in float32: an untrained model's
# near-uniform softmax over the vocabulary (the reconstruction loss) is where bfloat16 rounding shows most.
BF16_GRADIENT_COSINE = 0.9


@pytest.fixture
def device() -> torch.device:
    """The device the `gpu` tests run on: `LMINDEXER_TEST_DEVICE`, default `cuda` (skipped when absent)."""
    name = os.environ.get(TEST_DEVICE_VARIABLE, "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"needs CUDA; {TEST_DEVICE_VARIABLE}=cpu runs the gpu tests on the CPU")
    return torch.device(name)


def bf16_autocast(device: torch.device | str = "cpu") -> torch.autocast:
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def assert_same_ranking(
    reference: tuple[list[list[str]], list[list[float]]],
    ranking: tuple[list[list[str]], list[list[float]]],
    atol: float,
    rtol: float = 0.0,
) -> int:
    """
    Two rankings `(ids, scores)` per query agree: every score within `atol + rtol * |reference score|` of the
    reference's at the same rank, and the same ID at every rank whose reference score is more than twice that
    tolerance from the scores of the ranks next to it.

    Returns:
        `int`: The number of ranks whose IDs were compared (asserted to be positive).
    """
    compared = 0
    for query, (reference_ids, reference_scores, ids, scores) in enumerate(zip(*reference, *ranking)):
        assert len(ids) == len(reference_ids), query
        tolerances = [atol + rtol * abs(score) for score in reference_scores]
        assert all(abs(a - b) <= tolerance for a, b, tolerance in zip(scores, reference_scores, tolerances)), (
            query,
            scores,
            reference_scores,
        )
        for rank, score in enumerate(reference_scores):
            neighbours = reference_scores[max(rank - 1, 0) : rank] + reference_scores[rank + 1 : rank + 2]
            if all(abs(score - other) > 2 * tolerances[rank] for other in neighbours):
                assert ids[rank] == reference_ids[rank], (query, rank, ids, reference_ids)
                compared += 1
    assert compared > 0, "every rank is a near-tie: the comparison proves nothing"
    return compared


def gradient_cosine(first: torch.nn.Module, second: torch.nn.Module) -> float:
    """Cosine similarity of the two models' gradients, all parameters flattened into one vector."""
    first_gradients = torch.cat([p.grad.flatten().float().cpu() for p in first.parameters() if p.grad is not None])
    second_gradients = torch.cat([p.grad.flatten().float().cpu() for p in second.parameters() if p.grad is not None])
    return float(torch.nn.functional.cosine_similarity(first_gradients, second_gradients, dim=0))


def assert_bf16_step_matches_float32(model: torch.nn.Module, inputs: dict, device: torch.device) -> None:
    """
    One training step of a copy of `model` under bfloat16 autocast on `device` against the same step in `float32` on
    the CPU: the same `float32` loss on both devices, a finite bfloat16 loss within `BF16_LOSS_RTOL` of it, finite
    gradients of nearly the same direction, and an optimizer step that lowers the loss.
    """
    reference = copy.deepcopy(model).train()
    reference_loss = reference(**inputs).loss
    reference_loss.backward()
    on_device = copy.deepcopy(model).to(device).train()
    device_inputs = {name: value.to(device) if torch.is_tensor(value) else value for name, value in inputs.items()}
    with torch.no_grad():
        assert on_device(**device_inputs).loss.item() == pytest.approx(reference_loss.item(), rel=DEVICE_SCORE_ATOL)
    with bf16_autocast(device):
        loss = on_device(**device_inputs).loss
    loss.backward()
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    assert loss.item() == pytest.approx(reference_loss.item(), rel=BF16_LOSS_RTOL)
    assert all(torch.isfinite(p.grad).all() for p in on_device.parameters() if p.grad is not None)
    assert gradient_cosine(on_device, reference) > BF16_GRADIENT_COSINE
    torch.optim.SGD(on_device.parameters(), lr=0.1).step()
    with torch.no_grad():
        assert on_device(**device_inputs).loss.item() < reference_loss.item()


def indexer_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor, seed: int = 0) -> dict:
    """Level-1 inputs of the indexer with fixed reconstruction noise, so that every forward pass masks alike."""
    generator = torch.Generator().manual_seed(seed)
    batch_size, length = input_ids.shape
    noise = torch.rand(batch_size, length, length, generator=generator)
    inputs = level_one_inputs({"input_ids": input_ids, "attention_mask": attention_mask}, seed)
    return inputs | {"reconstruction_noise": noise}


def trained_recommender() -> LMIndexerRecommender:
    """The tiny recommender after 20 steps on sequences where item k is followed by item k + 1: its rankings have
    scores apart (a random model's are near-ties)."""
    model = tiny_recommender()
    collator = RecommendationCollator(model.config.num_levels, model.config.pad_token_id)
    windows = [[f"item-{start + offset}" for offset in range(4)] for start in range(0, 20)]
    train(model, collator(list(recommendation_training_dataset(model, windows))), steps=20)
    return model.eval()


HISTORIES = [["item-1", "item-2"], ["item-23"], ["item-4", "item-4", "item-9"], ["item-7", "item-8"]]


class AutocastRecorder:
    """Records, at every training-mode call of `module`, whether CPU autocast is on and with which dtype."""

    def __init__(self, module: torch.nn.Module):
        self.seen: list[tuple[bool, torch.dtype]] = []
        module.register_forward_pre_hook(self._record)

    def _record(self, module: torch.nn.Module, args: tuple) -> None:
        if module.training:
            self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))


# CPU: bfloat16 autocast and bfloat16 weights.


def test_indexer_training_step_under_bf16_autocast_matches_float32(tiny_config, batch):
    inputs = indexer_inputs(batch["input_ids"], batch["attention_mask"])
    assert_bf16_step_matches_float32(make_model(tiny_config), inputs, torch.device("cpu"))


def test_retriever_training_step_under_bf16_autocast_matches_float32(t5_tokenizer):
    model = tiny_retriever()
    assert_bf16_step_matches_float32(model, training_batch(model, t5_tokenizer), torch.device("cpu"))


@pytest.mark.slow  # seconds: a whole stage plan
def test_indexer_trainer_with_bf16_trains_every_stage_under_autocast(tmp_path, t5_tokenizer, documents):
    torch.manual_seed(0)
    model = make_model(tiny_indexer_config(codebook_sizes=[4, 4]))
    recorder = AutocastRecorder(model.backbone)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        bf16=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    plan = default_stage_plan(2, warmup_epochs=1, continuous_epochs=1, joint_epochs=1)
    trainer = LMIndexerTrainer(model, args, make_corpus(documents), t5_tokenizer, stage_plan=plan)
    trainer.train()
    train_stages = [stage for stage in plan if stage.kind == "train"]
    assert len(recorder.seen) >= 5 * len(train_stages)  # 40 documents, batches of 8, one epoch per stage
    assert set(recorder.seen) == {(True, torch.bfloat16)}
    losses = [value for record in trainer.stage_records for value in record.losses.values()]
    assert len(losses) >= len(train_stages) and all(math.isfinite(value) for value in losses)
    # The IDs assigned after bfloat16 training are the ones the model predicts (in float32, outside autocast).
    assert (model.predict_corpus_codes(documents, t5_tokenizer) == model.semantic_ids.codes[:, :2]).all()


def test_retriever_trainer_with_bf16_learns_under_autocast(t5_tokenizer, tmp_path):
    model = tiny_retriever()
    recorder = AutocastRecorder(model.backbone)
    trainer = make_retriever_trainer(model, t5_tokenizer, tmp_path, bf16=True, num_train_epochs=60)
    trainer.train()
    assert set(recorder.seen) == {(True, torch.bfloat16)} and len(recorder.seen) == 60
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"]) and metrics["eval_recall@1"] == 1.0


def test_retrieval_under_bf16_autocast_ranks_like_float32(trained_retriever, t5_tokenizer):  # noqa: F811
    reference = trained_retriever.retrieve(QUERIES, t5_tokenizer, k=5, return_scores=True)
    with bf16_autocast():
        ranking = trained_retriever.retrieve(QUERIES, t5_tokenizer, k=5, return_scores=True)
    assert [ids[0] for ids in ranking[0]] == DOC_IDS
    assert_same_ranking(reference, ranking, BF16_SCORE_ATOL, BF16_SCORE_RTOL)


def test_recommend_under_bf16_autocast_ranks_like_float32():
    model = trained_recommender()
    reference = model.recommend(HISTORIES, k=10, return_scores=True)
    with bf16_autocast():
        ranking = model.recommend(HISTORIES, k=10, return_scores=True)
    assert ranking[0][0][0] == "item-3"  # what it learnt: item-2 is followed by item-3
    assert_same_ranking(reference, ranking, BF16_SCORE_ATOL, BF16_SCORE_RTOL)


@pytest.mark.parametrize("id_beam_search", [True, False])
def test_a_retriever_cast_to_bf16_generates_only_indexed_ids(t5_tokenizer, id_beam_search):
    semantic_ids = random_ids(40, (6, 5, 4), seed=0)
    model = tiny_retriever("t5", semantic_ids).to(torch.bfloat16).eval()
    assert model.dtype == torch.bfloat16
    batch = t5_tokenizer(QUERIES[:4], padding=True, return_tensors="pt")
    beams = model.generate(**batch, num_beams=10, num_return_sequences=10, id_beam_search=id_beam_search)
    found = model.doc_ids_from_sequences(beams)
    assert set(found) <= set(semantic_ids.doc_ids)
    assert all(len(set(found[10 * query : 10 * (query + 1)])) == 10 for query in range(4))
    torch.manual_seed(0)
    samples = model.generate(**batch, do_sample=True, top_k=5, temperature=2.0, num_return_sequences=10)
    assert set(model.doc_ids_from_sequences(samples)) <= set(semantic_ids.doc_ids)
    unconstrained = model.generate(**batch, num_beams=10, num_return_sequences=10, constrain_to_trie=False)
    assert None in model.doc_ids_from_sequences(unconstrained)  # without the trie, IDs of no document appear


def test_a_recommender_cast_to_bf16_recommends_only_catalogue_items():
    model = tiny_recommender().to(torch.bfloat16)
    histories = [["item-1", "item-2"], ["item-23"], ["item-4", "item-4", "item-9"]]
    rankings, scores = model.recommend(histories, k=10, return_scores=True)
    for ranking, user_scores in zip(rankings, scores):
        assert len(ranking) == len(set(ranking)) == 10 and set(ranking) <= set(ITEMS)
        assert user_scores == sorted(user_scores, reverse=True)
    prompts, attention_mask = model.history_prompts(histories)
    generic = model.generate(input_ids=prompts, attention_mask=attention_mask, num_beams=10, id_beam_search=False)
    codes = model.config.id_token_layout.tokens_to_codes(generic[:, prompts.shape[1] : -1])
    assert (model.trie.doc_rows(codes) >= 0).all()


def test_code_scores_stay_float32_under_bf16(tiny_config, batch, t5_tokenizer, documents):
    model = make_model(tiny_config).eval()
    inputs = level_one_inputs(batch)
    with bf16_autocast():
        output = model(**inputs)
        autocast_scores = model.code_scores(1, output.level_representation, inputs["prefix_codes"])
        contrastive = model.contrastive_loss(output.level_representation, output.level_representation.flip(0))
    assert output.code_scores.dtype == autocast_scores.dtype == contrastive.dtype == torch.float32
    reference = model.code_scores(1, output.level_representation.float(), inputs["prefix_codes"])
    torch.testing.assert_close(autocast_scores, reference)  # the same float32 computation, autocast or not

    cast = copy.deepcopy(model).to(torch.bfloat16)
    codebook = cast.codebooks[0]
    quantized = codebook(torch.randn(6, tiny_config.hidden_size, dtype=torch.bfloat16))
    assert quantized.scores.dtype == torch.float32 and quantized.quantized.dtype == torch.bfloat16
    assert torch.equal(quantized.quantized, codebook.weight[quantized.codes])  # the chosen rows themselves
    # Assigning IDs mixes float32 corpus representations with bfloat16 weights (it failed with a dtype error).
    semantic_ids = cast.assign_ids(documents, t5_tokenizer)
    assert (cast.predict_corpus_codes(documents, t5_tokenizer) == semantic_ids.codes[:, :2]).all()

    retriever = tiny_retriever().to(torch.bfloat16)
    states = torch.randn(3, retriever.config.seq2seq_config.d_model, dtype=torch.bfloat16)
    assert retriever.step_scores(states, 0).dtype == torch.float32
    recommender = tiny_recommender().to(torch.bfloat16)
    assert recommender.step_scores(states, 0).dtype == torch.float32


# The `gpu` subset: the same weights on LMINDEXER_TEST_DEVICE and on the CPU.


def random_query_inputs(model: LMIndexerRetriever, seed: int = 0) -> dict[str, torch.Tensor]:
    """Eight random 12-token text queries (no tokenizer needed), labelled with the IDs of the first eight documents."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(2, model.config.text_vocab_size, (8, 12), generator=generator)
    doc_ids = model.semantic_ids.doc_ids[:8]
    labels = torch.tensor([model.id_tokens(doc_id) for doc_id in doc_ids])
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def generated_ranking(model: LMIndexerRetriever, inputs: dict, num_beams: int) -> tuple[list, list]:
    """Doc ids and scores (`sequences_scores`, the generic loop's) of every query's beams, best first."""
    outputs = model.generate(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        num_beams=num_beams,
        num_return_sequences=num_beams,
        output_scores=True,
        return_dict_in_generate=True,
    )
    doc_ids = model.doc_ids_from_sequences(outputs.sequences.cpu())
    scores = outputs.sequences_scores.float().cpu().tolist()
    return (
        [doc_ids[start : start + num_beams] for start in range(0, len(doc_ids), num_beams)],
        [scores[start : start + num_beams] for start in range(0, len(scores), num_beams)],
    )


@pytest.mark.gpu
def test_indexer_training_step_in_bf16_on_device(device):
    model = make_model(tiny_indexer_config())
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(2, model.config.seq2seq_config.vocab_size, (8, 16), generator=generator)
    assert_bf16_step_matches_float32(model, indexer_inputs(input_ids, torch.ones_like(input_ids)), device)


@pytest.mark.gpu
def test_retriever_training_step_in_bf16_on_device(device):
    model = tiny_retriever("t5", random_ids(40, (6, 5, 4), seed=0))
    assert_bf16_step_matches_float32(model, random_query_inputs(model), device)


@pytest.mark.gpu
def test_constrained_generate_on_device_matches_the_cpu(device):
    cpu_model = tiny_retriever("t5", random_ids(40, (6, 5, 4), seed=0))
    inputs = random_query_inputs(cpu_model)
    # Trained a little, so that its beams' scores are apart (a random model's are all near-ties).
    train(cpu_model, inputs, steps=20)
    cpu_model.eval()
    model = copy.deepcopy(cpu_model).to(device)
    assert model.trie.leaf_doc_rows.device.type == device.type
    device_inputs = {name: value.to(device) for name, value in inputs.items()}
    reference = generated_ranking(cpu_model, inputs, num_beams=10)
    assert all(set(ids) <= set(cpu_model.semantic_ids.doc_ids) for ids in reference[0])
    assert_same_ranking(reference, generated_ranking(model, device_inputs, num_beams=10), DEVICE_SCORE_ATOL)
    with bf16_autocast(device):
        ranking = generated_ranking(model, device_inputs, num_beams=10)
        assert_same_ranking(reference, ranking, BF16_SCORE_ATOL, BF16_SCORE_RTOL)
    # The fast ID loop returns what the generic loop returns, on the device as on the CPU.
    arguments = dict(num_beams=10, num_return_sequences=10)
    fast = model.generate(
        input_ids=device_inputs["input_ids"], attention_mask=device_inputs["attention_mask"], **arguments
    )
    fast_ids = model.doc_ids_from_sequences(fast.cpu())
    assert [fast_ids[start : start + 10] for start in range(0, 80, 10)] == generated_ranking(model, device_inputs, 10)[
        0
    ]


@pytest.mark.gpu
def test_prefix_centred_decoding_on_device_matches_the_cpu(device):
    """The ID head of a retriever built from an indexer: decoder states centred by the prefix-group means."""
    semantic_ids = random_ids(40, (6, 5, 4), seed=0)
    cpu_model = tiny_retriever("t5", semantic_ids, center_by_prefix=True, score_decoder_states=True)
    generator = torch.Generator().manual_seed(0)
    for level in (1, 2):
        states = torch.randn(len(semantic_ids), cpu_model.config.seq2seq_config.d_model, generator=generator)
        cpu_model.prefix_group_means.fit(level, states, torch.tensor(semantic_ids.codes[:, :level]))
    inputs = random_query_inputs(cpu_model)
    train(cpu_model, inputs, steps=20)
    cpu_model.eval()
    model = copy.deepcopy(cpu_model).to(device)
    device_inputs = {name: value.to(device) for name, value in inputs.items()}
    reference = generated_ranking(cpu_model, inputs, num_beams=10)
    assert_same_ranking(reference, generated_ranking(model, device_inputs, num_beams=10), DEVICE_SCORE_ATOL)
    # The means stay on the device once used there, rather than being copied to it at every step.
    assert all(means.device.type == device.type for means in model.prefix_group_means.means.values())


@pytest.mark.gpu
def test_recommend_on_device_matches_the_cpu(device):
    cpu_model = trained_recommender()
    model = copy.deepcopy(cpu_model).to(device)
    reference = cpu_model.recommend(HISTORIES, k=10, return_scores=True)
    assert_same_ranking(reference, model.recommend(HISTORIES, k=10, return_scores=True), DEVICE_SCORE_ATOL)
    with bf16_autocast(device):
        ranking = model.recommend(HISTORIES, k=10, return_scores=True)
        assert_same_ranking(reference, ranking, BF16_SCORE_ATOL, BF16_SCORE_RTOL)


# The device check script, end to end on the CPU.

DECODING_METHODS = ("trie", "prefix_fn", "unconstrained", "id_only_trie")


@pytest.mark.slow  # seconds: the whole device check, in subprocesses
def test_device_check_on_the_cpu_reports_every_part(tmp_path):
    data_dir = write_synthetic_beauty(tmp_path / "data")
    corpus = load_corpus("beauty", data_dir)
    ids_file = tmp_path / "random-ids.json"
    baseline_semantic_ids("random", list(corpus["doc_id"]), list(corpus["text"]), [4, 4], seed=42).save(ids_file)
    output_dir = tmp_path / "out"
    command = [
        "bash", str(REPO_ROOT / "benchmarks" / "device_check.sh"), "--device", "cpu", "--output_dir", str(output_dir),
        "--work_dir", str(tmp_path / "work"), "--data_dir", str(data_dir), "--semantic_ids_file", f"random={ids_file}",
        "--batch_sizes", "1", "4", "--repeats", "1", "--rec_train_minutes", "0.2", "--rec_eval_every_minutes", "0.001",
        "--rec_args", "--decoder_config_overrides hidden_size=16,intermediate_size=32,num_hidden_layers=1,"
        "num_attention_heads=2,num_key_value_heads=2 --per_device_train_batch_size 4 --num_train_epochs 20",
    ]  # fmt: skip
    environment = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1")
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert sorted(path.name for path in output_dir.iterdir()) == ["device_check.json", "device_check.md"]
    result = json.loads((output_dir / "device_check.json").read_text())
    assert result["device"] == "cpu" and result["machine"]["cuda_device"] is None and result["passed"] is True

    tests = result["gpu_tests"]
    gpu_test_names = {
        name for name, test in globals().items() if any(mark.name == "gpu" for mark in getattr(test, "pytestmark", []))
    }
    assert {test["name"] for test in tests["tests"]} == gpu_test_names and len(gpu_test_names) == 5
    assert tests["device"] == "cpu" and tests["passed"] == 5 and tests["failed"] == tests["skipped"] == 0

    decoding = result["decoding"]
    assert (
        decoding["num_ids"] == 1000 and decoding["num_beams"] == 20 and decoding["published"]["ms_per_step"] == 0.033
    )
    assert [(cell["dtype"], cell["batch_size"]) for cell in decoding["cells"]] == [
        ("float32", 1), ("float32", 4), ("bfloat16", 1), ("bfloat16", 4)
    ]  # fmt: skip
    num_steps = len(decoding["model"]["codebook_sizes"]) + 1
    for cell in decoding["cells"]:
        assert set(cell["ms_per_query"]) == set(cell["ms_per_step"]) == set(DECODING_METHODS)
        for method in DECODING_METHODS:
            batch_ms = cell["ms_per_query"][method]["median"] * cell["batch_size"]
            assert batch_ms > 0 and cell["ms_per_step"][method] * num_steps == pytest.approx(batch_ms, rel=1e-2)
        overhead = cell["ms_per_step"]["trie"] - cell["ms_per_step"]["unconstrained"]
        assert cell["trie_overhead_ms_per_step"] == pytest.approx(overhead, abs=1e-3)
        fractions = cell["checks"]["valid_id_fraction"]
        assert fractions["trie"] == fractions["prefix_fn"] == fractions["id_only_trie"] == 1.0
        assert fractions["unconstrained"] < 1.0 and cell["checks"]["trie_matches_prefix_fn"]

    (run,) = result["recommendation"]["runs"]
    assert run["id_scheme"] == "random" and "error" not in run and run["bf16"] is False
    assert run["num_test_queries"] == len(SYNTHETIC_SEQUENCES) and run["training"]["items"] == 12
    assert 0.0 <= run["metrics"]["recall@5"] <= run["metrics"]["recall@10"] <= 1.0
    assert run["curve"] and run["best_validation_recall@10"] == max(point["eval_recall@10"] for point in run["curve"])
    seconds = result["wall_time_seconds"]
    assert set(seconds) == {"gpu_tests", "decoding", "recommendation", "total"}
    parts = seconds["gpu_tests"] + seconds["decoding"] + seconds["recommendation"]
    assert 0 < parts <= seconds["total"] + 0.2  # each rounded to 0.1 s

    markdown = (output_dir / "device_check.md").read_text()
    assert "## gpu tests on cpu" in markdown and "5 passed, 0 failed" in markdown
    assert "STATIC (Su et al., 2026), published: 0.033 ms per step" in markdown
