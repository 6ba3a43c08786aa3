"""LMIndexerRetrieverTrainer and the downstream example scripts.

The trainer: evaluation by constrained beam search with retrieval metrics (equal to a direct computation on the
generated rankings), the time budget, the report. The script `examples/run_retrieval.py` runs end to end in a
subprocess on synthetic data files written by the tests (Office and Cranfield layouts, no shared data needed) with a
tiny T5 backbone saved by the tests.
"""

import copy
import dataclasses
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_indexer_config, tiny_t5_config
from datasets import Dataset
from script_runs import run_script
from test_retrieval_tasks import write_synthetic_cranfield, write_synthetic_office
from test_retriever import DOC_IDS, QUERIES, tiny_retriever
from transformers import Seq2SeqTrainingArguments, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as transformers_logging

from modeling_lmindexer import LMIndexerForSemanticID, LMIndexerRetriever, SemanticIDs
from modeling_lmindexer.data.retrieval_tasks import PRODUCT_SEARCH_SUBSTITUTE_LABEL
from modeling_lmindexer.metrics import compute_retrieval_metrics
from trainers import (
    LMIndexerRetrieverTrainer,
    ResumeError,
    RetrievalReport,
    TimeBudgetCallback,
    retrieval_evaluation_dataset,
    retrieval_training_dataset,
)
from trainers.commands.common import BEST_VALIDATION_STATE_FLAGS, CorpusFileArguments, checkpoint_to_resume
from trainers.commands.retrieve import (
    INDEXER_START_LEARNING_RATE,
    TRAINING_DEFAULTS,
    RetrievalArguments,
    RetrieverArguments,
    parse_arguments,
)
from trainers.report import describe_tested_weights


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
K_VALUES = [1, 5, 10]
METRIC_NAMES = [f"{name}@{k}" for name in ("recall", "ndcg", "mrr") for k in K_VALUES]
TIGER_BEAUTY = {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384}


def training_args(tmp_path: Path, **overrides) -> Seq2SeqTrainingArguments:
    values = dict(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=3,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        num_train_epochs=1,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    values.update(overrides)
    return Seq2SeqTrainingArguments(**values)


def query_datasets(model: LMIndexerRetriever, tokenizer, relevance: list[dict] | None = None) -> tuple:
    """The eight synthetic queries: training pairs (query -> its document) and evaluation queries."""
    input_ids = tokenizer(QUERIES)["input_ids"]
    relevance = [{doc_id: 1} for doc_id in DOC_IDS] if relevance is None else relevance
    train = retrieval_training_dataset(model, input_ids, DOC_IDS)
    return train, retrieval_evaluation_dataset(model, input_ids, relevance)


def graded_relevance() -> list[dict]:
    """Several relevant documents for some queries, graded, one of them without a semantic ID."""
    relevance = [{doc_id: 1} for doc_id in DOC_IDS]
    relevance[0] = {"doc-0": 2, "doc-4": 1, "doc-9": 3}
    relevance[3] = {"doc-3": 1, "doc-7": 2, "doc-1": 0}
    return relevance


def make_trainer(model, tokenizer, tmp_path, relevance=None, **overrides) -> LMIndexerRetrieverTrainer:
    train, evaluation = query_datasets(model, tokenizer, relevance)
    return LMIndexerRetrieverTrainer(
        model,
        training_args(tmp_path, **overrides),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        k_values=K_VALUES,
    )


@pytest.fixture(scope="module")
def overfitted_trainer(t5_tokenizer, tmp_path_factory) -> LMIndexerRetrieverTrainer:
    """A tiny T5 retriever trained by the trainer on the eight (query, document) pairs until it knows them."""
    trainer = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path_factory.mktemp("overfit"), num_train_epochs=60)
    trainer.train()
    return trainer


def test_evaluate_logs_recall_ndcg_and_mrr_in_unit_range(t5_tokenizer, tmp_path):
    trainer = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path, relevance=graded_relevance())
    metrics = trainer.evaluate()
    assert {f"eval_{name}" for name in METRIC_NAMES} | {"eval_loss"} <= set(metrics)
    assert all(0.0 <= metrics[f"eval_{name}"] <= 1.0 for name in METRIC_NAMES)
    assert trainer.state.log_history[-1]["eval_recall@10"] == metrics["eval_recall@10"]


