"""Callbacks for any [`~transformers.Trainer`]: a wall-time training budget that survives stops and resumes, and the
learning curve a trainer records against it."""

import math
import os
import time

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, SaveStrategy
from transformers.utils import logging

from .report import tested_weights_record


logger = logging.get_logger(__name__)


class TimeBudgetCallback(TrainerCallback, ExportableState):
    """
    Stops training once `max_minutes` of training wall time have been spent, checked after every optimizer step. The
    time spent is saved in every checkpoint (`trainer_state.json`, as an [`~transformers.ExportableState`]) and read
    back when training resumes from one, so a run stopped and resumed gets the same budget as an uninterrupted one
    (the time between the last checkpoint and the stop is not counted: those steps are trained again). Under several
    processes the decision is shared (any process over budget stops all of them at the same step), so no process
    waits forever for the others.

    Time a trainer spends evaluating is not training time: it reports it with [`~TimeBudgetCallback.exclude`]. With
    `eval_every_minutes`, the callback also asks for an evaluation each time that many more training minutes have
    passed, so learning curves have points at even training times.

    A step-based learning-rate schedule cannot end with the budget, whose number of steps is unknown in advance.
    With `lr_decay`, a [`LearningCurveMixin`] trainer's schedule multiplies the learning rate (after its warm-up
    steps) by [`~TimeBudgetCallback.learning_rate_factor`], which falls from 1 to 0 over the training minutes.

    Args:
        max_minutes (`float`): The training budget in minutes, positive.
        eval_every_minutes (`float`, *optional*): Training minutes between evaluations.
        lr_decay (`str`, *optional*): `"linear"` or `"cosine"` decay of the learning rate over the budget.
    """

    LR_DECAYS = ("linear", "cosine")

    def __init__(self, max_minutes: float, eval_every_minutes: float | None = None, lr_decay: str | None = None):
        if max_minutes <= 0:
            raise ValueError(f"max_minutes = {max_minutes}: the training budget must be positive.")
        if eval_every_minutes is not None and eval_every_minutes <= 0:
            raise ValueError(f"eval_every_minutes = {eval_every_minutes}: the interval must be positive.")
        if lr_decay not in (None, *self.LR_DECAYS):
            raise ValueError(f"lr_decay = {lr_decay!r}: choose {' or '.join(self.LR_DECAYS)} (or None).")
        self.max_minutes = max_minutes
        self.eval_every_minutes = eval_every_minutes
        self.lr_decay = lr_decay
        self.evaluations_asked = 0
        # Training seconds of the earlier runs this one resumes (read from the checkpoint at train begin).
        self.spent_seconds = 0.0
        self.start_time: float | None = None
        self.stopped_training = False

    @property
    def elapsed_seconds(self) -> float:
        """Training seconds spent so far, earlier runs resumed from included."""
        running = time.monotonic() - self.start_time if self.start_time is not None else 0.0
        return self.spent_seconds + running

    def learning_rate_factor(self) -> float:
        """What `lr_decay` leaves of the learning rate now: 1 at the start of the budget, 0 at its end (1 without)."""
        if self.lr_decay is None:
            return 1.0
        spent = min(1.0, self.elapsed_seconds / (60.0 * self.max_minutes))
        return 1.0 - spent if self.lr_decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * spent))

    def exclude(self, seconds: float) -> None:
        """Do not count `seconds` just spent on something other than training (an evaluation)."""
        self.spent_seconds -= seconds

    def state(self) -> dict:
        return {
            "args": {
                "max_minutes": self.max_minutes,
                "eval_every_minutes": self.eval_every_minutes,
                "lr_decay": self.lr_decay,
            },
            "attributes": {"spent_seconds": self.elapsed_seconds},
        }

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        # The Trainer has loaded the checkpoint's state (if it resumes) before this event.
        saved = state.stateful_callbacks.get(type(self).__name__) or {}
        self.spent_seconds = float(saved.get("attributes", {}).get("spent_seconds", 0.0))
        if self.spent_seconds > 0:
            logger.info(
                f"Resuming with {self.spent_seconds / 60:.1f} of the {self.max_minutes:g} training minutes spent."
            )
        self.start_time = time.monotonic()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        elapsed = self.elapsed_seconds
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # One clock for all processes (the slowest's): they evaluate and stop at the same step, since an
            # evaluation or a stop on some processes only would leave the others waiting in a collective.
            shared = torch.tensor(elapsed, device=args.device)
            torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MAX)
            elapsed = shared.item()
        if self.eval_every_minutes is not None:
            due = int(elapsed // (60.0 * self.eval_every_minutes))
            if due > self.evaluations_asked:
                self.evaluations_asked = due
                control.should_evaluate = True
        over_budget = elapsed >= 60.0 * self.max_minutes
        if over_budget and not control.should_training_stop:
            logger.warning(
                f"Training stopped by the time budget of {self.max_minutes:g} minutes at step "
                f"{state.global_step} (epoch {state.epoch:.2f})."
            )
            self.stopped_training = True
            control.should_training_stop = True
            if args.save_strategy in (SaveStrategy.STEPS, SaveStrategy.EPOCH):
                # A checkpoint of the last step, so that a run stopped later (in its test evaluation) continues
                # from there instead of redoing the steps since the last scheduled save.
                control.should_save = True
        return control

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        self.spent_seconds = self.elapsed_seconds
        self.start_time = None


class ResumeError(ValueError):
    """A stopped run cannot be continued: its saved state does not fit this run, or a file of it is unreadable."""


class LearningCurveMixin:
    """
    For a [`~transformers.Trainer`] subclass whose `evaluate()` ranks a validation split: call
    [`~LearningCurveMixin.record_evaluation`] at the end of `evaluate()`. The evaluation's seconds are then not
    counted as training time by the [`TimeBudgetCallback`] among the callbacks, and every evaluation during training
    (`eval_on_start` included, at step 0) adds a point to `self.curve`: the training minutes spent (`None` without a
    budget), the step, the epoch and the metrics. With `save_strategy="best"` and `load_best_model_at_end`, the
    Trainer checkpoints each new best of these evaluations (the one at step 0 included) and ends with its weights;
    [`~LearningCurveMixin.tested_weights`] says which weights the model holds. A run resumed from a checkpoint
    trained at another learning rate than its arguments ask for raises [`ResumeError`] before training.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.curve: list[dict] = []

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        """
        The `TrainingArguments` schedule, or, when the [`TimeBudgetCallback`] has an `lr_decay`, a linear warm-up
        over the arguments' warm-up steps followed by the budget's decay over training minutes.
        """
        budget = self.time_budget
        if budget is None or budget.lr_decay is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        warmup_steps = self.args.get_warmup_steps(num_training_steps)

        def factor(step: int) -> float:
            warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
            return warmup * budget.learning_rate_factor()

        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, factor)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    @property
    def time_budget(self) -> TimeBudgetCallback | None:
        """The [`TimeBudgetCallback`] among the callbacks (the Trainer may have restored it from a checkpoint)."""
        return next((cb for cb in self.callback_handler.callbacks if isinstance(cb, TimeBudgetCallback)), None)

    def tested_weights(self) -> dict:
        """
        Which weights the model holds after `train()`, for a report: `{"weights": "last", "step": ...}`, or, when
        `load_best_model_at_end` restored the best evaluation's checkpoint (with `save_strategy="best"` this works
        for evaluations the [`TimeBudgetCallback`] asks for), `{"weights": "best validation", "step": ...,
        "training_minutes": ..., "metric": metric_for_best_model, "value": ...}`.
        """
        if not (self.args.load_best_model_at_end and self.state.best_model_checkpoint is not None):
            return tested_weights_record(self.state.global_step)
        step = self.state.best_global_step
        point = next((point for point in self.curve if point["step"] == step), {})
        return tested_weights_record(
            step, self.args.metric_for_best_model, self.state.best_metric, point.get("training_minutes")
        )

    def _evaluate(self, trial, ignore_keys_for_eval: list[str] | None, skip_scheduler: bool = False) -> dict:
        metrics = super()._evaluate(trial, ignore_keys_for_eval, skip_scheduler=skip_scheduler)
        # The Trainer weighs only the evaluations after a step for the best state; the untrained weights of
        # `eval_on_start` (a retriever or recommender that starts from a trained model) are a candidate too.
        if (
            self.is_in_train
            and self.state.global_step == 0
            and self.args.save_strategy == SaveStrategy.BEST
            and self._determine_best_metric(metrics=metrics, trial=trial)
        ):
            self._save_checkpoint(self.model, trial)
            # `_save_checkpoint` records a best checkpoint only for a best step above 0.
            self.state.best_model_checkpoint = os.path.join(self._get_output_dir(trial), f"{PREFIX_CHECKPOINT_DIR}-0")
        return metrics

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        # The resumed scheduler brings the checkpoint's learning rate with it: a run asked for another one would
        # silently train at the old rate while its report states the new one.
        super()._load_optimizer_and_scheduler(checkpoint)
        resumed_rates = getattr(self.lr_scheduler, "base_lrs", None)
        if checkpoint is None or not resumed_rates:
            return
        resumed = max(resumed_rates)
        if not math.isclose(resumed, self.args.learning_rate, rel_tol=1e-6):
            raise ResumeError(
                f"{checkpoint} was trained at learning rate {resumed:g}, and this run asks for "
                f"{self.args.learning_rate:g}: continue it with --learning_rate {resumed:g}, or start over in another "
                "--output_dir (or with --auto_resume False)."
            )

    def _issue_warnings_after_load(self, load_result) -> None:
        # A checkpoint leaves tied weights out (they share the tensor they are tied to, which it holds), but the
        # Trainer knows only `_keys_to_ignore_on_save` and would call them missing when it loads the best checkpoint.
        tied = getattr(self.model, "all_tied_weights_keys", None) or {}
        load_result.missing_keys[:] = [key for key in load_result.missing_keys if key not in tied]
        super()._issue_warnings_after_load(load_result)

    def record_evaluation(self, metrics: dict[str, float], seconds: float, metric_key_prefix: str) -> None:
        """
        Take an evaluation of `seconds` off the training clock and, when it ran during training on the validation
        split (`metric_key_prefix == "eval"`), add `metrics` to the curve.
        """
        budget = self.time_budget
        if budget is not None and budget.start_time is not None:
            budget.exclude(seconds)
        if self.is_in_train and metric_key_prefix == "eval":
            training_minutes = budget.elapsed_seconds / 60.0 if budget is not None else None
            self.curve.append(
                {"training_minutes": training_minutes, "step": self.state.global_step, "epoch": self.state.epoch}
                | metrics
            )


__all__ = ["LearningCurveMixin", "ResumeError", "TimeBudgetCallback"]
