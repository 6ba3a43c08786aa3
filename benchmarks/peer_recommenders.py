"""
Peer recommenders from `cornac` 3.0.1 (SASRec and TIGER) on this repository's leave-one-out split, each trained for a
wall-clock budget of training minutes and evaluated like the generative rows of `bench_quality.py --task rec`.

- **Data**: exactly [`~modeling_lmindexer.data.recommendation.leave_one_out_split`]: a model trains on each user's
  `items[:-2]` (cornac's session iterator predicts every item of it from the items before it, at most `max_len`), and
  is evaluated on the split's validation and test examples, with the split's histories as they are.
- **Ranking**: full ranking over every item of the catalogue `item_ids` (items that never occur in training keep
  their initial embeddings), history items are NOT excluded (neither do the generative rows, which generate over all
  IDs, nor cornac's own `NextItemEvaluation`). A hit is the right item; Recall@K, NDCG@K and MRR@K come from
  [`~modeling_lmindexer.metrics.compute_retrieval_metrics`].
- **Budget**: cornac's `fit()` runs a fixed number of epochs and cannot be stopped on a clock or continued, so `fit` is
  called with `n_epochs=0` (it builds the model, and TIGER's semantic IDs, exactly as cornac does) and the epochs run
  here, one optimizer step of cornac's own loop at a time, until the training time reaches `budget_minutes`, the
  config's `n_epochs` or `max_steps`. Evaluation time is not training time. The step is cornac 3.0.1's (pinned): the
  same batches, negatives, loss, optimizer and learning-rate schedule as in `SASRec.fit` and `TIGER._fit_seq2seq`.
  cornac's best-on-validation model selection is not used: the last model is tested, as for the generative rows,
  unless `keep_best` asks for the weights of the best curve point (validation Recall@10), as the generative rows get
  them with `--load_best_model_at_end`.
- **Seeds**: the seed goes to cornac (`numpy.random.RandomState` for the shuffles and negatives, `torch.manual_seed` at
  the start of `fit` for initialisation, dropout and TIGER's k-means). With `max_steps`, two runs with the same seed
  and thread count give the same metrics; a wall-clock budget stops after a machine-dependent number of steps.
"""

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import cornac
import numpy as np
import torch
from cornac.data import FeatureModality, SequentialDataset
from cornac.models import TIGER, SASRec
from cornac.models.seq_utils import session_seq_iter
from cornac.models.seq_utils.losses import get_loss_function

from modeling_lmindexer.data.recommendation import LeaveOneOutSplit, RecommendationExample, curve_sample
from modeling_lmindexer.metrics import compute_retrieval_metrics
from trainers.report import tested_weights_record


logger = logging.getLogger(__name__)

DEFAULT_K_VALUES = (5, 10)
# cornac 3.0.1's tuned SASRec on Beauty (its TIGER README: best validation NDCG@10 over loss x embedding size x
# learning rate x dropout x max_len); every other argument is cornac's default. `n_epochs` is only a cap: the budget
# usually binds. cornac's BCE averages over all B x (B + n_sample) scores, so the B positives are 1/2,560 of the loss:
# on Beauty this config stays at chance level after one epoch (3 CPU minutes), where `{"loss": "ce"}` already beats
# popularity (measured at 0.6 epoch: test Recall@10 0.020 against 0.011).
SASREC_TUNED_CONFIG = {"loss": "bce", "embedding_dim": 128, "learning_rate": 5e-4, "dropout": 0.2, "max_len": 50}
# cornac's GRID recipe for TIGER (residual k-means semantic IDs, Adam 5e-4, constant learning rate) on cornac's default
# architecture, which is the TIGER paper's (4 + 4 T5 layers, width 128, 3 levels of 256 codes plus a collision level).
# Not PAISCHER_CONFIG: its 8,000 RQ-VAE epochs and 100-epoch cosine schedule do not fit minutes of CPU. 20 beams, as
# the generative rows.
TIGER_CONFIG = {
    "tokenizer": "rkmeans",
    "learning_rate": 5e-4,
    "weight_decay": 1e-6,
    "batch_size": 256,
    "lr_schedule": "constant",
    "n_beams": 20,
}
EPOCH_CAP = 100
SASREC_SYSTEM = f"SASRec (cornac {cornac.__version__})"
TIGER_SYSTEM = f"TIGER (cornac {cornac.__version__})"
RANKING_NOTE = (
    "full ranking over all catalogue items, history items not excluded (as the generative rows); a hit is the right "
    "item"
)