def test_overfitting_eight_queries_gives_recall_at_1_of_1(overfitted_trainer):
    metrics = overfitted_trainer.evaluate()
    assert metrics["eval_recall@1"] == 1.0 and metrics["eval_mrr@10"] == 1.0 and metrics["eval_ndcg@10"] == 1.0


def test_rankings_stay_with_their_queries_under_a_length_grouped_sampler(overfitted_trainer, t5_tokenizer, tmp_path):
    model = overfitted_trainer.model
    trainer = make_trainer(model, t5_tokenizer, tmp_path, train_sampling_strategy="group_by_length")
    evaluation = query_datasets(model, t5_tokenizer)[1]
    assert list(trainer._get_eval_sampler(evaluation)) != list(range(len(QUERIES)))  # longest queries first
    output = trainer.predict(evaluation)
    assert output.label_ids.tolist() == list(range(len(QUERIES)))
    assert [ranking[0] for ranking in trainer.rankings(output.predictions)] == DOC_IDS
    assert output.metrics["test_recall@1"] == 1.0


def test_metrics_equal_a_direct_computation_on_the_generated_rankings(t5_tokenizer, tmp_path):
    relevance = graded_relevance()
    trainer = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path, relevance=relevance, num_train_epochs=4)
    trainer.train()
    model = trainer.model
    output = trainer.predict(query_datasets(model, t5_tokenizer, relevance)[1])
    # 8 documents are indexed: 8 beams are returned per query, each the start token, 3 ID tokens and the end token.
    assert output.predictions.shape == (len(QUERIES), len(DOC_IDS), model.config.num_levels + 2)
    rankings = []
    for sequences in output.predictions:
        doc_ids = model.doc_ids_from_sequences(torch.as_tensor(sequences))
        rankings.append(list(dict.fromkeys(doc_id for doc_id in doc_ids if doc_id is not None)))
    assert rankings == trainer.rankings(output.predictions)
    assert rankings == model.retrieve(QUERIES, t5_tokenizer, k=10, num_beams=20, batch_size=3)
    expected = compute_retrieval_metrics(rankings, relevance, K_VALUES)
    assert {name: output.metrics[f"test_{name}"] for name in METRIC_NAMES} == pytest.approx(expected, abs=1e-12)
    assert 0.0 < expected["ndcg@10"] < 1.0  # graded, with a relevant document that has no ID


@pytest.mark.parametrize(
    "arguments, learning_rate",
    [
        (["--indexer", "saved"], INDEXER_START_LEARNING_RATE),
        (["--indexer", "saved", "--learning_rate", str(TRAINING_DEFAULTS["learning_rate"])], 5e-4),
        (["--indexer", "saved", "--learning_rate=3e-4"], 3e-4),
        (["--indexer", "saved", "--learning_r", "3e-4"], 3e-4),
        (["--indexer", "saved", "--retriever_init", "backbone"], TRAINING_DEFAULTS["learning_rate"]),
        (["--id_scheme", "random"], TRAINING_DEFAULTS["learning_rate"]),
    ],
)
def test_a_retriever_started_from_its_indexer_defaults_to_its_own_learning_rate(
    monkeypatch, tmp_path, arguments, learning_rate
):
    assert INDEXER_START_LEARNING_RATE != TRAINING_DEFAULTS["learning_rate"] == 5e-4
    # HfArgumentParser would also read an `.args` file beside the entry point, which the default cannot see: the
    # command line is the whole input.
    (tmp_path / "run_retrieval.args").write_text("--learning_rate 2e-4 --num_train_epochs 7")
    monkeypatch.setattr("sys.argv", [str(tmp_path / "run_retrieval.py"), *arguments, "--output_dir", str(tmp_path)])
    # The script's logging set-up would change this test process's handlers and levels for the tests after it.
    monkeypatch.setattr("trainers.commands.retrieve.configure_logging", lambda training_args: None)
    *_, training_args = parse_arguments(
        (RetrievalArguments, CorpusFileArguments, RetrieverArguments, Seq2SeqTrainingArguments), "retrieval", "scifact"
    )
    assert training_args.learning_rate == learning_rate
    assert training_args.num_train_epochs == 3.0


