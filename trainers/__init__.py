"""Trainers of the lmindexer models: the progressive semantic-ID trainer and its stage plan."""

from .indexer_trainer import LMIndexerTrainer
from .report import IndexingReport, StageRecord
from .stages import IndexingStage, default_stage_plan, load_stage_plan, validate_stage_plan


__all__ = [
    "IndexingReport",
    "IndexingStage",
    "LMIndexerTrainer",
    "StageRecord",
    "default_stage_plan",
    "load_stage_plan",
    "validate_stage_plan",
]
