"""LMIndexerTrainer: runs the whole progressive schedule of semantic-ID learning from one `train()` call."""

import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from datasets import Dataset
from peft import PeftModel
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch.utils.data import Sampler
from transformers import PreTrainedTokenizerBase, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput, get_last_checkpoint
from transformers.utils import logging

from modeling_lmindexer import LMIndexerForSemanticID, PrefixGroupMeans, SemanticIDs, validate_corpus
from modeling_lmindexer.collaborative import blend_embeddings
from modeling_lmindexer.data.collator import LMIndexerDataCollator
from modeling_lmindexer.data.sampler import PrefixGroupedSampler
from modeling_lmindexer.hub_utils import PREFIX_GROUP_MEANS_NAME
from modeling_lmindexer.modeling_lmindexer import in_document_order
from modeling_lmindexer.semantic_ids import code_usage_perplexity

from .callbacks import ResumeError
from .lora import is_lora_parameter
from .report import StageRecord, directory_size_mb, peak_memory_mb, prefix_collision_rate
from .stages import IndexingStage, default_stage_plan, validate_stage_plan
from .training_args import LMIndexerTrainingArguments


logger = logging.get_logger(__name__)

PROGRESS_FILE = "indexer_progress.json"
CODES_FILE = "indexer_codes.npy"
# The weights, codes and prefix-group means after stage k are saved in `indexer_after_stage-<k>`, a new folder per
# stage, so that the progress file always names a complete folder, whenever a run is killed.
STAGE_STATE_PREFIX = "indexer_after_stage-"
DISTILLATION_TARGETS_FILE = "distillation_targets.npy"
STAGE_WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_STAGE_FILE = "indexer_stage.json"


def check_corpus(corpus: Dataset, codebook_sizes: list[int]) -> None:
    """
    Refuse, before any training, a corpus the indexer cannot learn IDs for: missing `doc_id`/`text` columns,
    duplicate ids, empty or non-string texts, or fewer documents than the largest codebook has codes.
    """
    missing_columns = {"doc_id", "text"} - set(corpus.column_names)
    if missing_columns:
        raise ValueError(f"The corpus lacks the column(s) {sorted(missing_columns)}; it needs doc_id and text.")
    validate_corpus([str(doc_id) for doc_id in corpus["doc_id"]], list(corpus["text"]))
    largest_codebook = max(codebook_sizes)
    if len(corpus) < largest_codebook:
        raise ValueError(
            f"The corpus has {len(corpus)} documents but a codebook has {largest_codebook} codes; k-means needs at "
            "least as many documents as codes. Use smaller --codebook_sizes or more documents."
        )


class LossMeans:
    """
    Running means of named loss values. Values may be tensors on the model's device: they are summed there and read
    only by `means()`, so a training step does not wait for the accelerator to hand back every loss.
    """

    def __init__(self):
        self.sums: dict[str, float | torch.Tensor] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, name: str, value: float | torch.Tensor) -> None:
        self.sums[name] += value
        self.counts[name] += 1

    def means(self) -> dict[str, float]:
        return {name: float(total) / self.counts[name] for name, total in self.sums.items()}


class CollatorEpochCallback(TrainerCallback):
    """Tells the collator the current epoch, which seeds its per-document draws (noise, hard negatives)."""

    def __init__(self, collator: LMIndexerDataCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)