def test_bad_arguments_are_refused(t5_tokenizer, tmp_path):
    model = tiny_retriever()
    train, evaluation = query_datasets(model, t5_tokenizer)
    args = training_args(tmp_path)
    with pytest.raises(ValueError, match="computes its retrieval metrics itself"):
        LMIndexerRetrieverTrainer(model, args, processing_class=t5_tokenizer, compute_metrics=lambda prediction: {})
    with pytest.raises(ValueError, match=r"label_smoothing_factor = 1.0: a share in \[0, 1\)"):
        LMIndexerRetrieverTrainer(
            model, dataclasses.replace(args, label_smoothing_factor=1.0), processing_class=t5_tokenizer
        )
    with pytest.raises(ValueError, match="num_beams = 5 is below the largest cut-off K = 10"):
        LMIndexerRetrieverTrainer(model, args, processing_class=t5_tokenizer, k_values=[1, 10], num_beams=5)
    with pytest.raises(ValueError, match="Pass processing_class"):
        LMIndexerRetrieverTrainer(model, args)
    trainer = LMIndexerRetrieverTrainer(model, args, train_dataset=train, processing_class=t5_tokenizer)
    assert trainer.num_beams == 20 and trainer.k_values == [1, 5, 10]
    with pytest.raises(ValueError, match="'relevant_doc_ids' column"):
        trainer.evaluate(train)
    with pytest.raises(ValueError, match="Query 1 has no relevant document with a semantic ID"):
        retrieval_evaluation_dataset(model, [[5, 1], [6, 1]], [{"doc-1": 1}, {"doc-99": 1, "doc-2": 0}])


@pytest.mark.parametrize("id_only_head", [True, False])
def test_label_smoothing_factor_sets_the_models_smoothing(id_only_head, t5_tokenizer, tmp_path):
    """`label_smoothing_factor` reaches the retriever's own loss (finite with the ID-only head, whose scores are
    `-inf` outside each step's tokens) in place of the `Trainer`'s smoother."""
    model = tiny_retriever(id_only_head=id_only_head).train()
    trainer = make_trainer(model, t5_tokenizer, tmp_path, label_smoothing_factor=0.1)
    assert model.config.label_smoothing == 0.1 and trainer.label_smoother is None
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(4)])
    loss = trainer.compute_loss(model, dict(batch))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(model(**batch).loss.item(), rel=1e-6)
    model.config.label_smoothing = 0.0
    assert loss.item() != pytest.approx(model(**batch).loss.item(), rel=1e-5)


def test_time_budget_evaluates_and_stops_on_the_clock_shared_by_all_processes(monkeypatch):
    """With several processes, each step's decisions follow the slowest process's clock (all-reduced), not the
    process's own: otherwise some processes evaluate or stop while the others wait for them in a collective."""
    other_process_seconds = 90.0
    reduced = []

    def all_reduce(tensor, op):
        reduced.append(op)
        tensor.copy_(torch.maximum(tensor, torch.tensor(other_process_seconds)))

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    args = TrainingArguments("unused", use_cpu=True, report_to="none")
    budget = TimeBudgetCallback(max_minutes=1.5, eval_every_minutes=1.0)
    budget.on_train_begin(args, TrainerState(), TrainerControl())
    assert budget.elapsed_seconds < 5.0  # this process's own clock: not yet due, not over budget
    control = budget.on_step_end(args, TrainerState(epoch=0.0), TrainerControl())
    assert reduced == [torch.distributed.ReduceOp.MAX]
    assert control.should_evaluate and control.should_training_stop and budget.evaluations_asked == 1


def test_time_budget_stops_training_after_the_first_step_and_checkpoints_it(t5_tokenizer, tmp_path):
    budget = TimeBudgetCallback(max_minutes=1e-6)
    trainer = make_trainer(
        tiny_retriever(), t5_tokenizer, tmp_path, num_train_epochs=5, save_strategy="steps", save_steps=100
    )
    trainer.add_callback(budget)
    trainer.train()
    assert trainer.state.global_step == 1 and budget.stopped_training
    # Saved at the stop although the next scheduled save was 99 steps away.
    assert [path.name for path in (tmp_path / "trainer").glob("checkpoint-*")] == ["checkpoint-1"]
    with pytest.raises(ValueError, match="must be positive"):
        TimeBudgetCallback(0)


