"""Trainers of the lmindexer models: the progressive semantic-ID trainer and its stage plan."""

from .indexer_trainer import LMIndexerTrainer, check_corpus
from .report import IndexingReport, StageRecord
from .stages import IndexingStage, default_stage_plan, load_stage_plan, validate_stage_plan
from .training_args import LMIndexerTrainingArguments


__all__ = [
    "IndexingReport",
    "IndexingStage",
    "LMIndexerTrainer",
    "LMIndexerTrainingArguments",
    "StageRecord",
    "check_corpus",
    "default_stage_plan",
    "load_stage_plan",
    "validate_stage_plan",
]
