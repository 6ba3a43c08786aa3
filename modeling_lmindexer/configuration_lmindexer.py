"""LMIndexer model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


DEFAULT_CODEBOOK_SIZE = 256
DEFAULT_LEVEL_ONE_MASK_RATIO = 0.5
DEFAULT_LATER_LEVEL_MASK_RATIO = 0.7


def seq2seq_hidden_size(seq2seq_config: PreTrainedConfig) -> int:
    """Width of the decoder states of a seq2seq config (T5, BART or `EncoderDecoderConfig`)."""
    decoder_config = getattr(seq2seq_config, "decoder", None)
    if isinstance(decoder_config, PreTrainedConfig):
        return decoder_config.hidden_size
    return seq2seq_config.hidden_size


@strict
class LMIndexerConfig(PreTrainedConfig):
    r"""
    Configuration of [`LMIndexerForSemanticID`], the self-supervised semantic indexer of "Language Models as Semantic
    Indexers" (Jin et al., ICML 2024). It holds the nested configuration of the seq2seq backbone and every
    hyper-parameter of the ID levels, the codebooks, the reconstructor and the losses.

    Args:
        seq2seq_config (`PreTrainedConfig` or `dict`, *optional*):
            Configuration of the seq2seq backbone: any `AutoModelForSeq2SeqLM` config (T5, Flan-T5, BART) or an
            `EncoderDecoderConfig`. Defaults to a T5 config.
        backbone_name_or_path (`str`, *optional*):
            Hub id or folder the backbone weights were taken from (informational, shown in the model card).
        num_levels (`int`, *optional*, defaults to 3):
            Number of learned ID levels T. A collision code may be appended after them.
        codebook_sizes (`list[int]`, *optional*):
            Codebook size K_t of each learned level. Defaults to 256 codes per level.
        code_temperature (`float`, *optional*, defaults to 1.0):
            Softmax temperature of the straight-through estimator over the code scores.
        use_gumbel_noise (`bool`, *optional*, defaults to `False`):
            Add Gumbel noise to the code scores in training (straight-through Gumbel-softmax). The authors' code
            uses plain softmax, hence the default.
        kmeans_num_iterations (`int`, *optional*, defaults to 50):
            Iterations of the faiss k-means that initialises each codebook.
        kmeans_num_restarts (`int`, *optional*, defaults to 3):
            Restarts of that k-means; the best run is kept.
        kmeans_spherical (`bool`, *optional*, defaults to `True`):
            Run spherical (cosine) k-means so that its assignments agree with the dot-product code selection.
        center_by_prefix (`bool`, *optional*, defaults to `True`):
            From ID level 2 on, subtract from each level representation the mean representation of its prefix group
            (the corpus documents sharing its earlier codes) before k-means and code scoring. Without it, the
            earlier codes dominate deeper representations and documents of one prefix group mostly collide on one
            code.
        reconstructor_adds_prefix_means (`bool`, *optional*, defaults to `True`):
            From ID level 2 on (with `center_by_prefix`), the reconstructor reads each code vector plus the mean of
            its prefix group, so that it reads vectors of one space in both stages of a level: the uncentred level
            representation in the continuous stage, and the codebook row (learned on centred residuals) moved back
            by the mean in the joint stage. The mean is a function of the ID's earlier codes: no information passes
            the ID bottleneck. `False` feeds the bare codebook rows.
        reconstructor_num_layers (`int`, *optional*, defaults to 1):
            Number of layers of the shallow reconstructor.
        reconstructor_num_heads (`int`, *optional*, defaults to 4):
            Attention heads of the reconstructor; must divide the backbone width.
        reconstructor_intermediate_size (`int`, *optional*):
            Feed-forward width of the reconstructor. Defaults to four times the backbone width.
        reconstructor_dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside the reconstructor.
        mask_ratios (`list[float]`, *optional*):
            Share of the other document tokens hidden from the reconstructor when it predicts a token, per level.
            Defaults to 0.5 at level 1 and 0.7 after.
        max_document_length (`int`, *optional*, defaults to 128):
            Token length documents are truncated to, in training and in ID assignment alike.
        contrastive_similarity (`str`, *optional*, defaults to `"cosine"`):
            Similarity of the contrastive loss: `"cosine"` (SimCSE-style, does not saturate by growing norms) or
            `"dot"` (raw dot products, as in the authors' code).
        contrastive_temperature (`float`, *optional*, defaults to 0.05):
            Temperature dividing the similarities of the contrastive loss.
        contrastive_across_processes (`bool`, *optional*, defaults to `True`):
            Under distributed training, use the second views of every process's batch as in-batch negatives, so the
            loss equals the one-process loss at the same global batch.
        num_hard_negatives (`int`, *optional*, defaults to 4):
            Hard negatives per document from level 2 on: training batches are made of chunks of
            `num_hard_negatives + 1` documents sharing their earlier codes, so that the contrastive loss's in-batch
            negatives hold up to this many documents of the same prefix group. 0 samples those levels like level 1.
        reconstruction_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the masked-token reconstruction loss.
        contrastive_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the contrastive loss.
        code_prediction_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the loss teaching the decoder to generate the earlier codes it already assigned.
        distillation_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the similarity distillation loss (stages that list `"distillation"`): within the batch, the
            softmax over cosine similarities of the level representations must match that of the backbone's own
            sentence embeddings before training, so the pretrained semantic neighbourhoods survive the
            reconstruction objective.
        distillation_temperature (`float`, *optional*, defaults to 0.05):
            Temperature dividing both similarity matrices of the distillation loss.
        collaborative_share (`float`, *optional*, defaults to 0.0):
            Share, in `[0, 1)`, of the distillation targets' cosine similarities that comes from item co-occurrence
            embeddings (given to the trainer as `collaborative_embeddings`, see
            [`~collaborative.cooccurrence_embeddings`]) instead of the backbone's sentence embeddings, so that items
            bought together are pulled into the same prefix groups. 0 distils text similarity alone.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialisation of codebooks and reconstructor.
        dataset_name (`str`, *optional*):
            Name of the corpus the IDs were learned on (shown in the model card).
        indexing_metrics (`dict`, *optional*):
            Metrics of the learned IDs, e.g. collision rate and AMI (shown in the model card).

    Example:

    ```python
    >>> from transformers import T5Config
    >>> from modeling_lmindexer import LMIndexerConfig, LMIndexerForSemanticID

    >>> config = LMIndexerConfig(seq2seq_config=T5Config(num_layers=2), codebook_sizes=[128, 128, 128])
    >>> model = LMIndexerForSemanticID(config)
    ```"""

    model_type = "lmindexer"
    sub_configs_defaults = {"seq2seq_config": SubConfigSpec(config_class=AutoConfig, model_type="t5")}

    seq2seq_config: PreTrainedConfig | dict | None = None
    backbone_name_or_path: str | None = None
    num_levels: int = 3
    codebook_sizes: list[int] | None = None
    code_temperature: float = 1.0
    use_gumbel_noise: bool = False
    kmeans_num_iterations: int = 50
    kmeans_num_restarts: int = 3
    kmeans_spherical: bool = True
    center_by_prefix: bool = True
    reconstructor_adds_prefix_means: bool = True
    reconstructor_num_layers: int = 1
    reconstructor_num_heads: int = 4
    reconstructor_intermediate_size: int | None = None
    reconstructor_dropout: float = 0.1
    mask_ratios: list[float] | None = None
    max_document_length: int = 128
    contrastive_similarity: str = "cosine"
    contrastive_temperature: float = 0.05
    contrastive_across_processes: bool = True
    num_hard_negatives: int = 4
    reconstruction_loss_weight: float = 1.0
    contrastive_loss_weight: float = 1.0
    code_prediction_loss_weight: float = 1.0
    distillation_loss_weight: float = 1.0
    distillation_temperature: float = 0.05
    collaborative_share: float = 0.0
    initializer_range: float = 0.02
    dataset_name: str | None = None
    indexing_metrics: dict | None = None

    def __post_init__(self, **kwargs):
        if self.codebook_sizes is None:
            self.codebook_sizes = [DEFAULT_CODEBOOK_SIZE] * self.num_levels
        self.codebook_sizes = list(self.codebook_sizes)
        if self.mask_ratios is None:
            later_levels = [DEFAULT_LATER_LEVEL_MASK_RATIO] * (self.num_levels - 1)
            self.mask_ratios = [DEFAULT_LEVEL_ONE_MASK_RATIO] + later_levels
        self.mask_ratios = [float(ratio) for ratio in self.mask_ratios]
        self._check_levels()
        super().__post_init__(**kwargs)
        if self.reconstructor_intermediate_size is None:
            self.reconstructor_intermediate_size = 4 * self.hidden_size
        if self.hidden_size % self.reconstructor_num_heads != 0:
            raise ValueError(
                f"reconstructor_num_heads = {self.reconstructor_num_heads} must divide the backbone width "
                f"{self.hidden_size}."
            )

    def _check_levels(self) -> None:
        if self.num_levels < 1:
            raise ValueError(f"num_levels = {self.num_levels}: at least one ID level is needed.")
        if len(self.codebook_sizes) != self.num_levels:
            raise ValueError(
                f"codebook_sizes has {len(self.codebook_sizes)} entries but num_levels = {self.num_levels}; "
                "give one codebook size per level."
            )
        for level, size in enumerate(self.codebook_sizes):
            if not isinstance(size, int) or size < 2:
                raise ValueError(f"codebook_sizes[{level}] = {size!r}: every level needs at least 2 codes.")
        if len(self.mask_ratios) != self.num_levels:
            raise ValueError(
                f"mask_ratios has {len(self.mask_ratios)} entries but num_levels = {self.num_levels}; "
                "give one mask ratio per level."
            )
        for level, ratio in enumerate(self.mask_ratios):
            if not 0.0 <= ratio < 1.0:
                raise ValueError(f"mask_ratios[{level}] = {ratio}: a mask ratio must be in [0, 1).")
        if self.contrastive_similarity not in ("cosine", "dot"):
            raise ValueError(f"contrastive_similarity = {self.contrastive_similarity!r}: use 'cosine' or 'dot'.")
        if self.distillation_temperature <= 0:
            raise ValueError(f"distillation_temperature = {self.distillation_temperature} must be positive.")
        if not 0 <= self.collaborative_share < 1:
            raise ValueError(f"collaborative_share = {self.collaborative_share} must lie in [0, 1).")
        if self.max_document_length < 2:
            raise ValueError(f"max_document_length = {self.max_document_length}: documents need at least 2 tokens.")

    @property
    def hidden_size(self) -> int:
        """Width of the backbone's decoder states, of the codebook vectors and of the reconstructor."""
        return seq2seq_hidden_size(self.seq2seq_config)


__all__ = ["LMIndexerConfig"]
