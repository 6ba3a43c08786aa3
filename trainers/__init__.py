"""
Trainers of the lmindexer models: the progressive semantic-ID trainer and its stage plan, the retriever trainer, the
recommender trainer.
"""

from .callbacks import LearningCurveMixin, ResumeError, TimeBudgetCallback
from .indexer_trainer import LMIndexerTrainer, check_corpus
from .recommender_trainer import (
    LMIndexerRecommenderTrainer,
    RecommendationCollator,
    recommendation_evaluation_dataset,
    recommendation_training_dataset,
)
from .report import IndexingReport, RetrievalReport, StageRecord
from .retriever_trainer import LMIndexerRetrieverTrainer, retrieval_evaluation_dataset, retrieval_training_dataset
from .stages import IndexingStage, default_stage_plan, load_stage_plan, validate_stage_plan
from .training_args import LMIndexerTrainingArguments


__all__ = [
    "IndexingReport",
    "IndexingStage",
    "LMIndexerRecommenderTrainer",
    "LMIndexerRetrieverTrainer",
    "LMIndexerTrainer",
    "LMIndexerTrainingArguments",
    "LearningCurveMixin",
    "RecommendationCollator",
    "ResumeError",
    "RetrievalReport",
    "StageRecord",
    "TimeBudgetCallback",
    "check_corpus",
    "default_stage_plan",
    "load_stage_plan",
    "recommendation_evaluation_dataset",
    "recommendation_training_dataset",
    "retrieval_evaluation_dataset",
    "retrieval_training_dataset",
    "validate_stage_plan",
]