@pytest.mark.parametrize("lr_decay, halfway", [("linear", 0.5), ("cosine", 0.5), (None, 1.0)])
def test_learning_rate_decays_over_the_training_minutes_after_the_warm_up(t5_tokenizer, tmp_path, lr_decay, halfway):
    budget = TimeBudgetCallback(max_minutes=10, lr_decay=lr_decay)
    trainer = make_trainer(
        tiny_retriever(),
        t5_tokenizer,
        tmp_path,
        learning_rate=1e-3,
        warmup_steps=2,
        lr_scheduler_type="constant_with_warmup",
    )
    trainer.add_callback(budget)
    trainer.create_optimizer_and_scheduler(num_training_steps=1000)
    scheduler = trainer.lr_scheduler

    def learning_rate_after_a_step(spent_minutes: float) -> float:
        budget.spent_seconds = 60.0 * spent_minutes  # the budget's clock, not running: what was spent
        trainer.optimizer.step()
        scheduler.step()
        return scheduler.get_last_lr()[0]

    # Half-way through the warm-up and half-way through the budget; then the warm-up is over.
    assert learning_rate_after_a_step(5.0) == pytest.approx(1e-3 * 0.5 * halfway)
    assert learning_rate_after_a_step(5.0) == pytest.approx(1e-3 * halfway)
    if lr_decay is not None:
        assert learning_rate_after_a_step(2.5) == pytest.approx(1e-3 * (0.75 if lr_decay == "linear" else 0.8535534))
        assert learning_rate_after_a_step(10.0) == 0.0 and learning_rate_after_a_step(12.0) == 0.0
    with pytest.raises(ValueError, match="lr_decay = 'step': choose linear or cosine"):
        TimeBudgetCallback(10, lr_decay="step")


def test_time_budget_counts_the_time_of_the_run_a_resumed_run_continues(t5_tokenizer, tmp_path):
    # 8 training pairs at batch 8: one step per epoch; a checkpoint after every step.
    first_budget = TimeBudgetCallback(max_minutes=30)
    first = make_trainer(
        tiny_retriever(), t5_tokenizer, tmp_path, num_train_epochs=2, save_strategy="steps", save_steps=1
    )
    first.add_callback(first_budget)
    first.train()
    assert first.state.global_step == 2 and not first_budget.stopped_training
    state_file = tmp_path / "trainer" / "checkpoint-2" / "trainer_state.json"
    trainer_state = json.loads(state_file.read_text())
    saved = trainer_state["stateful_callbacks"]["TimeBudgetCallback"]
    assert saved["args"] == {"max_minutes": 30, "eval_every_minutes": None, "lr_decay": None}
    assert 0 < saved["attributes"]["spent_seconds"] <= first_budget.elapsed_seconds

    def resume(spent_seconds: float) -> tuple[LMIndexerRetrieverTrainer, TimeBudgetCallback]:
        saved["attributes"]["spent_seconds"] = spent_seconds
        state_file.write_text(json.dumps(trainer_state))
        budget = TimeBudgetCallback(max_minutes=30)
        trainer = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path, num_train_epochs=5, save_strategy="no")
        trainer.add_callback(budget)
        trainer.train(resume_from_checkpoint=str(state_file.parent))
        return trainer, budget

    # 29 of the 30 minutes spent before the stop: the resumed run trains to its end...
    trainer, budget = resume(29 * 60.0)
    assert trainer.state.global_step == 5 and not budget.stopped_training
    # ...with all 30 spent, it stops after one step, and its time includes the earlier run's.
    trainer, budget = resume(30 * 60.0)
    assert trainer.state.global_step == 3 and budget.stopped_training
    assert budget.elapsed_seconds >= 30 * 60.0


