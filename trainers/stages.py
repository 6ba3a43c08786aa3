"""The progressive stage plan of LMIndexer training: which parameters train, on which losses, how long, per level.

A plan is data: a list of [`IndexingStage`]s, serialisable to JSON, that [`LMIndexerTrainer`] runs in order. The
default plan follows the paper: for every level t, (a reconstructor warm-up at level 1,) continuous training,
k-means codebook initialisation, joint training with quantisation, and ID assignment; then a final re-assignment of
every level with the trained model, so that the stored IDs are the ones the saved model predicts.
"""

import json
import os
from dataclasses import asdict, dataclass, field

from modeling_lmindexer.modeling_lmindexer import LOSS_NAMES


STAGE_KINDS = ("train", "kmeans", "assign", "reassign")
PARAMETER_GROUPS = ("backbone", "codebook", "reconstructor")


@dataclass
class IndexingStage:
    """
    One stage of the progressive schedule.

    Args:
        name (`str`): Human-readable name, shown in logs and reports (e.g. `"level-2/joint"`).
        level (`int`): 0-based ID level the stage works on.
        kind (`str`): `"train"` (gradient steps), `"kmeans"` (initialise the level's codebook from k-means over the
            whole corpus), `"assign"` (freeze the level's code of every document) or `"reassign"` (after every level
            is assigned: assign levels `level`, `level + 1`, ... again, in order, with the model as it is now,
            refitting each level's prefix-group means).
        trainable (`list[str]`): Parameter groups that train: `"backbone"`, `"codebook"` (this level's) and
            `"reconstructor"`. Only for `"train"` stages.
        losses (`list[str]`): Losses of a `"train"` stage: `"reconstruction"`, `"contrastive"`, `"code_prediction"`.
        quantize (`bool`): Pass the level representation through the codebook (joint stage).
        num_epochs (`float`): Epochs over the corpus of a `"train"` stage.
        learning_rate (`float`, *optional*): Learning rate of the stage; defaults to the training arguments'.
        mask_ratio (`float`, *optional*): Reconstructor mask ratio; defaults to the config's value for the level.
    """

    name: str
    level: int
    kind: str = "train"
    trainable: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    quantize: bool = False
    num_epochs: float = 1.0
    learning_rate: float | None = None
    mask_ratio: float | None = None

    def __post_init__(self):
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"Stage '{self.name}': kind '{self.kind}' is not one of {list(STAGE_KINDS)}.")
        if self.level < 0:
            raise ValueError(f"Stage '{self.name}': level {self.level} must be >= 0.")
        unknown_groups = sorted(set(self.trainable) - set(PARAMETER_GROUPS))
        if unknown_groups:
            raise ValueError(
                f"Stage '{self.name}': unknown trainable groups {unknown_groups}; use {PARAMETER_GROUPS}."
            )
        unknown_losses = sorted(set(self.losses) - set(LOSS_NAMES))
        if unknown_losses:
            raise ValueError(f"Stage '{self.name}': unknown losses {unknown_losses}; use {LOSS_NAMES}.")
        if self.kind == "train" and not (self.trainable and self.losses):
            raise ValueError(f"Stage '{self.name}': a train stage needs trainable groups and losses.")
        if self.kind == "train" and self.num_epochs <= 0:
            raise ValueError(f"Stage '{self.name}': num_epochs must be positive, got {self.num_epochs}.")
        if "code_prediction" in self.losses and self.level == 0:
            raise ValueError(f"Stage '{self.name}': the code prediction loss applies from the second level on.")

    def to_dict(self) -> dict:
        return asdict(self)