def training_sequences(split: LeaveOneOutSplit) -> dict[str, list[str]]:
    """
    Each user's training items, `items[:-2]` of the sequence the split came from, rebuilt from the split (the first
    training example's history holds `items[0]`, the training targets the rest; a user without training examples has
    `items[:1]`, its validation history).

    Args:
        split ([`LeaveOneOutSplit`]): What [`leave_one_out_split`] returned, any `max_history_length`.

    Returns:
        `dict[str, list[str]]`: Item doc ids of every user of `split.validation`, oldest first, in that order.

    Raises:
        `ValueError`: If the rebuilt items do not end with a user's validation history (not a leave-one-out split).
    """
    rebuilt: dict[str, list[str]] = {}
    for example in split.train:
        rebuilt.setdefault(example.user_id, [example.history[0]]).append(example.target)
    sequences = {}
    for example in split.validation:
        items = rebuilt.get(example.user_id, list(example.history))
        if tuple(items[-len(example.history) :]) != example.history:
            raise ValueError(
                f"The training examples of user '{example.user_id}' do not lead to its validation history: "
                "`split` must come from leave_one_out_split."
            )
        sequences[example.user_id] = items
    return sequences


def _check_catalogue(split: LeaveOneOutSplit, item_ids: Sequence[str]) -> None:
    if len(set(item_ids)) != len(item_ids):
        raise ValueError("item_ids holds duplicates: every catalogue item must appear once.")
    catalogue = set(item_ids)
    for example in (*split.train, *split.validation, *split.test):
        for item in (*example.history, example.target):
            if item not in catalogue:
                raise ValueError(f"Item '{item}' of user '{example.user_id}' is not in item_ids.")


def cornac_training_set(split: LeaveOneOutSplit, item_ids: Sequence[str], seed: int) -> SequentialDataset:
    """
    The training items of every user as a cornac `SequentialDataset`: one session per user, in time order, and an item
    index that covers the whole catalogue in the order of `item_ids` (so the models score every catalogue item).

    Raises:
        `ValueError`: For duplicate `item_ids`, an item of the split outside them, or a split that is not
        leave-one-out.
    """
    _check_catalogue(split, item_ids)
    rows = [
        (user_id, user_id, item, position)
        for user_id, items in training_sequences(split).items()
        for position, item in enumerate(items)
    ]
    item_index = OrderedDict((item, index) for index, item in enumerate(item_ids))
    return SequentialDataset.build(rows, fmt="USIT", global_iid_map=item_index, seed=seed)


def _num_training_examples(train_set: SequentialDataset) -> int:
    """Next-item examples of one epoch of `session_seq_iter`: every item of a session but its first."""
    return sum(len(indices) - 1 for indices in train_set.sessions.values() if len(indices) >= 2)


def _top_items(scores: torch.Tensor, depth: int) -> np.ndarray:
    """
    Args:
        scores (`torch.Tensor` of shape `(num_queries, num_items)`): A score per catalogue item.

    Returns:
        `np.ndarray` of shape `(num_queries, min(depth, num_items))`: The indices of the best items, best first.
    """
    return torch.topk(scores, min(depth, scores.shape[1]), dim=1).indices.numpy()


def _evaluate(
    rank: Callable[[list[RecommendationExample], int], np.ndarray],
    examples: Sequence[RecommendationExample],
    item_ids: Sequence[str],
    k_values: Sequence[int],
) -> dict[str, float]:
    """Recall@K, NDCG@K and MRR@K over `examples` of the rankings `rank(examples, depth)` (catalogue indices)."""
    rankings = rank(list(examples), max(k_values))
    predictions = [[item_ids[index] for index in row] for row in rankings.tolist()]
    references = [{example.target: 1} for example in examples]
    return compute_retrieval_metrics(predictions, references, k_values)