def test_a_resumed_run_refuses_another_learning_rate_than_its_checkpoint(t5_tokenizer, tmp_path):
    first = make_trainer(
        tiny_retriever(), t5_tokenizer, tmp_path, learning_rate=1e-3, save_strategy="steps", save_steps=1
    )
    first.train()
    checkpoint = str(tmp_path / "trainer" / "checkpoint-1")
    resumed = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path, learning_rate=5e-4, num_train_epochs=2)
    with pytest.raises(ResumeError, match=r"checkpoint-1 was trained at learning rate 0.001, .* asks for 0.0005"):
        resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.state.global_step == 1  # the checkpoint's: refused before any further step
    same = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path, learning_rate=1e-3, num_train_epochs=2)
    same.train(resume_from_checkpoint=checkpoint)
    assert same.state.global_step == 2 and set(same.lr_scheduler.get_last_lr()) == {1e-3}


def test_evaluations_during_training_draw_a_curve_off_the_training_clock(t5_tokenizer, tmp_path):
    budget = TimeBudgetCallback(max_minutes=30, eval_every_minutes=1e-9)  # an evaluation after every step
    trainer = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path, num_train_epochs=3, eval_on_start=True)
    trainer.add_callback(budget)
    ranking = trainer.evaluation_loop

    def slow_ranking(*args, **kwargs):
        time.sleep(0.5)
        return ranking(*args, **kwargs)

    trainer.evaluation_loop = slow_ranking
    start = time.monotonic()
    trainer.train()
    wall_seconds = time.monotonic() - start
    assert [point["step"] for point in trainer.curve] == [0, 1, 2, 3]  # eval_on_start: the untrained model first
    minutes = [point["training_minutes"] for point in trainer.curve]
    assert 0 <= minutes[0] < minutes[1] < minutes[2] < minutes[3] <= budget.elapsed_seconds / 60
    assert minutes[0] < 0.1 / 60  # the first evaluation's own 0.5 s and more are not counted
    assert all(0.0 <= point["eval_recall@10"] <= 1.0 for point in trainer.curve)
    # The four evaluations' 2 s and more are not training time.
    assert budget.elapsed_seconds < wall_seconds - 2.0
    # Evaluations outside training add no point.
    trainer.evaluate()
    trainer.evaluate(metric_key_prefix="test")
    assert len(trainer.curve) == 4


