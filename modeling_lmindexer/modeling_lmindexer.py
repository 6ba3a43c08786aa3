"""LMIndexerForSemanticID: a seq2seq language model that learns hierarchical semantic IDs for documents."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, PreTrainedModel, PreTrainedTokenizerBase
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput, logging

from .backbones import mean_pool
from .codebook import LMIndexerCodebook, PrefixGroupMeans, kmeans_centroids
from .configuration_lmindexer import LMIndexerConfig
from .evaluation_mode import evaluation_mode
from .hub_utils import SemanticIDsHubMixin, render_model_card
from .output_head import float32_linear
from .reconstructor import LMIndexerReconstructor
from .semantic_ids import SemanticIDs, validate_corpus


logger = logging.get_logger(__name__)

LOSS_NAMES = ("reconstruction", "contrastive", "code_prediction", "distillation")
# Losses computed when `forward` is not told which: distillation needs targets and is asked for by name.
DEFAULT_LOSS_NAMES = ("reconstruction", "contrastive", "code_prediction")


@dataclass
class LMIndexerOutput(ModelOutput):
    """
    Output of [`LMIndexerForSemanticID.forward`] for one ID level.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Weighted sum of the requested losses.
        reconstruction_loss (`torch.FloatTensor` of shape `()`, *optional*):
            Cross-entropy of the reconstructor's predictions of the document tokens.
        contrastive_loss (`torch.FloatTensor` of shape `()`, *optional*):
            InfoNCE loss between two dropout views, with in-batch and prefix-sharing hard negatives.
        code_prediction_loss (`torch.FloatTensor` of shape `()`, *optional*):
            Cross-entropy of the decoder's predictions of the earlier levels' codes.
        distillation_loss (`torch.FloatTensor` of shape `()`, *optional*):
            KL divergence from the batch similarity distribution of the distillation targets to that of the level
            representations.
        codes (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            The code chosen at this level (only when quantising).
        code_scores (`torch.FloatTensor` of shape `(batch_size, codebook_size)`, *optional*):
            Dot products of the level representation with every code of this level (only when quantising).
        level_representation (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
            The decoder state `h_t` representing the document at this level.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    code_prediction_loss: torch.FloatTensor | None = None
    distillation_loss: torch.FloatTensor | None = None
    codes: torch.LongTensor | None = None
    code_scores: torch.FloatTensor | None = None
    level_representation: torch.FloatTensor | None = None


def in_document_order(batches: Sequence[np.ndarray], outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """
    The per-batch outputs of [`~LMIndexerForSemanticID.encode_batches`] as one tensor in document order.

    Args:
        batches (`Sequence[np.ndarray]`): The rows of every batch; together, every document once.
        outputs (`Sequence[torch.Tensor]`): The output `(len(rows), ...)` of every batch, in the order of `batches`.

    Returns:
        `torch.Tensor` of shape `(num_documents, ...)`: row `i` is document `i`'s output.
    """
    stacked = torch.cat(list(outputs))
    ordered = torch.empty_like(stacked)
    ordered[torch.from_numpy(np.concatenate(batches)).to(stacked.device)] = stacked
    return ordered


class LMIndexerPreTrainedModel(PreTrainedModel):
    config_class = LMIndexerConfig
    base_model_prefix = "lmindexer"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, LMIndexerCodebook):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class LMIndexerForSemanticID(SemanticIDsHubMixin, LMIndexerPreTrainedModel):
    """
    The semantic indexer: a seq2seq backbone whose decoder, fed `[start, c_1, ..., c_{t-1}]`, produces the level-t
    representation of a document; a codebook per level that turns it into the code `c_t`; and a shallow reconstructor
    that must rebuild the document from its ID (training only).

    The decoder reads earlier codes as their codebook vectors and predicts them with dot-product scores against the
    same codebooks, so the backbone's text vocabulary is never resized.

    Learned IDs are kept in `model.semantic_ids` (a [`SemanticIDs`]) and saved with the model.
    """

    def __init__(self, config: LMIndexerConfig):
        super().__init__(config)
        self.backbone = AutoModelForSeq2SeqLM.from_config(config.seq2seq_config)
        self.codebooks = nn.ModuleList(
            [
                LMIndexerCodebook(size, config.hidden_size, config.code_temperature, config.use_gumbel_noise)
                for size in config.codebook_sizes
            ]
        )
        self.reconstructor = LMIndexerReconstructor(config)
        self.semantic_ids: SemanticIDs | None = None
        self.prefix_group_means = PrefixGroupMeans(config.codebook_sizes)
        self.post_init()

    @classmethod
    def from_backbone(cls, backbone: str | PreTrainedModel, **config_kwargs) -> "LMIndexerForSemanticID":
        """
        Build an indexer around pretrained backbone weights; codebooks and reconstructor start untrained.

        Args:
            backbone (`str` or `PreTrainedModel`): An `AutoModelForSeq2SeqLM` instance, or its Hub id / folder.
                A Hub id that cannot be reached falls back to the offline all-MiniLM-L6-v2 BERT2BERT backbone.
            config_kwargs: Any [`LMIndexerConfig`] field, e.g. `codebook_sizes=[256, 256, 256]`.
        """
        if isinstance(backbone, str):
            from .backbones import load_backbone

            backbone, _ = load_backbone(backbone)
        config = LMIndexerConfig(
            seq2seq_config=backbone.config, backbone_name_or_path=str(backbone.name_or_path), **config_kwargs
        )
        model = cls(config)
        model.backbone = backbone
        return model

    def _decoder_start_embedding(self, batch_size: int) -> torch.Tensor:
        start_token_id = self.backbone.config.decoder_start_token_id
        if start_token_id is None:
            raise ValueError("The backbone config has no decoder_start_token_id; set it before indexing.")
        embeddings = self.backbone.get_decoder().get_input_embeddings()
        start_ids = torch.full((batch_size, 1), start_token_id, dtype=torch.long, device=self.device)
        return embeddings(start_ids)

    def _check_prefix_codes(self, level: int, prefix_codes: torch.Tensor | None, batch_size: int) -> None:
        if not 0 <= level < self.config.num_levels:
            raise ValueError(f"level = {level} is outside the {self.config.num_levels} ID levels (0-based).")
        if level == 0:
            return
        if prefix_codes is None or tuple(prefix_codes.shape) != (batch_size, level):
            shape = None if prefix_codes is None else tuple(prefix_codes.shape)
            raise ValueError(f"Level {level} needs prefix_codes of shape ({batch_size}, {level}), got {shape}.")

    def level_hidden_states(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        prefix_codes: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | None = None,
    ) -> tuple[torch.Tensor, BaseModelOutput]:
        """
        Decoder states for the levels up to `len(prefix_codes) + 1`.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): Document tokens (may be `None`
                when `encoder_outputs` is given).
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`)
            prefix_codes (`torch.LongTensor` of shape `(batch_size, level)`, *optional*): Codes of earlier levels.
            encoder_outputs (`BaseModelOutput`, *optional*): Cached encoder states of the same documents.

        Returns:
            The states `(batch_size, level + 1, hidden_size)`, position `j` representing the document at level `j`,
            and the encoder outputs for reuse.
        """
        batch_size = attention_mask.shape[0]
        decoder_inputs = [self._decoder_start_embedding(batch_size)]
        if prefix_codes is not None:
            for level in range(prefix_codes.shape[1]):
                decoder_inputs.append(self.codebooks[level].lookup(prefix_codes[:, level : level + 1]))
        outputs = self.backbone(
            input_ids=input_ids if encoder_outputs is None else None,
            attention_mask=attention_mask,
            encoder_outputs=encoder_outputs,
            decoder_inputs_embeds=torch.cat(decoder_inputs, dim=1),
            output_hidden_states=True,
            use_cache=False,
            return_dict=True,
        )
        return outputs.decoder_hidden_states[-1], BaseModelOutput(last_hidden_state=outputs.encoder_last_hidden_state)

    def encode_level(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        level: int,
        prefix_codes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        The level representation `h_t` of shape `(batch_size, hidden_size)` of documents whose earlier codes are
        `prefix_codes` `(batch_size, level)`; the input of k-means and of the codebook.
        """
        self._check_prefix_codes(level, prefix_codes, input_ids.shape[0])
        states, _ = self.level_hidden_states(input_ids, attention_mask, prefix_codes)
        return states[:, level]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        level: int = 0,
        prefix_codes: torch.Tensor | None = None,
        quantize: bool = True,
        losses: Sequence[str] | None = None,
        mask_ratio: float | None = None,
        reconstruction_noise: torch.Tensor | None = None,
        distillation_targets: torch.Tensor | None = None,
        **kwargs,
    ) -> LMIndexerOutput:
        r"""
        One training step's computation for ID level `level`.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): Document tokens.
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`): 1 for real tokens.
            level (`int`): 0-based ID level being learned.
            prefix_codes (`torch.LongTensor` of shape `(batch_size, level)`, *optional*):
                Frozen codes of the earlier levels (required from level 1 on).
            quantize (`bool`): Pass the level representation through the codebook (joint stage). `False` feeds the
                continuous representation to the reconstructor (stage before the codebook exists).
            losses (`Sequence[str]`, *optional*): Which of `"reconstruction"`, `"contrastive"`, `"code_prediction"`,
                `"distillation"` to compute. Defaults to the first three where they apply (code prediction needs
                `level >= 1`).
            mask_ratio (`float`, *optional*): Reconstructor mask ratio; defaults to `config.mask_ratios[level]`.
            reconstruction_noise (`torch.FloatTensor` of shape `(batch_size, sequence_length, sequence_length)`,
                *optional*): Uniform noise choosing the context tokens hidden from the reconstructor. Collators pass
                per-document noise so that results do not depend on batch composition or process count.
            distillation_targets (`torch.FloatTensor` of shape `(batch_size, target_size)`, *optional*): Fixed
                embeddings of the documents (the backbone's sentence embeddings before training, see
                [`~LMIndexerForSemanticID.mean_pooled_encoder_states`]) whose similarities the distillation loss
                imitates.
        """
        batch_size = input_ids.shape[0]
        self._check_prefix_codes(level, prefix_codes, batch_size)
        requested = self._requested_losses(losses, level)
        if "distillation" in requested and (
            distillation_targets is None or distillation_targets.shape[0] != batch_size
        ):
            shape = None if distillation_targets is None else tuple(distillation_targets.shape)
            raise ValueError(
                f"The distillation loss needs distillation_targets of shape ({batch_size}, target_size), got {shape}."
            )

        states, _ = self.level_hidden_states(input_ids, attention_mask, prefix_codes)
        level_representation = states[:, level]
        quantized = (
            self.codebooks[level](self.center_by_prefix(level, level_representation, prefix_codes))
            if quantize
            else None
        )
        id_vector = (
            level_representation
            if quantized is None
            else self._reconstructor_code_vectors(level, quantized.quantized, prefix_codes)
        )

        level_losses = {}
        if "reconstruction" in requested:
            ratio = self.config.mask_ratios[level] if mask_ratio is None else mask_ratio
            level_losses["reconstruction"] = self.reconstruction_loss(
                input_ids, attention_mask, self._id_vectors(prefix_codes, id_vector), ratio, reconstruction_noise
            )
        if "contrastive" in requested:
            level_losses["contrastive"] = self.contrastive_loss(
                level_representation, self.encode_level(input_ids, attention_mask, level, prefix_codes)
            )
        if "code_prediction" in requested:
            level_losses["code_prediction"] = self.code_prediction_loss(states[:, :level], prefix_codes)
        if "distillation" in requested:
            level_losses["distillation"] = self.distillation_loss(level_representation, distillation_targets)

        weights = {
            "reconstruction": self.config.reconstruction_loss_weight,
            "contrastive": self.config.contrastive_loss_weight,
            "code_prediction": self.config.code_prediction_loss_weight,
            "distillation": self.config.distillation_loss_weight,
        }
        return LMIndexerOutput(
            loss=sum(weights[name] * value for name, value in level_losses.items()),
            reconstruction_loss=level_losses.get("reconstruction"),
            contrastive_loss=level_losses.get("contrastive"),
            code_prediction_loss=level_losses.get("code_prediction"),
            distillation_loss=level_losses.get("distillation"),
            codes=None if quantized is None else quantized.codes,
            code_scores=None if quantized is None else quantized.scores,
            level_representation=level_representation,
        )

    def center_by_prefix(
        self, level: int, representations: torch.Tensor, prefix_codes: torch.Tensor | None
    ) -> torch.Tensor:
        """
        Level representations `(batch_size, hidden_size)` minus the mean of their prefix group (see
        [`PrefixGroupMeans`]), from level 1 on; unchanged at level 0, when `config.center_by_prefix` is off or when
        the level's means are not fitted. Always in `float32`, as the means are kept: a representation and its group
        mean share most of their bits, which a bfloat16 subtraction would leave as the residual's only ones.
        """
        representations = representations.float()
        if not self._centers_level(level):
            return representations
        return representations - self.prefix_group_means(level, prefix_codes, representations)

    def code_scores(
        self, level: int, representations: torch.Tensor, prefix_codes: torch.Tensor | None
    ) -> torch.Tensor:
        """
        Scores `(batch_size, codebook_size)`, in `float32`, of every code of `level` for level representations
        `(batch_size, hidden_size)` whose earlier codes are `prefix_codes` `(batch_size, level)`: dot products with the
        codebook after centring by the prefix-group means (see [`center_by_prefix`]).
        """
        return self.codebooks[level].scores(self.center_by_prefix(level, representations, prefix_codes))

    def _centers_level(self, level: int) -> bool:
        # Level 0 has one prefix group, the corpus: centring it lowered the AMI of k-means codes with MovieLens genres
        # (0.308 -> 0.282 on the untrained MiniLM backbone), while it is what spreads deeper levels.
        return self.config.center_by_prefix and level > 0

    def _requested_losses(self, losses: Sequence[str] | None, level: int) -> list[str]:
        if losses is None:
            return [name for name in DEFAULT_LOSS_NAMES if name != "code_prediction" or level > 0]
        unknown = sorted(set(losses) - set(LOSS_NAMES))
        if unknown:
            raise ValueError(f"Unknown loss names {unknown}; choose from {list(LOSS_NAMES)}.")
        if not losses:
            raise ValueError("At least one loss must be requested.")
        if "code_prediction" in losses and level == 0:
            raise ValueError("The code prediction loss needs earlier codes: it applies from level 1 on.")
        return list(losses)

    def _reconstructor_code_vectors(
        self, level: int, code_vectors: torch.Tensor, prefix_codes: torch.Tensor | None
    ) -> torch.Tensor:
        """
        What the reconstructor reads for codebook rows `(batch_size, hidden_size)` of `level`: the rows themselves,
        or, with `config.reconstructor_adds_prefix_means`, the rows plus their prefix group's mean, back in the
        space of the uncentred level representations the continuous stage feeds it.
        """
        if not (self.config.reconstructor_adds_prefix_means and self._centers_level(level)):
            return code_vectors
        return code_vectors + self.prefix_group_means(level, prefix_codes, code_vectors)

    def _id_vectors(self, prefix_codes: torch.Tensor | None, id_vector: torch.Tensor) -> torch.Tensor:
        """Code vectors of the earlier levels and the current level's vector: `(batch_size, level + 1, hidden)`."""
        vectors = (
            []
            if prefix_codes is None
            else [
                self._reconstructor_code_vectors(
                    level, self.codebooks[level].lookup(prefix_codes[:, level]), prefix_codes[:, :level]
                )
                for level in range(prefix_codes.shape[1])
            ]
        )
        return torch.stack([*vectors, id_vector], dim=1)

    def reconstruction_loss(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        id_vectors: torch.Tensor,
        mask_ratio: float,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Cross-entropy of rebuilding every real token of `input_ids` `(batch_size, sequence_length)` from the ID
        vectors `(batch_size, num_id_vectors, hidden_size)` and a `mask_ratio`-masked view of the other tokens,
        averaged per document, then over documents (so each document weighs the same, whatever its length).
        """
        token_embeddings = self.backbone.get_input_embeddings()(input_ids)
        hidden_states = self.reconstructor(id_vectors, token_embeddings, attention_mask, mask_ratio, noise)
        targets = attention_mask.bool()
        if getattr(self.backbone.config, "scale_decoder_outputs", False):
            # T5 with tied embeddings rescales states before its output head; do as the backbone does.
            hidden_states = hidden_states * self.config.hidden_size**-0.5
        logits = self.backbone.get_output_embeddings()(hidden_states[targets])
        token_losses = nn.functional.cross_entropy(logits.float(), input_ids[targets], reduction="none")
        document_index = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(targets)[targets]
        document_losses = torch.zeros(input_ids.shape[0], device=token_losses.device).index_add_(
            0, document_index, token_losses
        )
        return (document_losses / targets.sum(dim=1).clamp(min=1)).mean()

    def contrastive_loss(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """
        InfoNCE over cosine similarities or dot products (`config.contrastive_similarity`): document `i`'s first
        view `anchors[i]` `(batch_size, hidden_size)` must pick its second view `positives[i]` among all second views
        of the batch (of every process's batch under distributed training, equal local batch sizes assumed). From the
        second level on, [`LMIndexerTrainer`] batches documents in small groups sharing their earlier codes, so the
        batch holds each document's hard negatives.
        """
        # In float32: a bfloat16 similarity near 1 is off by up to 2**-9, which a temperature of 0.05 makes 0.04.
        anchors, positives = anchors.float(), positives.float()
        if self.config.contrastive_similarity == "cosine":
            anchors, positives = nn.functional.normalize(anchors, dim=-1), nn.functional.normalize(positives, dim=-1)
        targets = torch.arange(anchors.shape[0], device=anchors.device)
        if self.config.contrastive_across_processes and dist.is_available() and dist.is_initialized():
            targets = targets + dist.get_rank() * anchors.shape[0]
            positives = torch.cat(dist_nn.all_gather(positives))
        logits = float32_linear(anchors, positives)
        return nn.functional.cross_entropy(logits / self.config.contrastive_temperature, targets)

    def distillation_loss(self, representations: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """
        Similarity distillation: for each document of the batch, the softmax over its cosine similarities to the
        other documents (itself excluded, temperature `config.distillation_temperature`) computed from
        `representations` `(batch_size, hidden_size)` must match the one computed from the fixed `targets`
        `(batch_size, target_size)`; returns the mean KL divergence. The widths may differ: only similarities are
        compared. Under distributed training the other documents are those of every process's batch, as in
        [`~LMIndexerForSemanticID.contrastive_loss`].
        """
        representations = nn.functional.normalize(representations.float(), dim=-1)
        targets = nn.functional.normalize(targets.float(), dim=-1)
        rows = torch.arange(representations.shape[0], device=representations.device)
        columns_representations, columns_targets, diagonal = representations, targets, rows
        if self.config.contrastive_across_processes and dist.is_available() and dist.is_initialized():
            diagonal = rows + dist.get_rank() * representations.shape[0]
            columns_representations = torch.cat(dist_nn.all_gather(representations))
            columns_targets = torch.cat(dist_nn.all_gather(targets))
        temperature = self.config.distillation_temperature
        self_mask = torch.zeros(
            representations.shape[0], columns_representations.shape[0], dtype=torch.bool, device=rows.device
        )
        self_mask[rows, diagonal] = True
        student = (float32_linear(representations, columns_representations) / temperature).masked_fill(
            self_mask, float("-inf")
        )
        teacher = (float32_linear(targets, columns_targets) / temperature).masked_fill(self_mask, float("-inf"))
        student_log_probs = torch.log_softmax(student, dim=-1).masked_fill(self_mask, 0.0)
        teacher_log_probs = torch.log_softmax(teacher, dim=-1).masked_fill(self_mask, 0.0)
        return (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1).mean()

    @torch.no_grad()
    def mean_pooled_encoder_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """
        The backbone's sentence embeddings `(batch_size, encoder_hidden_size)`: its encoder states mean-pooled over
        the real tokens (for the default MiniLM backbone, exactly the all-MiniLM-L6-v2 sentence embedding before
        its normalisation). Taken before training, they are the default distillation targets.
        """
        states = self.backbone.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(states, attention_mask)

    def code_prediction_loss(self, earlier_states: torch.Tensor, prefix_codes: torch.Tensor) -> torch.Tensor:
        """
        Cross-entropy of predicting each earlier code from the decoder state before it, scored as [`predict_codes`]
        scores it, averaged over the levels.

        Args:
            earlier_states (`torch.FloatTensor` of shape `(batch_size, level, hidden_size)`)
            prefix_codes (`torch.LongTensor` of shape `(batch_size, level)`)
        """
        per_level = [
            nn.functional.cross_entropy(
                self.code_scores(level, earlier_states[:, level], prefix_codes[:, :level]), prefix_codes[:, level]
            )
            for level in range(prefix_codes.shape[1])
        ]
        return torch.stack(per_level).mean()

    @torch.no_grad()
    def initialize_codebook(
        self,
        level: int,
        representations: torch.Tensor,
        prefix_codes: torch.Tensor | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """
        Initialise the codebook of `level` from k-means centres (faiss) of the corpus' level representations, after
        fitting the prefix-group means of the level and centring by them (`config.center_by_prefix`).

        Args:
            level (`int`): 0-based ID level.
            representations (`torch.FloatTensor` of shape `(num_documents, hidden_size)`): from [`encode_level`].
            prefix_codes (`torch.LongTensor` of shape `(num_documents, level)`, *optional*): The documents' earlier
                codes (required from level 1 on).
            seed (`int`): k-means seed.

        Returns:
            The centres, of shape `(codebook_size, hidden_size)`.
        """
        self._check_prefix_codes(level, prefix_codes, representations.shape[0])
        if self._centers_level(level):
            self.prefix_group_means.fit(level, representations, prefix_codes)
        centroids = kmeans_centroids(
            self.center_by_prefix(level, representations, prefix_codes),
            self.config.codebook_sizes[level],
            num_iterations=self.config.kmeans_num_iterations,
            num_restarts=self.config.kmeans_num_restarts,
            spherical=self.config.kmeans_spherical,
            seed=seed,
        )
        self.codebooks[level].initialize_from_centroids(centroids)
        return centroids

    @torch.no_grad()
    def corpus_level_codes(
        self, level: int, representations: torch.Tensor, prefix_codes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Codes `(num_documents,)` of a whole corpus at `level`: the prefix-group means are re-fitted on these
        representations `(num_documents, hidden_size)` (so later [`predict_codes`] calls agree), then every document
        gets its best-scoring code.
        """
        self._check_prefix_codes(level, prefix_codes, representations.shape[0])
        if self._centers_level(level):
            self.prefix_group_means.fit(level, representations, prefix_codes)
        return self.code_scores(level, representations, prefix_codes).argmax(-1)

    @torch.no_grad()
    def predict_codes(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_levels: int | None = None
    ) -> torch.Tensor:
        """
        Greedy codes `(batch_size, num_levels)`: level by level, the best-scoring code given the earlier ones, centred
        by the prefix-group means of the indexed corpus. The encoder runs once; the decoder once per level.
        """
        num_levels = self.config.num_levels if num_levels is None else num_levels
        codes = torch.empty(input_ids.shape[0], 0, dtype=torch.long, device=input_ids.device)
        encoder_outputs = None
        for level in range(num_levels):
            states, encoder_outputs = self.level_hidden_states(
                input_ids, attention_mask, codes if level else None, encoder_outputs
            )
            level_codes = self.code_scores(level, states[:, level], codes if level else None).argmax(dim=-1)
            codes = torch.cat([codes, level_codes[:, None]], dim=1)
        return codes

    def length_sorted_batches(
        self,
        documents: Sequence[str],
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int,
        lengths: Sequence[int] | None = None,
    ) -> list[np.ndarray]:
        """
        A corpus cut into batches of similar token count (little padding): the documents sorted by token count
        (stably, so ties keep corpus order), `batch_size` at a time.

        Args:
            documents (`Sequence[str]`): Document texts.
            tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
            batch_size (`int`): Documents per batch, at least 1.
            lengths (`Sequence[int]`, *optional*): Token count of every document, truncated to
                `config.max_document_length`, when known; otherwise the documents are tokenised to count them.

        Returns:
            `list[np.ndarray]`: The rows (positions in `documents`) of every batch, of shape `(batch_size,)` (the last
            one maybe shorter).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size} must be at least 1.")
        if lengths is None:
            encoded = tokenizer(list(documents), max_length=self.config.max_document_length, truncation=True)
            lengths = [len(input_ids) for input_ids in encoded["input_ids"]]
        elif len(lengths) != len(documents):
            raise ValueError(f"Got {len(lengths)} lengths for {len(documents)} documents.")
        order = np.argsort(np.asarray(lengths), kind="stable")
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    @torch.no_grad()
    def encode_batches(
        self,
        documents: Sequence[str],
        tokenizer: PreTrainedTokenizerBase,
        batches: Sequence[np.ndarray],
        encode: Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor],
        description: str | None = None,
        show_progress_bar: bool = False,
    ) -> list[torch.Tensor]:
        """
        Run `encode` on batches of documents, in eval mode (the training mode is restored afterwards).

        Args:
            documents (`Sequence[str]`): Document texts.
            tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
            batches (`Sequence[np.ndarray]`): The rows (positions in `documents`) of every batch, e.g. some or all of
                [`length_sorted_batches`].
            encode (`Callable`): `encode(input_ids, attention_mask, rows)` maps a batch's tokens
                `(batch_size, sequence_length)` (truncated to `config.max_document_length`, on the model's device) and
                its rows `(batch_size,)` to an output `(batch_size, ...)`, e.g. [`level_encoder`].
            description (`str`, *optional*): Label of the progress bar.
            show_progress_bar (`bool`): Show a tqdm bar over the batches.

        Returns:
            `list[torch.Tensor]`: The output of every batch, in the order of `batches` (see [`in_document_order`]).
        """
        outputs = []
        with evaluation_mode(self):
            for rows in tqdm(batches, desc=description, disable=not show_progress_bar):
                encoding = tokenizer(
                    [documents[row] for row in rows],
                    max_length=self.config.max_document_length,
                    truncation=True,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                outputs.append(encode(encoding["input_ids"], encoding["attention_mask"], rows))
        return outputs

    def level_encoder(
        self, level: int, prefix_codes: torch.Tensor | None = None
    ) -> Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]:
        """
        The `encode` of [`encode_batches`] that gives a batch's level representations (see [`encode_level`]), as
        `float32` `(batch_size, hidden_size)`.

        Args:
            level (`int`): 0-based ID level.
            prefix_codes (`torch.LongTensor` of shape `(num_documents, level)`, *optional*): The earlier codes of every
                document of the corpus (required from level 1 on); a batch takes the rows of its documents.
        """

        def encode(input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
            batch_prefix_codes = (
                None if prefix_codes is None else prefix_codes[torch.from_numpy(rows).to(prefix_codes.device)]
            )
            return self.encode_level(input_ids, attention_mask, level, batch_prefix_codes).float()

        return encode

    @torch.no_grad()
    def predict_corpus_codes(
        self,
        documents: Sequence[str],
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 64,
        num_levels: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """
        [`predict_codes`] of every document, in batches of similar length: the codes the model gives each document
        with its stored codebooks and prefix-group means, which are left unchanged.

        Args:
            documents (`Sequence[str]`): Document texts.
            tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
            batch_size (`int`): Documents encoded at once.
            num_levels (`int`, *optional*): Learned levels to predict (defaults to all).
            show_progress_bar (`bool`): Show a tqdm bar.

        Returns:
            `np.ndarray` of shape `(num_documents, num_levels)`, `int64`, in document order.
        """
        documents = list(documents)
        num_levels = self.config.num_levels if num_levels is None else num_levels
        batches = self.length_sorted_batches(documents, tokenizer, batch_size)
        codes = self.encode_batches(
            documents,
            tokenizer,
            batches,
            lambda input_ids, attention_mask, rows: self.predict_codes(input_ids, attention_mask, num_levels),
            description="Predicting codes",
            show_progress_bar=show_progress_bar,
        )
        return in_document_order(batches, codes).cpu().numpy()

    @torch.no_grad()
    def assign_ids(
        self,
        documents: Sequence[str],
        tokenizer: PreTrainedTokenizerBase,
        doc_ids: Sequence[str] | None = None,
        batch_size: int = 64,
        num_levels: int | None = None,
        show_progress_bar: bool = False,
    ) -> SemanticIDs:
        """
        Index a whole corpus: encode it in batches and give every document a unique semantic ID, replacing the
        model's IDs and prefix-group means (to give a few new documents IDs next to an indexed corpus, use
        [`add_documents`]).

        Level by level, every document is encoded given its earlier codes, the prefix-group means are fitted on the
        corpus (see [`PrefixGroupMeans`]) and each document takes its best-scoring code. Documents whose learned codes
        coincide get one extra final code numbering them within their group.

        Args:
            documents (`Sequence[str]`): Document texts.
            tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
            doc_ids (`Sequence[str]`, *optional*): Unique document ids; defaults to the positions `"0"`, `"1"`, ...
            batch_size (`int`): Documents encoded at once.
            num_levels (`int`, *optional*): Learned levels to use (defaults to all).
            show_progress_bar (`bool`): Show a tqdm bar.

        Returns:
            [`SemanticIDs`], also stored in `self.semantic_ids` and saved by `save_pretrained`.
        """
        documents = list(documents)
        doc_ids = [str(position) for position in range(len(documents))] if doc_ids is None else list(doc_ids)
        validate_corpus(doc_ids, documents)
        num_levels = self.config.num_levels if num_levels is None else num_levels
        batches = self.length_sorted_batches(documents, tokenizer, batch_size)
        codes = torch.empty(len(documents), 0, dtype=torch.long, device=self.device)
        for level in range(num_levels):
            prefix_codes = codes if level else None
            representations = self.encode_batches(
                documents,
                tokenizer,
                batches,
                self.level_encoder(level, prefix_codes),
                description=f"Assigning level {level + 1}",
                show_progress_bar=show_progress_bar,
            )
            level_codes = self.corpus_level_codes(level, in_document_order(batches, representations), prefix_codes)
            codes = torch.cat([codes, level_codes[:, None]], dim=1)
        self.semantic_ids = SemanticIDs.from_learned_codes(
            doc_ids, codes.cpu().numpy(), self.config.codebook_sizes[:num_levels]
        )
        return self.semantic_ids

    @torch.no_grad()
    def add_documents(
        self,
        documents: Sequence[str],
        tokenizer: PreTrainedTokenizerBase,
        doc_ids: Sequence[str],
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ) -> SemanticIDs:
        """
        Give new documents IDs next to the indexed corpus, without re-indexing it or training.

        Each new document takes the codes the model predicts for it ([`predict_corpus_codes`]: the stored codebooks
        and prefix-group means, neither refitted), so a new document lands in the prefix groups of the indexed
        documents it resembles, and a new document with an indexed one's text gets that one's codes. The IDs of the
        indexed documents never change; `self.semantic_ids` is extended with the new ones (see
        [`SemanticIDs.extend`]): a new document whose codes collide with an indexed ID or another new one gets the
        next collision code of its group, as in training.

        Args:
            documents (`Sequence[str]`): Texts of the new documents.
            tokenizer (`PreTrainedTokenizerBase`): The backbone's tokenizer.
            doc_ids (`Sequence[str]`): Their ids, unique and not yet indexed.
            batch_size (`int`): Documents encoded at once.
            show_progress_bar (`bool`): Show a tqdm bar.

        Returns:
            The extended [`SemanticIDs`] (also stored in `self.semantic_ids` and saved by `save_pretrained`).

        Raises:
            `ValueError`: When the model has no indexed corpus, for an empty, non-string or duplicate document or id,
            and for a doc id that is already indexed (naming it).
        """
        if self.semantic_ids is None:
            raise ValueError(
                "The indexer has no indexed corpus to add documents to: train it or call assign_ids(...) first."
            )
        documents, doc_ids = list(documents), list(doc_ids)
        validate_corpus(doc_ids, documents)
        indexed = [doc_id for doc_id in doc_ids if doc_id in self.semantic_ids]
        if indexed:
            raise ValueError(
                f"{len(indexed)} of the new doc ids are already indexed, e.g. {indexed[0]!r}: add_documents never "
                "changes an indexed document's ID; give new documents new ids."
            )
        codes = self.predict_corpus_codes(
            documents,
            tokenizer,
            batch_size=batch_size,
            num_levels=self.semantic_ids.num_learned_levels,
            show_progress_bar=show_progress_bar,
        )
        self.semantic_ids = self.semantic_ids.extend(doc_ids, codes)
        return self.semantic_ids

    def check_semantic_ids(self, semantic_ids: SemanticIDs, source: str, model_name: str = "model") -> None:
        """
        Check that an ID table's learned levels have this model's codebook sizes.

        Raises:
            `ValueError`: Naming `source` and the first level that does not fit (the model called `model_name`).
        """
        for level in range(semantic_ids.num_learned_levels):
            expected = self.config.codebook_sizes[level] if level < self.config.num_levels else None
            if semantic_ids.codebook_sizes[level] != expected:
                raise ValueError(
                    f"{source}: learned level {level} has codebook size {semantic_ids.codebook_sizes[level]} but the "
                    f"{model_name}'s level {level} has {expected}; these IDs were not learned by this {model_name}."
                )

    def set_semantic_ids(self, semantic_ids: SemanticIDs, source: str = "semantic_ids") -> None:
        """Use an ID table learned by this model (checked by [`check_semantic_ids`]) as `self.semantic_ids`."""
        self.check_semantic_ids(semantic_ids, source)
        self.semantic_ids = semantic_ids

    def model_card(self) -> str:
        """Markdown model card: backbone, levels, codebook sizes, dataset and indexing metrics when known."""
        config = self.config
        facts = [
            f"Backbone: `{config.backbone_name_or_path or config.seq2seq_config.model_type}` "
            f"({config.seq2seq_config.model_type}, width {config.hidden_size})",
            f"Learned ID levels: {config.num_levels}",
            f"Codebook sizes: {', '.join(str(size) for size in config.codebook_sizes)}",
            f"Dataset: {config.dataset_name or 'unknown'}",
        ]
        if self.semantic_ids is not None:
            facts.append(
                f"Indexed documents: {len(self.semantic_ids)} (ID length {self.semantic_ids.num_levels}, "
                f"collision rate before resolution {self.semantic_ids.collision_rate_before_resolution:.4f})"
            )
        return render_model_card(
            dataset_name=config.dataset_name,
            task_tag="generative-retrieval",
            title="LMIndexer semantic indexer",
            summary="A language model that assigns hierarchical semantic IDs to documents, as in *Language Models as "
            "Semantic Indexers* (Jin et al., ICML 2024), trained with `lmindexer`.",
            facts=facts,
            metrics=config.indexing_metrics,
            usage=[
                "import modeling_lmindexer",
                "from transformers import AutoModel",
                "",
                f'model = AutoModel.from_pretrained("{config.name_or_path or "path/to/model"}")',
                "model.semantic_ids  # doc id -> code tuple",
            ],
        )


__all__ = ["LMIndexerForSemanticID", "LMIndexerOutput", "LMIndexerPreTrainedModel", "in_document_order"]