def _train_with_budget(
    batches: Callable[[], Iterable[Any]],
    step: Callable[[Any], int],
    evaluate: Callable[[int | None], dict[str, dict[str, float]]],
    examples_per_epoch: int,
    budget_minutes: float,
    eval_every_minutes: float | None,
    max_epochs: float,
    max_steps: int | None,
    curve_max_queries: int | None,
    keep_best_of: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """
    Run `step` on the batches of successive epochs until the training time reaches `budget_minutes`, `max_epochs` or
    `max_steps`, evaluating every `eval_every_minutes` of training time and once at the end.

    Args:
        batches (`Callable`): A fresh iterator over one epoch's batches (cornac reshuffles at each call).
        step (`Callable`): One optimizer step on a batch; returns the number of examples it trained on.
        evaluate (`Callable`): Metrics of the validation and test splits, on a sample of `n` examples (all for None).
        keep_best_of (`torch.nn.Module`, *optional*): The network whose weights at the best curve point (validation
            Recall@10; the last weights are a candidate too, on the same queries) are restored before the final
            evaluation, which then stays out of the curve.

    Returns:
        `dict`: The training counters, the curve, the final metrics and `tested_weights` (see
        [`train_and_evaluate_sasrec`]).
    """
    budget_seconds = budget_minutes * 60
    eval_every_seconds = eval_every_minutes * 60 if eval_every_minutes else math.inf
    training_seconds = evaluation_seconds = 0.0
    steps = examples = 0
    curve = []
    best_point: dict[str, Any] | None = None
    best_weights: dict[str, torch.Tensor] = {}

    def curve_point(num_queries: int | None) -> dict[str, Any]:
        nonlocal evaluation_seconds
        start = time.perf_counter()
        metrics = evaluate(num_queries)
        evaluation_seconds += time.perf_counter() - start
        point = {
            "training_minutes": training_seconds / 60,
            "steps": steps,
            "epochs": examples / examples_per_epoch,
            "num_queries": num_queries,
            **metrics,
        }
        logger.info(
            f"{point['training_minutes']:.2f} training minutes, {steps} steps, {point['epochs']:.2f} epochs: "
            f"validation Recall@10 {metrics['validation'].get('recall@10', float('nan')):.4f}"
        )
        return point

    def add_curve_point() -> None:
        nonlocal best_point, best_weights
        point = curve_point(curve_max_queries)
        curve.append(point)
        if keep_best_of is None:
            return
        if best_point is None or point["validation"]["recall@10"] > best_point["validation"]["recall@10"]:
            best_point = point
            best_weights = {name: tensor.detach().clone() for name, tensor in keep_best_of.state_dict().items()}

    stopped_by = None
    while stopped_by is None:
        examples_before_epoch = examples
        for batch in batches():
            start = time.perf_counter()
            examples += step(batch)
            training_seconds += time.perf_counter() - start
            steps += 1
            if training_seconds >= budget_seconds:
                stopped_by = "budget"
            elif max_steps is not None and steps >= max_steps:
                stopped_by = "max_steps"
            elif examples >= max_epochs * examples_per_epoch:
                stopped_by = "n_epochs"
            if stopped_by is not None:
                break
            if training_seconds >= (len(curve) + 1) * eval_every_seconds:
                add_curve_point()
        if stopped_by is None and examples == examples_before_epoch:
            raise ValueError("An epoch trained on no example: the batch size must be at least 2.")
    if keep_best_of is None:
        curve.append(curve_point(None))
        final = curve[-1]
        tested_weights = tested_weights_record(steps)
    else:
        add_curve_point()
        keep_best_of.load_state_dict(best_weights)
        final = curve_point(None)
        tested_weights = tested_weights_record(
            best_point["steps"], "recall@10", best_point["validation"]["recall@10"], best_point["training_minutes"]
        )
    return {
        "training_minutes": training_seconds / 60,
        "stopped_by": stopped_by,
        "steps": steps,
        "epochs": examples / examples_per_epoch,
        "examples": examples,
        "examples_per_second": examples / training_seconds if training_seconds > 0 else None,
        "examples_per_epoch": examples_per_epoch,
        "evaluation_seconds": evaluation_seconds,
        "curve": curve,
        "validation": final["validation"],
        "test": final["test"],
        "tested_weights": tested_weights,
    }


def _checked_arguments(
    budget_minutes: float,
    eval_every_minutes: float | None,
    k_values: Sequence[int],
    max_steps: int | None,
    keep_best: bool,
) -> None:
    if budget_minutes <= 0:
        raise ValueError(f"budget_minutes must be positive, got {budget_minutes}.")
    if eval_every_minutes is not None and eval_every_minutes <= 0:
        raise ValueError(f"eval_every_minutes must be positive or None, got {eval_every_minutes}.")
    if not k_values or min(k_values) < 1:
        raise ValueError(f"k_values must be positive cut-offs, got {list(k_values)}.")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be positive or None, got {max_steps}.")
    if keep_best and 10 not in k_values:
        raise ValueError(f"keep_best picks the best validation Recall@10: k_values {list(k_values)} lack 10.")


def _splits_evaluator(
    split: LeaveOneOutSplit,
    rank: Callable[[list[RecommendationExample], int], np.ndarray],
    item_ids: Sequence[str],
    k_values: Sequence[int],
    before: Callable[[], None],
    after: Callable[[], None],
) -> Callable[[int | None], dict[str, dict[str, float]]]:
    def evaluate(num_queries: int | None) -> dict[str, dict[str, float]]:
        before()
        metrics = {
            name: _evaluate(rank, curve_sample(examples, num_queries), item_ids, k_values)
            for name, examples in (("validation", split.validation), ("test", split.test))
        }
        after()
        return metrics

    return evaluate


def _result(system: str, config: Mapping[str, Any], seed: int, budget_minutes: float, **entries: Any) -> dict:
    return {
        "system": system,
        "config": dict(config),
        "seed": seed,
        "budget_minutes": budget_minutes,
        "ranking": RANKING_NOTE,
        "cornac_version": cornac.__version__,
        "torch_threads": torch.get_num_threads(),
        **entries,
    }


@torch.no_grad()
def sasrec_top_items(
    model: SASRec, histories: Sequence[Sequence[int]], depth: int, batch_size: int = 256
) -> np.ndarray:
    """
    The best catalogue items of a fitted SASRec for many histories at once: the scores of `SASRec.score` (the last
    `max_len` items, left-padded; dot products with every item embedding), one forward pass per batch.

    Args:
        model (`cornac.models.SASRec`): A fitted model, in eval mode for deterministic scores.
        histories (`Sequence[Sequence[int]]`): Item indices of cornac's item index, oldest first, at least one each.
        depth (`int`): Items kept per history.
        batch_size (`int`): Histories per forward pass.

    Returns:
        `np.ndarray` of shape `(len(histories), min(depth, model.total_items))`: item indices, best first.
    """
    all_items = torch.arange(model.total_items, device=model.device)
    rankings = []
    for start in range(0, len(histories), batch_size):
        padded = []
        for history in histories[start : start + batch_size]:
            items = list(history)[-model.max_len :]
            padded.append([model.pad_idx] * (model.max_len - len(items)) + items)
        histories_t = torch.tensor(padded, dtype=torch.long, device=model.device)
        # SASRecModel.forward scores the (B, max_len) histories against the given items: (B, total_items).
        rankings.append(_top_items(model.model(None, histories_t, all_items).cpu(), depth))
    return np.concatenate(rankings)


def train_and_evaluate_sasrec(
    split: LeaveOneOutSplit,
    item_ids: Sequence[str],
    budget_minutes: float,
    eval_every_minutes: float | None = None,
    seed: int = 42,
    config: Mapping[str, Any] | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    max_steps: int | None = None,
    curve_max_queries: int | None = None,
    eval_batch_size: int = 256,
    keep_best: bool = False,
) -> dict[str, Any]:
    """
    Train cornac's SASRec on the split's training items for `budget_minutes` of training time and evaluate it on the
    validation and test examples by full ranking over `item_ids`.

    Args:
        split ([`LeaveOneOutSplit`]): The leave-one-out split; evaluation reads its histories as they are (SASRec
            keeps their last `max_len` items), so `leave_one_out_split(sequences, max_history_length=50)` gives
            SASRec its full context, the default 20 the generative rows' inputs.
        item_ids (`Sequence[str]`): The catalogue, every item of the split among them; all of them are ranked.
        budget_minutes (`float`): Training minutes (evaluation excluded); the step running at the deadline finishes.
        eval_every_minutes (`float`, *optional*): Add a curve point every this many training minutes.
        seed (`int`): cornac's seed (initialisation, dropout, shuffling, negative sampling).
        config (`Mapping`, *optional*): `cornac.models.SASRec` arguments over [`SASREC_TUNED_CONFIG`]; `n_epochs`
            caps the epochs (default 100).
        k_values (`Sequence[int]`): The metric cut-offs.
        max_steps (`int`, *optional*): Stop after this many optimizer steps (reproducible runs, quick tests).
        curve_max_queries (`int`, *optional*): Evaluate the intermediate curve points on a fixed random sample of N
            examples of each split only ([`curve_sample`], the users the generative rows' curves rank); the final
            point always uses all of them.
        eval_batch_size (`int`): Histories scored per forward pass.
        keep_best (`bool`): Test the weights of the best curve point (validation Recall@10 on the curve's queries,
            the last weights among the candidates) instead of the last weights.

    Returns:
        `dict`: `system`, `config` (every SASRec argument used), `seed`, `budget_minutes`, `training_minutes`,
        `stopped_by` (`"budget"`, `"max_steps"` or `"n_epochs"`), `steps`, `epochs` (fractional), `examples`,
        `examples_per_second`, `examples_per_epoch`, `evaluation_seconds`, `setup_seconds`, `validation` and `test`
        (`{"recall@10": ..., "ndcg@10": ..., "mrr@10": ..., ...}`), and `curve`: one dict per evaluation, in increasing
        training time, with `training_minutes`, `steps`, `epochs`, `num_queries` (None: all) and the `validation` and
        `test` metrics; the last point is the final evaluation, except with `keep_best`, whose final evaluation (of
        the restored weights) is `validation` and `test` only. `tested_weights`: `{"weights": "last", "step"}`, or
        `{"weights": "best validation", "step", "training_minutes", "metric", "value"}`.

    Raises:
        `ValueError`: For a non-positive budget, interval, cut-off or `max_steps`, duplicate `item_ids`, a split
        item outside `item_ids`, or a split without training examples.
    """
    _checked_arguments(budget_minutes, eval_every_minutes, k_values, max_steps, keep_best)
    config = {**SASREC_TUNED_CONFIG, "n_epochs": EPOCH_CAP, **(config or {}), "seed": seed}
    setup_start = time.perf_counter()
    train_set = cornac_training_set(split, item_ids, seed)
    examples_per_epoch = _num_training_examples(train_set)
    if examples_per_epoch == 0:
        raise ValueError("The split has no training examples: every user has only 3 items.")
    model = SASRec(**{**config, "n_epochs": 0})
    # fit() with no epochs builds the network as cornac does (after torch.manual_seed(seed)); the epochs run below.
    model.fit(train_set)
    network = model.model
    loss_function = get_loss_function(model.loss)
    loss_kwargs = {"bpreg": model.bpreg, "elu_param": model.elu_param, "n_sample": model.n_sample}
    # The optimizer of SASRec.fit.
    optimizer = torch.optim.Adam(network.parameters(), lr=model.learning_rate, betas=(0.9, 0.98))
    setup_seconds = time.perf_counter() - setup_start

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return session_seq_iter(
            train_set,
            pad_index=model.pad_idx,
            batch_size=model.batch_size,
            max_len=model.max_len,
            n_sample=model.n_sample,
            sample_alpha=model.sample_alpha,
            rng=model.rng,
            shuffle=True,
        )

    def step(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
        """The body of SASRec.fit's batch loop: hist_iids (B, max_len), out_iids (B + n_sample,)."""
        _, hist_iids, out_iids = batch
        if len(hist_iids) < 2:
            return 0
        out_iids_t = torch.tensor(out_iids, dtype=torch.long, device=model.device)
        network.zero_grad()
        item_scores = network(None, torch.tensor(hist_iids, dtype=torch.long, device=model.device), out_iids_t)
        loss = loss_function(item_scores, out_iids=out_iids_t, batch_size=len(hist_iids), **loss_kwargs)
        if model.l2_reg > 0:
            for parameter in network.parameters():
                loss = loss + model.l2_reg * torch.norm(parameter)
        loss.backward()
        optimizer.step()
        return len(hist_iids)

    def rank(examples: list[RecommendationExample], depth: int) -> np.ndarray:
        histories = [[model.iid_map[item] for item in example.history] for example in examples]
        return sasrec_top_items(model, histories, depth, eval_batch_size)

    network.train()
    evaluate = _splits_evaluator(split, rank, item_ids, k_values, before=network.eval, after=network.train)
    outcome = _train_with_budget(
        batches,
        step,
        evaluate,
        examples_per_epoch,
        budget_minutes,
        eval_every_minutes,
        config["n_epochs"],
        max_steps,
        curve_max_queries,
        keep_best_of=network if keep_best else None,
    )
    return _result(SASREC_SYSTEM, config, seed, budget_minutes, setup_seconds=setup_seconds, **outcome)


def train_and_evaluate_tiger(
    split: LeaveOneOutSplit,
    item_ids: Sequence[str],
    item_embeddings: np.ndarray,
    budget_minutes: float,
    eval_every_minutes: float | None = None,
    seed: int = 42,
    config: Mapping[str, Any] | None = None,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    max_steps: int | None = None,
    curve_max_queries: int | None = None,
    keep_best: bool = False,
) -> dict[str, Any]:
    """
    Build cornac's TIGER semantic IDs from `item_embeddings`, train its seq2seq model on the split's training items for
    `budget_minutes` of training time, and evaluate it with constrained beam search (`n_beams` items ranked, the rest
    tied below them) over every item of `item_ids`.

    Args:
        split ([`LeaveOneOutSplit`]): The leave-one-out split; TIGER keeps the last `max_len` (20) history items.
        item_ids (`Sequence[str]`): The catalogue, every item of the split among them.
        item_embeddings (`np.ndarray` of shape `(len(item_ids), dim)`): Item content embeddings, row `i` for
            `item_ids[i]`, e.g. `modeling_lmindexer.baselines.sentence_embeddings(texts)` (MiniLM, 384 dimensions).
        budget_minutes (`float`): Seq2seq training minutes; building the semantic IDs (`setup_seconds`) is not in the
            budget, as the ID schemes' k-means is not in the generative rows' budget.
        config (`Mapping`, *optional*): `cornac.models.TIGER` arguments over [`TIGER_CONFIG`]; `n_epochs` caps the
            epochs (default 100) and is the horizon of `lr_schedule="cosine"`; `model_selection` is not used.

    Every other argument and the returned dict are those of [`train_and_evaluate_sasrec`]; `setup_seconds` includes
    the tokenizer (residual k-means or RQ-VAE training).

    Raises:
        `ValueError`: For the errors of [`train_and_evaluate_sasrec`], embeddings with another number of rows than
        `item_ids`, or fewer `n_beams` than the largest cut-off.
    """
    _checked_arguments(budget_minutes, eval_every_minutes, k_values, max_steps, keep_best)
    config = {**TIGER_CONFIG, "n_epochs": EPOCH_CAP, **(config or {}), "seed": seed}
    if config["n_beams"] < max(k_values):
        raise ValueError(f"n_beams = {config['n_beams']} ranks fewer items than the cut-off {max(k_values)}.")
    item_embeddings = np.asarray(item_embeddings, dtype=np.float32)
    if item_embeddings.ndim != 2 or item_embeddings.shape[0] != len(item_ids):
        raise ValueError(
            f"item_embeddings must have one row per item of item_ids ({len(item_ids)}), got shape "
            f"{item_embeddings.shape}."
        )
    setup_start = time.perf_counter()
    train_set = cornac_training_set(split, item_ids, seed)
    examples_per_epoch = _num_training_examples(train_set)
    if examples_per_epoch == 0:
        raise ValueError("The split has no training examples: every user has only 3 items.")
    # Rows already follow the item index (item_ids order), so the modality needs no id mapping.
    train_set.add_modalities(item_feature=FeatureModality(features=item_embeddings))
    model = TIGER(**{**config, "n_epochs": 0})
    # fit() with no epochs builds the semantic IDs, the trie and the seq2seq network as cornac does; epochs run below.
    model.fit(train_set)
    # The learning-rate schedule's horizon is the epoch cap, as in TIGER._fit_seq2seq.
    model.n_epochs = config["n_epochs"]
    network = model.model.to(model.device_)
    # The optimizer and schedule of TIGER._fit_seq2seq.
    optimizer = torch.optim.AdamW(network.parameters(), lr=model.learning_rate, weight_decay=model.weight_decay)
    scheduler = model._make_lr_scheduler(torch, optimizer)
    setup_seconds = time.perf_counter() - setup_start

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return session_seq_iter(
            train_set,
            pad_index=model.pad_idx,
            batch_size=model.batch_size,
            max_len=model.max_len,
            n_sample=0,
            rng=model.rng,
            shuffle=True,
        )

    def step(batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
        """The body of TIGER._fit_seq2seq's batch loop: hist_iids (B, max_len), out_iids (B,)."""
        _, hist_iids, out_iids = batch
        encoder_tokens = model.enc_token_table[hist_iids].reshape(len(hist_iids), -1)
        encoder_tokens_t = torch.tensor(encoder_tokens, dtype=torch.long, device=model.device_)
        encoder_mask_t = (encoder_tokens_t != 0).float()
        target_t = torch.tensor(model.sid_table[out_iids], dtype=torch.long, device=model.device_)
        optimizer.zero_grad()
        loss = network(encoder_tokens_t, encoder_mask_t, target_t)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return len(hist_iids)

    def rank(examples: list[RecommendationExample], depth: int) -> np.ndarray:
        """Top `depth` catalogue indices per example, shape `(len(examples), depth)`, from TIGER.score (one beam
        search per history: cornac's beam search takes one history at a time)."""
        rankings = []
        for example in examples:
            scores = model.score(None, [model.iid_map[item] for item in example.history])
            rankings.append(_top_items(torch.from_numpy(scores)[None], depth)[0])
        return np.stack(rankings)

    network.train()
    evaluate = _splits_evaluator(split, rank, item_ids, k_values, before=network.eval, after=network.train)
    outcome = _train_with_budget(
        batches,
        step,
        evaluate,
        examples_per_epoch,
        budget_minutes,
        eval_every_minutes,
        config["n_epochs"],
        max_steps,
        curve_max_queries,
        keep_best_of=network if keep_best else None,
    )
    semantic_ids = {"num_collisions": int((model.sid_table[:, -1] > 0).sum()), "level_sizes": model.level_sizes}
    return _result(
        TIGER_SYSTEM, config, seed, budget_minutes, setup_seconds=setup_seconds, semantic_ids=semantic_ids, **outcome
    )


__all__ = [
    "SASREC_TUNED_CONFIG",
    "TIGER_CONFIG",
    "cornac_training_set",
    "sasrec_top_items",
    "train_and_evaluate_sasrec",
    "train_and_evaluate_tiger",
    "training_sequences",
]