def default_stage_plan(
    num_levels: int,
    warmup_epochs: float = 1.0,
    continuous_epochs: float = 1.0,
    joint_epochs: float = 3.0,
    learning_rate: float | None = None,
    distillation_levels: int = 1,
    final_reassignment: bool = True,
) -> list[IndexingStage]:
    """
    The paper's schedule for `num_levels` levels.

    Args:
        num_levels (`int`): Learned ID levels.
        warmup_epochs (`float`): Reconstructor warm-up at level 1 (0 skips it).
        continuous_epochs (`float`): Contrastive + reconstruction training before each codebook exists (0 skips it).
        joint_epochs (`float`): Training with quantisation at each level.
        learning_rate (`float`, *optional*): Learning rate of every train stage (defaults to the training arguments).
        distillation_levels (`int`): In the continuous and joint stages of the first this many levels, the
            similarity distillation loss to the backbone's sentence embeddings before training replaces the
            contrastive loss (not in the paper). Measured on 3,000 Beauty items, 256 level-1 codes: the contrastive
            loss (instance discrimination) gave level-1 codes an AMI of 0.270 with the leaf category against 0.402 for
            k-means on the sentence embeddings; distillation instead, 0.431, at code-usage perplexity 194.
        final_reassignment (`bool`): End with a `"reassign"` stage of every level. The backbone keeps training
            after a level's codes are frozen, so without it the saved model no longer predicts all of its stored
            codes.

    From the second level on, the continuous and joint stages also train the decoder to predict the earlier codes
    (`"code_prediction"`, as the authors' code does), which keeps the earlier levels' frozen codes predictable while
    the backbone moves.
    """
    plan = []
    for level in range(num_levels):
        prefix = f"level-{level + 1}"
        spreading_loss = "distillation" if level < distillation_levels else "contrastive"
        code_prediction = ["code_prediction"] if level else []
        if level == 0 and warmup_epochs > 0:
            plan.append(
                IndexingStage(
                    f"{prefix}/reconstructor-warmup",
                    level,
                    trainable=["reconstructor"],
                    losses=["reconstruction"],
                    num_epochs=warmup_epochs,
                    learning_rate=learning_rate,
                    mask_ratio=0.0,  # the paper's warm-up hides no token from the reconstructor
                )
            )
        if continuous_epochs > 0:
            plan.append(
                IndexingStage(
                    f"{prefix}/continuous",
                    level,
                    trainable=["backbone", "reconstructor"],
                    losses=["reconstruction", spreading_loss, *code_prediction],
                    num_epochs=continuous_epochs,
                    learning_rate=learning_rate,
                )
            )
        plan.append(IndexingStage(f"{prefix}/kmeans-init", level, kind="kmeans"))
        plan.append(
            IndexingStage(
                f"{prefix}/joint",
                level,
                trainable=["backbone", "codebook", "reconstructor"],
                losses=["reconstruction", spreading_loss, *code_prediction],
                quantize=True,
                num_epochs=joint_epochs,
                learning_rate=learning_rate,
            )
        )
        plan.append(IndexingStage(f"{prefix}/assign", level, kind="assign"))
    if final_reassignment:
        plan.append(IndexingStage("final/reassign", 0, kind="reassign"))
    return plan


def validate_stage_plan(plan: list[IndexingStage], num_levels: int) -> None:
    """
    Check that a plan learns levels in order: each level's codebook is initialised before its quantised training,
    each level is assigned exactly once, after the levels before it, and re-assignments come after all of them.
    """
    if not plan:
        raise ValueError("The stage plan is empty.")
    assigned = 0
    initialised = set()
    for stage in plan:
        if stage.level >= num_levels:
            raise ValueError(f"Stage '{stage.name}': level {stage.level} but the model has {num_levels} levels.")
        if stage.kind == "reassign":
            if assigned != num_levels:
                raise ValueError(
                    f"Stage '{stage.name}' re-assigns codes while level {assigned + 1} is still to learn; re-assign "
                    "after every level is assigned."
                )
            continue
        if stage.level != assigned:
            raise ValueError(
                f"Stage '{stage.name}' works on level {stage.level + 1} while level {assigned + 1} is the next to "
                "learn; levels must be learned in order."
            )
        if stage.kind == "kmeans":
            initialised.add(stage.level)
        if stage.quantize and stage.level not in initialised:
            raise ValueError(
                f"Stage '{stage.name}' quantises before a kmeans stage initialised level {stage.level + 1}."
            )
        if stage.kind == "assign":
            if stage.level not in initialised:
                raise ValueError(f"Stage '{stage.name}' assigns codes before level {stage.level + 1} was initialised.")
            assigned += 1
    if assigned != num_levels:
        raise ValueError(f"The stage plan assigns {assigned} levels but the model has {num_levels}.")


def load_stage_plan(path: str | os.PathLike) -> list[IndexingStage]:
    """Read a plan from a JSON list of stage objects (the fields of [`IndexingStage`])."""
    with open(path, encoding="utf-8") as plan_file:
        try:
            entries = json.load(plan_file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error}).") from error
    if not isinstance(entries, list):
        raise ValueError(f"{path}: a stage plan is a JSON list of stages.")
    plan = []
    for position, entry in enumerate(entries):
        try:
            plan.append(IndexingStage(**entry))
        except TypeError as error:
            raise ValueError(f"{path}: stage {position}: {error}.") from error
    return plan


__all__ = ["IndexingStage", "default_stage_plan", "load_stage_plan", "validate_stage_plan"]