class LMIndexerTrainer(Trainer):
    """
    A [`Trainer`] that learns semantic IDs level by level, following a stage plan (see [`IndexingStage`]).

    `train()` runs every stage in order: train stages call [`Trainer.train`] with the stage's trainable parameters,
    losses, epochs and learning rate (one progress bar and one `checkpoint-*` folder series per stage, under
    `output_dir/stage-XX-name/`); k-means stages initialise the level's codebook from faiss k-means over the whole
    corpus (representations gathered from all processes); assign stages freeze the level's code of every document. From
    the second level on, training batches are drawn by a [`PrefixGroupedSampler`], so that documents sharing their
    earlier codes are each other's in-batch hard negatives. At the end, documents that share a full ID get an extra
    collision code, and the [`SemanticIDs`] are stored in the model.

    After each stage, the model, the codes so far and the stage index are written to `output_dir`, and every
    `save_steps` checkpoint also records the stage and the codes, so `train(resume_from_checkpoint=True)` continues
    where a killed run stopped and ends with the same IDs as an uninterrupted run with the same seed.

    Args:
        model ([`LMIndexerForSemanticID`]): The indexer to train.
        args ([`TrainingArguments`]): `learning_rate`, batch sizes, `save_steps`, `logging_steps`, `report_to`, `seed`
            apply to every train stage; `num_train_epochs` is taken from each stage instead, and
            `remove_unused_columns` is set to `False` (the collator reads the document index and text). The
            training set carries each document's token count in `length_column_name`, so
            `train_sampling_strategy="group_by_length"` batches documents of similar length (less padding).
            [`LMIndexerTrainingArguments`] adds the stage epochs and a backbone learning rate.
        corpus (`datasets.Dataset`): Documents with columns `doc_id` and `text`.
        processing_class ([`PreTrainedTokenizerBase`]): The backbone's tokenizer.
        stage_plan (`list[IndexingStage]`, *optional*): Defaults to [`default_stage_plan`] for the model's levels.
        keep_stage_checkpoints (`bool`, *optional*): Keep every stage's `checkpoint-*` folders. By default (the
            training arguments' `keep_stage_checkpoints`, else `False`) a stage keeps only its last checkpoint
            (`save_total_limit = 1` unless set) and its folder is removed once the stage is finished and saved, since
            a resumed run starts from that save; [`remove_resume_state`] removes the rest after the final model is
            saved.
        collaborative_embeddings (`np.ndarray` of shape `(num_documents, collaborative_size)`, *optional*): Item
            co-occurrence embeddings in corpus order (see [`~collaborative.cooccurrence_embeddings`]), blended into
            the distillation targets with the model config's `collaborative_share`; needed when that share is
            positive.
    """

    def __init__(
        self,
        model: LMIndexerForSemanticID,
        args: TrainingArguments,
        corpus: Dataset,
        processing_class: PreTrainedTokenizerBase,
        stage_plan: list[IndexingStage] | None = None,
        keep_stage_checkpoints: bool | None = None,
        collaborative_embeddings: np.ndarray | None = None,
        **kwargs,
    ):
        check_corpus(corpus, model.config.codebook_sizes)
        share = model.config.collaborative_share
        if share > 0 and collaborative_embeddings is None:
            raise ValueError(
                f"collaborative_share = {share} needs collaborative_embeddings: one row per corpus document."
            )
        if collaborative_embeddings is not None and len(collaborative_embeddings) != len(corpus):
            raise ValueError(
                f"collaborative_embeddings has {len(collaborative_embeddings)} rows, the corpus {len(corpus)} "
                "documents: one row per document, in corpus order."
            )
        self.collaborative_embeddings = collaborative_embeddings
        self.doc_ids = [str(doc_id) for doc_id in corpus["doc_id"]]
        texts = list(corpus["text"])
        if stage_plan is None:
            stage_plan = (
                args.stage_plan(model.config.num_levels)
                if isinstance(args, LMIndexerTrainingArguments)
                else default_stage_plan(model.config.num_levels)
            )
        self.stage_plan = stage_plan
        validate_stage_plan(self.stage_plan, model.config.num_levels)
        args.remove_unused_columns = False
        collator = LMIndexerDataCollator(
            processing_class,
            texts,
            max_length=model.config.max_document_length,
            seed=args.seed,
        )
        token_counts = [
            len(input_ids)
            for input_ids in processing_class(texts, max_length=collator.max_length, truncation=True)["input_ids"]
        ]
        train_dataset = Dataset.from_dict(
            {"doc_index": list(range(len(texts))), "text": texts, args.length_column_name: token_counts}
        )
        super().__init__(
            model=model,
            args=args,
            train_dataset=train_dataset,
            data_collator=collator,
            processing_class=processing_class,
            **kwargs,
        )
        self.add_callback(CollatorEpochCallback(collator))
        self.root_output_dir = args.output_dir
        self.keep_stage_checkpoints = (
            getattr(args, "keep_stage_checkpoints", False)
            if keep_stage_checkpoints is None
            else keep_stage_checkpoints
        )
        if not self.keep_stage_checkpoints and args.save_total_limit is None:
            # Resume reads only a stage's last checkpoint (weights and optimizer states, about 3x the model).
            args.save_total_limit = 1
        self.base_learning_rate = args.learning_rate
        self.codes = np.zeros((len(texts), 0), dtype=np.int64)
        self.distillation_targets: np.ndarray | None = None
        self.stage_records: list[StageRecord] = []
        self.current_stage: IndexingStage | None = None
        self.current_stage_index = 0
        # Wall time of the current stage: seconds spent before a resumed checkpoint, and this run's start.
        self._stage_seconds_before_resume = 0.0
        self._stage_start_time = time.perf_counter()
        self._losses_since_log = LossMeans()
        self._stage_losses = LossMeans()

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs) -> TrainOutput:
        """
        Run the stage plan; with `resume_from_checkpoint` (`True` or the run's `output_dir`), continue a stopped run.

        Returns:
            [`TrainOutput`] whose metrics hold the collision rates and the total wall time; the IDs are in
            `self.model.semantic_ids`.
        """
        start_time = time.perf_counter()
        first_stage, stage_checkpoint = 0, None
        if resume_from_checkpoint:
            root = self.root_output_dir if resume_from_checkpoint is True else str(resume_from_checkpoint)
            first_stage, stage_checkpoint = self._restore_progress(root)
        if any("distillation" in stage.losses for stage in self.stage_plan[first_stage:]):
            self._prepare_distillation_targets(first_stage)
        for index in range(first_stage, len(self.stage_plan)):
            self._run_stage(index, self.stage_plan[index], stage_checkpoint if index == first_stage else None)
            self._save_progress(index + 1)
        self.args.output_dir = self.root_output_dir
        semantic_ids = SemanticIDs.from_learned_codes(self.doc_ids, self.codes, self.model.config.codebook_sizes)
        self.model.semantic_ids = semantic_ids
        metrics = {
            "collision_rate_before_resolution": semantic_ids.collision_rate_before_resolution,
            "collision_rate_after_resolution": prefix_collision_rate(semantic_ids.codes),
            "indexing_wall_time_seconds": time.perf_counter() - start_time,
        }
        logger.info(f"Assigned {len(semantic_ids)} unique semantic IDs: {json.dumps(metrics)}")
        return TrainOutput(global_step=self.state.global_step, training_loss=0.0, metrics=metrics)

    def _prepare_distillation_targets(self, first_stage: int) -> None:
        """
        The backbone's sentence embeddings of every document before training, the targets of the distillation loss:
        computed at the start of a run and saved in `output_dir`, read back by a resumed run.
        """
        targets_path = os.path.join(self.root_output_dir, DISTILLATION_TARGETS_FILE)
        if os.path.isfile(targets_path):
            self.distillation_targets = _read_state_file(targets_path, np.load)
            if len(self.distillation_targets) != len(self.doc_ids):
                raise ResumeError(
                    f"{targets_path} holds {len(self.distillation_targets)} documents, this corpus has "
                    f"{len(self.doc_ids)}; resume with the same corpus or remove the file."
                )
            return
        if first_stage > 0:
            logger.warning(
                f"{targets_path} is missing in a resumed run: the distillation targets are taken from the partly "
                "trained backbone."
            )
        sentence_targets = self._encode_documents(
            lambda input_ids, attention_mask, rows: self.model.mean_pooled_encoder_states(input_ids, attention_mask),
            description="Distillation targets",
        )
        self.distillation_targets = sentence_targets.numpy()
        if self.model.config.collaborative_share > 0:
            self.distillation_targets = blend_embeddings(
                torch.nn.functional.normalize(sentence_targets.float(), dim=-1).numpy(),
                self.collaborative_embeddings,
                self.model.config.collaborative_share,
            )
        if self.is_world_process_zero():
            os.makedirs(self.root_output_dir, exist_ok=True)
            with open(targets_path + ".tmp", "wb") as targets_file:
                np.save(targets_file, self.distillation_targets)
            os.replace(targets_path + ".tmp", targets_path)

    def _stage_output_dir(self, index: int, stage: IndexingStage) -> str:
        return os.path.join(self.root_output_dir, f"stage-{index:02d}-{stage.name.replace('/', '-')}")

    def _run_stage(self, index: int, stage: IndexingStage, checkpoint: str | None) -> None:
        self.current_stage, self.current_stage_index = stage, index
        logger.info(f"Stage {index + 1}/{len(self.stage_plan)} '{stage.name}' ({stage.kind}, level {stage.level + 1})")
        set_seed(self.args.seed + index)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._stage_start_time = time.perf_counter()
        self._stage_seconds_before_resume = self._checkpoint_stage_seconds(checkpoint)
        self._stage_losses = LossMeans()
        record = StageRecord(
            name=stage.name, level=stage.level, kind=stage.kind, wall_time_seconds=0.0, peak_memory_mb=0.0
        )
        if stage.kind == "train":
            self._train_stage(index, stage, checkpoint)
            record.losses = self._stage_losses.means()
        elif stage.kind == "kmeans":
            self.model.initialize_codebook(
                stage.level,
                self.encode_corpus(stage.level),
                self._prefix_codes(stage.level),
                seed=self.args.seed + stage.level,
            )
        elif stage.kind == "assign":
            level_codes = self.assign_level_codes(stage.level)
            self.codes = np.concatenate([self.codes[:, : stage.level], level_codes[:, None]], axis=1)
            record.codes_used = int(len(np.unique(level_codes)))
            record.code_usage_perplexity = code_usage_perplexity(level_codes)
            record.collision_rate = prefix_collision_rate(self.codes)
        else:
            record.changed_code_fraction = self.reassign_codes(stage.level)
            record.collision_rate = prefix_collision_rate(self.codes)
        record.wall_time_seconds = self._stage_seconds()
        record.peak_memory_mb = peak_memory_mb()
        self.stage_records.append(record)
        summary = {key: value for key, value in record.to_dict().items() if value not in (None, {})}
        logger.info(f"Finished stage '{stage.name}': {json.dumps(summary, default=float)}")

    def _stage_seconds(self) -> float:
        """Wall time of the current stage so far, including the time before the checkpoint it resumed from."""
        return self._stage_seconds_before_resume + time.perf_counter() - self._stage_start_time

    @staticmethod
    def _checkpoint_stage_seconds(checkpoint: str | None) -> float:
        """The stage wall time recorded in a checkpoint (0 without a checkpoint)."""
        if checkpoint is None:
            return 0.0
        stage_path = os.path.join(checkpoint, CHECKPOINT_STAGE_FILE)
        if not os.path.isfile(stage_path):
            return 0.0
        with open(stage_path, encoding="utf-8") as stage_file:
            return float(json.load(stage_file).get("stage_wall_time_seconds", 0.0))

    def _set_trainable(self, stage: IndexingStage) -> None:
        model = self.model
        model.requires_grad_(False)
        if "backbone" in stage.trainable:
            if isinstance(model.backbone, PeftModel):
                for name, parameter in model.backbone.named_parameters():
                    parameter.requires_grad_(is_lora_parameter(name))
            else:
                model.backbone.requires_grad_(True)
        if "codebook" in stage.trainable:
            model.codebooks[stage.level].requires_grad_(True)
        if "reconstructor" in stage.trainable:
            model.reconstructor.requires_grad_(True)

    def _train_stage(self, index: int, stage: IndexingStage, checkpoint: str | None) -> None:
        self._set_trainable(stage)
        self.data_collator.set_level(stage.level, self.codes)
        self.data_collator.distillation_targets = self.distillation_targets if "distillation" in stage.losses else None
        self.args.output_dir = self._stage_output_dir(index, stage)
        self.args.num_train_epochs = stage.num_epochs
        self.args.learning_rate = self.base_learning_rate if stage.learning_rate is None else stage.learning_rate
        self.optimizer, self.lr_scheduler = None, None
        self.model_wrapped = self.model
        self.model.train()
        super().train(resume_from_checkpoint=checkpoint)

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler | None:
        """
        From the second level on (with `config.num_hard_negatives > 0`), a [`PrefixGroupedSampler`]: batches of small
        groups of documents sharing their earlier codes, the hard negatives of each other, grouped by length with
        `train_sampling_strategy="group_by_length"`. Otherwise the Trainer's sampler for `train_sampling_strategy`,
        except that `group_by_length` forms its mega-batches from the global batch (transformers uses the
        per-device batch), so one process and several learn the same IDs at equal global batch.
        """
        stage, num_hard_negatives = self.current_stage, self.model.config.num_hard_negatives
        by_length = self.args.train_sampling_strategy == "group_by_length"
        lengths = self.train_dataset[self.args.length_column_name] if by_length else None
        # Mega-batches of the global batch, so that the order does not depend on the number of processes.
        global_batch_size = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        if stage is not None and stage.level > 0 and num_hard_negatives > 0:
            return PrefixGroupedSampler(
                self.codes[:, : stage.level],
                num_hard_negatives + 1,
                seed=self.args.seed,
                lengths=None if lengths is None else np.asarray(lengths),
                mega_batch_size=50 * global_batch_size,
            )
        if by_length:
            return LengthGroupedSampler(global_batch_size, lengths=lengths)
        return super()._get_train_sampler(train_dataset)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, with the backbone's parameters in groups of their own learning rate."""
        optimizer = super().create_optimizer(model)
        backbone_learning_rate = getattr(self.args, "backbone_learning_rate", None)
        if backbone_learning_rate is None:
            return optimizer
        scale = backbone_learning_rate / self.base_learning_rate
        backbone_parameters = {id(parameter) for parameter in self.model.backbone.parameters()}
        groups = list(optimizer.param_groups)
        optimizer.param_groups.clear()
        for group in groups:
            for in_backbone in (True, False):
                parameters = [p for p in group["params"] if (id(p) in backbone_parameters) == in_backbone]
                if parameters:
                    learning_rate = group["lr"] * scale if in_backbone else group["lr"]
                    optimizer.add_param_group({**group, "params": parameters, "lr": learning_rate})
        return optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        stage = self.current_stage
        outputs = model(
            **inputs, level=stage.level, quantize=stage.quantize, losses=stage.losses, mask_ratio=stage.mask_ratio
        )
        for name in stage.losses:
            value = outputs[f"{name}_loss"].detach()
            self._losses_since_log.add(name, value)
            self._stage_losses.add(name, value)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add each loss's mean since the last log, and the stage's level, to the Trainer's logs."""
        if "loss" in logs and self.current_stage is not None:
            logs.update({f"{name}_loss": round(mean, 4) for name, mean in self._losses_since_log.means().items()})
            logs["id_level"] = self.current_stage.level + 1
            self._losses_since_log = LossMeans()
        super().log(logs, start_time)

    def encode_corpus(self, level: int) -> torch.Tensor:
        """Level representations `(num_documents, hidden_size)` of the whole corpus given the frozen earlier codes."""
        return self._encode_documents(
            self.model.level_encoder(level, self._prefix_codes(level)), description=f"Encoding level {level + 1}"
        )

    def _encode_documents(
        self,
        encode: Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor],
        description: str,
    ) -> torch.Tensor:
        """
        [`~LMIndexerForSemanticID.encode_batches`] of the whole corpus with `encode`, on every process: stacked
        `(num_documents, width)` in `float32` on the CPU, in corpus order.

        The model's batches of similar token count are dealt round-robin to the processes and gathered, so every
        process gets the same tensor, equal to what one process computes.
        """
        texts = self.data_collator.texts
        batches = self.model.length_sorted_batches(
            texts,
            self.processing_class,
            self.args.per_device_eval_batch_size,
            lengths=self.train_dataset[self.args.length_column_name],
        )
        local_batches = batches[self.accelerator.process_index :: self.accelerator.num_processes]
        outputs = self.model.encode_batches(
            texts,
            self.processing_class,
            local_batches,
            encode,
            description=description,
            show_progress_bar=self.is_world_process_zero(),
        )
        encoded = [(rows, output.float().cpu()) for rows, output in zip(local_batches, outputs)]
        gathered = gather_object(encoded) if self.accelerator.num_processes > 1 else encoded
        return in_document_order([rows for rows, _ in gathered], [output for _, output in gathered])

    def _prefix_codes(self, level: int) -> torch.Tensor | None:
        return torch.tensor(self.codes[:, :level], device=self.model.device) if level else None

    @torch.no_grad()
    def assign_level_codes(self, level: int) -> np.ndarray:
        """
        Code `(num_documents,)` of every document at `level`, given its frozen earlier codes; re-fits the level's
        prefix-group means on the corpus.
        """
        representations = self.encode_corpus(level).to(self.model.device)
        codes = self.model.corpus_level_codes(level, representations, self._prefix_codes(level))
        return codes.cpu().numpy().astype(np.int64)

    def reassign_codes(self, first_level: int) -> list[float]:
        """
        Assign the codes of levels `first_level` and after again, in order, each level given the new codes of the
        levels before it, with the model as it is now (its prefix-group means refitted): afterwards the model's
        [`~LMIndexerForSemanticID.predict_codes`] gives every document its codes.

        Returns:
            `list[float]`: For each of these levels, the fraction of documents whose code changed.
        """
        previous_codes = self.codes.copy()
        for level in range(first_level, self.codes.shape[1]):
            self.codes[:, level] = self.assign_level_codes(level)
        changed = self.codes[:, first_level:] != previous_codes[:, first_level:]
        return [float(fraction) for fraction in changed.mean(axis=0)]

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if not self.is_world_process_zero():
            return
        checkpoint_dir = get_last_checkpoint(self.args.output_dir)
        np.save(os.path.join(checkpoint_dir, CODES_FILE), self.codes)
        # Written last and atomically: a checkpoint without it was cut short (see `_last_complete_checkpoint`).
        stage_path = os.path.join(checkpoint_dir, CHECKPOINT_STAGE_FILE)
        with open(stage_path + ".tmp", "w", encoding="utf-8") as stage_file:
            stage_state = {
                "stage_index": self.current_stage_index,
                "stage": self.current_stage.to_dict(),
                "stage_wall_time_seconds": self._stage_seconds(),
            }
            json.dump(stage_state, stage_file, indent=2)
        os.replace(stage_path + ".tmp", stage_path)

    def _save_progress(self, completed_stages: int) -> None:
        """
        Write the weights (safetensors, LoRA adapters included), the codes and the plan position after a finished
        stage (main process only).
        """
        self.accelerator.wait_for_everyone()
        if not self.is_world_process_zero():
            return
        os.makedirs(self.root_output_dir, exist_ok=True)
        # Until the progress file names it, the new folder is never read: a kill anywhere leaves a resumable run.
        state_dir = _stage_state_dir(self.root_output_dir, completed_stages)
        staging_dir = state_dir + ".tmp"
        for folder in (staging_dir, state_dir):
            shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(staging_dir)
        save_model(self.model, os.path.join(staging_dir, STAGE_WEIGHTS_FILE))
        np.save(os.path.join(staging_dir, CODES_FILE), self.codes)
        save_file(self.model.prefix_group_means.to_tensors(), os.path.join(staging_dir, PREFIX_GROUP_MEANS_NAME))
        os.replace(staging_dir, state_dir)
        finished_stage_dir = self._stage_output_dir(completed_stages - 1, self.stage_plan[completed_stages - 1])
        self.stage_records[-1].output_dir_mb = directory_size_mb(self.root_output_dir)
        progress = {
            "completed_stages": completed_stages,
            "num_documents": len(self.doc_ids),
            "stage_plan": [stage.to_dict() for stage in self.stage_plan],
            "stage_records": [record.to_dict() for record in self.stage_records],
        }
        progress_path = os.path.join(self.root_output_dir, PROGRESS_FILE)
        with open(progress_path + ".tmp", "w", encoding="utf-8") as progress_file:
            json.dump(progress, progress_file, indent=2)
        os.replace(progress_path + ".tmp", progress_path)
        for folder in _stage_state_dirs(self.root_output_dir):
            if folder != state_dir:
                shutil.rmtree(folder, ignore_errors=True)
        if not self.keep_stage_checkpoints:
            # A resumed run starts after this save: the finished stage's checkpoints are never read again.
            shutil.rmtree(finished_stage_dir, ignore_errors=True)

    def remove_resume_state(self) -> None:
        """
        Remove what only a resumed run reads (stage folders and their checkpoints, the last stage's weights, the
        progress file, the distillation targets) from `output_dir`, keeping everything else, e.g. the final model
        saved there. Call it after saving the final model; a later run of the same command then starts over.
        """
        if not self.is_world_process_zero():
            return
        for index, stage in enumerate(self.stage_plan):
            shutil.rmtree(self._stage_output_dir(index, stage), ignore_errors=True)
        for folder in _stage_state_dirs(self.root_output_dir):
            shutil.rmtree(folder, ignore_errors=True)
        for name in (PROGRESS_FILE, DISTILLATION_TARGETS_FILE):
            path = os.path.join(self.root_output_dir, name)
            if os.path.isfile(path):
                os.remove(path)

    def _restore_progress(self, root: str) -> tuple[int, str | None]:
        """
        Load the state of a stopped run from `root`; returns the stage to start at and its last checkpoint.

        Raises:
            [`ResumeError`]: Naming the file, when the saved state is unreadable or does not fit this run.
        """
        progress_path = os.path.join(root, PROGRESS_FILE)
        if not os.path.isfile(progress_path):
            first_stage_dir = os.path.basename(self._stage_output_dir(0, self.stage_plan[0]))
            checkpoint = _last_complete_checkpoint(os.path.join(root, first_stage_dir))
            if checkpoint is None:
                # Starting afresh would write over the folder the user meant to continue (a mistyped path, a
                # checkpoint-N folder of one stage): nothing is trained until the right folder is given.
                raise ResumeError(
                    f"{root}: no stopped indexing run to continue (no {PROGRESS_FILE}, no checkpoint of the first "
                    f"stage in {first_stage_dir}); give the output_dir of the stopped run."
                )
            logger.info(f"No finished stage in {root}; continuing the first stage from {checkpoint}.")
            return 0, checkpoint
        progress = _read_state_file(progress_path, lambda path: json.loads(Path(path).read_text(encoding="utf-8")))
        if progress["stage_plan"] != [stage.to_dict() for stage in self.stage_plan]:
            raise ResumeError(f"{progress_path}: the stage plan differs from this run's; resume with the same plan.")
        if progress["num_documents"] != len(self.doc_ids):
            raise ResumeError(
                f"{progress_path}: the run indexed {progress['num_documents']} documents, this corpus has "
                f"{len(self.doc_ids)}."
            )
        first_stage = progress["completed_stages"]
        state_dir = _stage_state_dir(root, first_stage)
        _read_state_file(os.path.join(state_dir, STAGE_WEIGHTS_FILE), lambda path: load_model(self.model, path))
        self.codes = _read_state_file(os.path.join(state_dir, CODES_FILE), np.load)
        self.model.prefix_group_means = _read_state_file(
            os.path.join(state_dir, PREFIX_GROUP_MEANS_NAME),
            lambda path: PrefixGroupMeans.from_tensors(self.model.config.codebook_sizes, load_file(path), source=path),
        )
        self.stage_records = [StageRecord.from_dict(record) for record in progress["stage_records"]]
        checkpoint = None
        if first_stage < len(self.stage_plan):
            checkpoint = _last_complete_checkpoint(self._stage_output_dir(first_stage, self.stage_plan[first_stage]))
        logger.info(f"Resuming {root} at stage {first_stage + 1}/{len(self.stage_plan)} (checkpoint: {checkpoint}).")
        return first_stage, checkpoint


