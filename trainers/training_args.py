"""
Training arguments: the progressive indexer's (the Trainer's, with the paper's defaults and the stage plan), and how
the generative models take over the Trainer's label smoothing.
"""

from dataclasses import dataclass, field

from transformers import PreTrainedConfig, Trainer, TrainingArguments

from modeling_lmindexer.id_tokens import check_share

from .stages import IndexingStage, default_stage_plan, load_stage_plan


@dataclass
class LMIndexerTrainingArguments(TrainingArguments):
    """
    [`TrainingArguments`] for [`LMIndexerTrainer`]. `num_train_epochs` is ignored: each stage has its own epochs.

    Args:
        backbone_learning_rate (`float`, *optional*, defaults to 1e-4): Learning rate of the pretrained backbone, whose
            weights a rate of 1e-3 would wash out; `None` uses `learning_rate`.
        warmup_epochs (`float`, *optional*, defaults to 0.5): Reconstructor warm-up at level 1 (0 skips it).
        continuous_epochs (`float`, *optional*, defaults to 0.5): Training before each level's codebook exists.
        joint_epochs (`float`, *optional*, defaults to 1.0): Training with quantisation at each level.
        distillation_levels (`int`, *optional*, defaults to 1): Levels (from the first) whose continuous and joint
            stages train with the similarity distillation loss to the backbone's sentence embeddings before training
            instead of the contrastive loss (0: the paper's contrastive loss at every level).
        final_reassignment (`bool`, *optional*, defaults to `True`): End the default plan by assigning every level
            again with the trained model, so that the saved model predicts the IDs it stores.
        stage_plan_file (`str`, *optional*): JSON list of stages replacing the default plan (see [`IndexingStage`]).
        keep_stage_checkpoints (`bool`, *optional*, defaults to `False`): Keep every stage's `checkpoint-*` folders
            and the resume state after the run (by default a stage's checkpoints go once it is saved, the rest after
            the final model is saved).

    The default epochs keep the default MovieLens-1M job under 30 minutes on 2 CPU cores; the paper trains 30 epochs
    per stage on GPUs.
    """

    learning_rate: float = field(
        default=1e-3, metadata={"help": "Learning rate of the codebooks and the reconstructor (paper: 1e-3)."}
    )
    backbone_learning_rate: float | None = field(
        default=1e-4,
        metadata={
            "help": "Learning rate of the pretrained backbone (None: learning_rate). A stage's rate scales both."
        },
    )
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Training batch size per device."})
    per_device_eval_batch_size: int = field(default=128, metadata={"help": "Corpus encoding batch size per device."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every N optimizer steps of a stage."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept per stage."})
    ddp_find_unused_parameters: bool | None = field(
        default=True,
        metadata={"help": "Stages leave parts of the model unused (e.g. the backbone's pooler); DDP must allow it."},
    )
    warmup_epochs: float = field(default=0.5, metadata={"help": "Reconstructor warm-up epochs at level 1."})
    continuous_epochs: float = field(default=0.5, metadata={"help": "Epochs before each level's codebook exists."})
    joint_epochs: float = field(default=1.0, metadata={"help": "Epochs of joint training with quantisation."})
    distillation_levels: int = field(
        default=1,
        metadata={
            "help": "First levels trained with similarity distillation instead of the contrastive loss (0: none)."
        },
    )
    final_reassignment: bool = field(
        default=True,
        metadata={"help": "End by assigning every level again with the trained model (stored IDs = predicted IDs)."},
    )
    stage_plan_file: str | None = field(default=None, metadata={"help": "JSON stage plan replacing the default."})
    keep_stage_checkpoints: bool = field(
        default=False,
        metadata={"help": "Keep every stage's checkpoint-* folders and the resume state after the run."},
    )

    def stage_plan(self, num_levels: int) -> list[IndexingStage]:
        """The plan from `stage_plan_file`, or the default plan with these epochs."""
        if self.stage_plan_file is not None:
            return load_stage_plan(self.stage_plan_file)
        return default_stage_plan(
            num_levels,
            self.warmup_epochs,
            self.continuous_epochs,
            self.joint_epochs,
            distillation_levels=self.distillation_levels,
            final_reassignment=self.final_reassignment,
        )


def move_label_smoothing_to_model(trainer: Trainer, config: PreTrainedConfig) -> None:
    """
    Let the model's own loss smooth the labels by `trainer.args.label_smoothing_factor` (`config.label_smoothing`,
    saved with the model, so the evaluation loss is smoothed too) and turn the `Trainer`'s label smoother off: that
    one spreads probability over the whole vocabulary, so with an ID-only head, which scores `-inf` the tokens a
    position cannot produce, the loss would be infinite.

    Raises:
        `ValueError`: For a factor outside `[0, 1)` (setting the config's field does not run its checks).
    """
    check_share("label_smoothing_factor", trainer.args.label_smoothing_factor)
    config.label_smoothing = trainer.args.label_smoothing_factor
    trainer.label_smoother = None


__all__ = ["LMIndexerTrainingArguments", "move_label_smoothing_to_model"]