class WreckWeightsAtStep(TrainerCallback):
    """Replaces every weight by noise at one step, so that the evaluation after it is the curve's worst."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.normal_()


def best_state_trainer(model, tokenizer, tmp_path, num_steps: int, wreck_at_step: int, **overrides):
    """A trainer that evaluates after every step, keeps the best validation state (MRR@10) and wrecks the weights
    at `wreck_at_step`."""
    trainer = make_trainer(
        model,
        tokenizer,
        tmp_path,
        num_train_epochs=num_steps,
        save_strategy="best",
        metric_for_best_model="mrr@10",
        load_best_model_at_end=True,
        save_total_limit=1,
        **overrides,
    )
    trainer.add_callback(TimeBudgetCallback(max_minutes=30, eval_every_minutes=1e-9))
    trainer.add_callback(WreckWeightsAtStep(wreck_at_step))
    return trainer


def test_the_best_point_of_a_time_based_curve_is_restored_and_reported(t5_tokenizer, tmp_path, caplog):
    num_steps = 10  # 8 training pairs at batch 8: one step per epoch, an evaluation after each
    trainer = best_state_trainer(tiny_retriever(), t5_tokenizer, tmp_path, num_steps, wreck_at_step=num_steps)
    with CaptureLogger(transformers_logging.get_logger("transformers.trainer")) as trainer_log:
        trainer.train()
    # The tied embeddings are not in the checkpoint, and not missing from it: the tie holds after loading.
    assert "missing keys" not in trainer_log.out
    backbone = trainer.model.backbone
    assert backbone.lm_head.weight is backbone.shared.weight is backbone.encoder.embed_tokens.weight
    curve = trainer.curve
    assert [point["step"] for point in curve] == list(range(1, num_steps + 1))
    best = max(curve, key=lambda point: point["eval_mrr@10"])  # the first of equals, as the Trainer keeps it
    assert curve[-1]["eval_mrr@10"] < best["eval_mrr@10"]
    assert trainer.tested_weights() == {
        "weights": "best validation",
        "step": best["step"],
        "training_minutes": best["training_minutes"],
        "metric": "mrr@10",
        "value": best["eval_mrr@10"],
    }
    assert trainer.evaluate()["eval_mrr@10"] == best["eval_mrr@10"]
    assert describe_tested_weights(trainer.tested_weights()) == (
        f"best validation mrr@10 {best['eval_mrr@10']:.4f} (step {best['step']}, "
        f"{best['training_minutes']:.1f} training minutes)"
    )
    # A stopped run of the script continues from the one checkpoint kept, the best point, and says so.
    with caplog.at_level(logging.WARNING, logger="trainers.commands.common"):
        source = checkpoint_to_resume(trainer.args, RetrieverArguments().auto_resume)
    assert source == str(tmp_path / "trainer" / f"checkpoint-{best['step']}")
    assert "the best validation point so far, not from where the run stopped" in caplog.text
    last = make_trainer(tiny_retriever(), t5_tokenizer, tmp_path / "last", num_train_epochs=2)
    last.train()
    assert last.tested_weights() == {"weights": "last", "step": 2}
    assert describe_tested_weights(last.tested_weights()) == "last (step 2)"


def test_the_untrained_weights_are_the_best_point_when_no_step_beats_them(overfitted_trainer, t5_tokenizer, tmp_path):
    model = copy.deepcopy(overfitted_trainer.model)
    trainer = best_state_trainer(model, t5_tokenizer, tmp_path, 3, wreck_at_step=1, eval_on_start=True)
    trainer.train()
    start, *trained = trainer.curve
    assert start["step"] == 0 and start["eval_mrr@10"] > max(point["eval_mrr@10"] for point in trained)
    assert trainer.tested_weights()["step"] == 0
    assert trainer.evaluate()["eval_mrr@10"] == start["eval_mrr@10"]
    assert os.listdir(tmp_path / "trainer") == ["checkpoint-0"]


def test_report_shows_labels_and_published_results(tmp_path):
    report = RetrievalReport(
        dataset="beauty",
        task_type="sequential recommendation",
        split_description="leave-one-out",
        labels=["time order: file order"],
        id_scheme="random",
        backbone="tiny",
        num_documents=12,
        codebook_sizes=[4, 4, 2],
        k_values=[5, 10],
        num_beams=20,
        num_test_queries=7,
        num_dropped_test_queries=0,
        training_examples={"next-item": 10},
        metrics={f"{name}@{k}": 0.5 for name in ("recall", "ndcg", "mrr") for k in (5, 10)},
        published={"TIGER": TIGER_BEAUTY},
        training={"learning rate": 1e-5},
    )
    json_path, markdown_path = report.write(tmp_path)
    assert RetrievalReport(**json.loads(json_path.read_text())) == report
    markdown = markdown_path.read_text()
    assert "> **time order: file order**" in markdown
    assert "| TIGER | 0.0454 | 0.0648 | 0.0321 | 0.0384 | n/a | n/a |" in markdown
    assert "| random IDs (this run) | 0.5000 |" in markdown and "| learning rate | 1e-05 |" in markdown


# --- the example scripts, in subprocesses ---


def run_example(script: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    arguments = (*arguments, "--disable_tqdm", "True", "--log_level", "warning")
    return run_script(EXAMPLES / script, *arguments, cwd=cwd, env=env, timeout=300)


def read_report(output_dir: Path) -> dict:
    return json.loads((output_dir / "retrieval_report.json").read_text())


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
@pytest.mark.parametrize("script, arguments, message", [
    ("run_retrieval.py", ["--dataset", "nq320k", "--id_scheme", "random"], "unknown retrieval dataset 'nq320k'"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}"], "pass either --indexer"),
    ("run_retrieval.py", ["--dataset", "scifact", "--data_dir", "{empty}", "--id_scheme", "random"], "scifact.zip"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "rq"],
     "unknown --id_scheme"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--indexer", "{empty}"],
     "cannot load the indexer"),
    ("run_retrieval.py", ["--corpus_file", "{empty}/docs.jsonl", "--dataset_name", "me/docs", "--id_scheme", "random"],
     "pass either --corpus_file or --dataset_name, not both"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--indexer", "{empty}/gone"],
     "cannot load the indexer '{empty}/gone': no such folder, nor a Hub repository"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--indexer", "{empty}",
                          "--retriever_init", "scratch"], "unknown --retriever_init 'scratch'"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--max_query_length", "1000"], "max_query_length = 1000 is longer than the encoder's"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--max_document_length", "1000"], "--max_document_length 1000 is longer than the encoder's"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--eval_strategy", "steps"], "needs validation queries: pass --validation_queries N"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--eval_every_minutes", "1", "--max_train_minutes", "1"], "--eval_every_minutes needs"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--lr_decay_over_budget", "linear"], "--lr_decay_over_budget decays over the training"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--lr_decay_over_budget", "step", "--max_train_minutes", "1"], "lr_decay = 'step': choose"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--training_pairs", "query", "documents"], "--training_pairs takes kinds among query, "),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--label_smoothing_factor", "1.0"], "label_smoothing_factor = 1.0: a share in [0, 1)"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--validation_queries", "4"], "cannot hold out 4 validation queries of 4 training queries"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--training_pairs", "pseudo-query"], "has no training pairs of the kinds pseudo-query"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--indexer", "{empty}",
                          "--backbone_config", "t5"], "add --retriever_init backbone"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--backbone_config", "t5", "--backbone_config_overrides", "num_layerz=2"],
     "--backbone_config 't5': key num_layerz"),
    ("run_retrieval.py", ["--dataset", "cranfield", "--data_dir", "{data}", "--id_scheme", "random",
                          "--resume_from_checkpoint", "{empty}/checkpoint-5"], "not a checkpoint folder"),
])  # fmt: skip
def test_bad_input_stops_with_one_error_line(script, arguments, message, tmp_path):
    (tmp_path / "empty").mkdir()
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    arguments = [argument.format(empty=tmp_path / "empty", data=data_dir) for argument in arguments]
    message = message.format(empty=tmp_path / "empty")
    completed = run_example(script, *arguments, "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    assert completed.returncode != 0
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_retrieval_product_search_substitute_end_to_end(tiny_backbone, tmp_path):
    data_dir = write_synthetic_office(tmp_path / "data")
    output_dir = tmp_path / "out"
    completed = run_example(
        "run_retrieval.py", "--dataset", "office", "--data_dir", str(data_dir), "--id_scheme", "random",
        "--backbone", str(tiny_backbone), "--codebook_sizes", "4", "4", "--num_train_epochs", "2",
        "--per_device_train_batch_size", "8", "--output_dir", str(output_dir), cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = read_report(output_dir)
    assert report["labels"] == [PRODUCT_SEARCH_SUBSTITUTE_LABEL] and report["task_type"] == report["labels"][0]
    assert PRODUCT_SEARCH_SUBSTITUTE_LABEL in report["split_description"]
    assert f"> **{PRODUCT_SEARCH_SUBSTITUTE_LABEL}**" in (output_dir / "retrieval_report.md").read_text()
    assert report["num_test_queries"] == 5 and report["training_examples"] == {"query": 5, "indexing": 12}
    assert set(report["metrics"]) == set(METRIC_NAMES) and all(0 <= v <= 1 for v in report["metrics"].values())
    assert report["num_beams"] == 20 and report["training"]["optimizer steps"] == 6
    retriever = LMIndexerRetriever.from_pretrained(output_dir)
    assert len(retriever.semantic_ids) == 12 and (output_dir / "tokenizer.json").is_file()
    assert set(retriever.config.retrieval_metrics) == set(METRIC_NAMES)


def save_tiny_indexer(path: Path, doc_ids: list[str], tokenizer) -> Path:
    """An (untrained) tiny indexer carrying random learned IDs of `doc_ids`, saved with its tokenizer."""
    torch.manual_seed(0)
    indexer = LMIndexerForSemanticID(tiny_indexer_config())
    sizes = list(indexer.config.codebook_sizes)
    codes = np.random.default_rng(0).integers(0, sizes, size=(len(doc_ids), len(sizes)))
    indexer.semantic_ids = SemanticIDs.from_learned_codes(doc_ids, codes, sizes)
    indexer.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_retrieval_from_a_saved_indexer_within_a_time_budget(t5_tokenizer, tmp_path):
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(doc) for doc in range(1, 13)], t5_tokenizer)
    output_dir = tmp_path / "out"
    completed = run_example(
        "run_retrieval.py", "--dataset", "cranfield", "--data_dir", str(data_dir), "--indexer", str(indexer),
        "--max_train_minutes", "0.00001", "--per_device_train_batch_size", "4", "--output_dir", str(output_dir),
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = read_report(output_dir)
    assert report["id_scheme"] == f"LMIndexer ({indexer})" and report["stopped_by_time_budget"]
    assert report["training"]["optimizer steps"] == 1 and report["num_test_queries"] == 4
    assert report["training_examples"] == {"query": 12, "indexing": 12} and report["labels"] == []
    assert report["training"]["learning rate"] == INDEXER_START_LEARNING_RATE


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_retrieval_on_chosen_pairs_with_a_validation_curve(t5_tokenizer, tmp_path):
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(doc) for doc in range(1, 13)], t5_tokenizer)
    output_dir = tmp_path / "out"
    completed = run_example(
        "run_retrieval.py", "--dataset", "cranfield", "--data_dir", str(data_dir), "--indexer", str(indexer),
        "--training_pairs", "query", "--validation_queries", "1", "--max_train_minutes", "5",
        "--eval_every_minutes", "0.000001", "--num_train_epochs", "3", "--per_device_train_batch_size", "3",
        "--output_dir", str(output_dir), *BEST_VALIDATION_STATE_FLAGS, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = read_report(output_dir)
    # 4 training queries with 3 relevant documents each; one query (3 pairs) held out; no indexing pairs.
    assert report["training_examples"] == {"query": 9} and report["num_test_queries"] == 4
    assert report["labels"] == [
        "1 training queries held out for validation (--validation_queries, seed 42)",
        "trained on query pairs only (--training_pairs)",
    ]
    curve = report["curve"]
    assert [point["step"] for point in curve] == list(range(1, 10))  # 3 steps an epoch, one evaluation each
    minutes = [point["training_minutes"] for point in curve]
    assert minutes == sorted(minutes) and minutes[-1] * 60 <= report["wall_time_seconds"]["training"] + 1e-6
    assert all(0.0 <= point["eval_recall@10"] <= 1.0 for point in curve)
    # The test metrics are those of the best validation point's weights, which the report names.
    best = max(curve, key=lambda point: point["eval_recall@10"])
    assert report["tested_weights"] == {
        "weights": "best validation",
        "step": best["step"],
        "training_minutes": best["training_minutes"],
        "metric": "recall@10",
        "value": best["eval_recall@10"],
    }
    markdown = (output_dir / "retrieval_report.md").read_text()
    assert "## Validation curve" in markdown and "| tested weights | best validation recall@10 " in markdown


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_retrieval_with_the_ids_of_an_indexer_on_a_pretrained_backbone(tiny_backbone, t5_tokenizer, tmp_path):
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(doc) for doc in range(1, 13)], t5_tokenizer)
    output_dir = tmp_path / "out"
    completed = run_example(
        "run_retrieval.py", "--dataset", "cranfield", "--data_dir", str(data_dir), "--indexer", str(indexer),
        "--retriever_init", "backbone", "--backbone", str(tiny_backbone), "--num_train_epochs", "1",
        "--per_device_train_batch_size", "8", "--output_dir", str(output_dir), cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert read_report(output_dir)["id_scheme"] == f"LMIndexer IDs ({indexer}) on {tiny_backbone}"
    retriever = LMIndexerRetriever.from_pretrained(output_dir)
    assert retriever.semantic_ids == LMIndexerForSemanticID.from_pretrained(indexer).semantic_ids
    assert retriever.config.seq2seq_config.d_model == tiny_t5_config().d_model
    assert retriever.config.backbone_name_or_path == str(tiny_backbone)


def test_evaluation_datasets_keep_the_judgments_of_every_query(t5_tokenizer):
    model = tiny_retriever()
    dataset = retrieval_evaluation_dataset(
        model, [[5, 1], [6, 1]], [{"doc-1": 1, "doc-2": 3}, {"doc-99": 2, "doc-3": 1}]
    )
    assert isinstance(dataset, Dataset) and dataset["relevant_doc_ids"] == [["doc-1", "doc-2"], ["doc-99", "doc-3"]]
    assert dataset["relevance"] == [[1, 3], [2, 1]]
    assert dataset["labels"] == [model.id_tokens("doc-2"), model.id_tokens("doc-3")]  # best graded with an ID