def _read_state_file(path: str, read: Callable[[str], object]) -> object:
    """`read(path)` for a file of a stopped run's state, any failure to read it being one [`ResumeError`]."""
    try:
        return read(path)
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        raise ResumeError(
            f"cannot continue the stopped run: {path} is missing, corrupt or truncated ({error}); remove its output "
            "folder, or start over with --auto_resume False."
        ) from None


def _stage_state_dir(root: str, completed_stages: int) -> str:
    """The folder of the weights, codes and prefix-group means saved after `completed_stages` stages."""
    return os.path.join(root, f"{STAGE_STATE_PREFIX}{completed_stages:02d}")


def _stage_state_dirs(root: str) -> list[str]:
    """Every stage-state folder under `root`, complete or being written."""
    if not os.path.isdir(root):
        return []
    return [os.path.join(root, name) for name in os.listdir(root) if name.startswith(STAGE_STATE_PREFIX)]


def _last_complete_checkpoint(stage_dir: str) -> str | None:
    """
    The latest `checkpoint-<step>` of `stage_dir` whose save finished (it holds the stage file, written last), or
    `None`. A later checkpoint that a stop cut short during its save is skipped: training redoes its steps and saves
    it again.
    """
    if not os.path.isdir(stage_dir):
        return None
    steps = sorted(
        int(name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-"))
        for name in os.listdir(stage_dir)
        if name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-").isdigit()
    )
    for step in reversed(steps):
        checkpoint = os.path.join(stage_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}")
        if os.path.isfile(os.path.join(checkpoint, CHECKPOINT_STAGE_FILE)):
            return checkpoint
        logger.warning(f"{checkpoint} was cut short during its save; resuming from the checkpoint before it.")
    return None


__all__ = ["LMIndexerTrainer", "check_corpus"]
