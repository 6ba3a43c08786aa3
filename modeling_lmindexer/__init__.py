"""lmindexer: language models as semantic indexers, the Hugging Face way.

Importing this package registers `LMIndexerConfig` with `AutoConfig` and `LMIndexerForSemanticID` with `AutoModel`, and
marks both for `register_for_auto_class`, so that `save_pretrained` writes `auto_map` and the modeling code next to
the weights (for `trust_remote_code=True` loading without this package).
"""

from transformers import AutoConfig, AutoModel

from .backbones import DEFAULT_BACKBONE, load_backbone, load_offline_backbone
from .codebook import LMIndexerCodebook, PrefixGroupMeans, kmeans_centroids
from .configuration_lmindexer import LMIndexerConfig
from .modeling_lmindexer import LMIndexerForSemanticID, LMIndexerOutput, LMIndexerPreTrainedModel
from .reconstructor import LMIndexerReconstructor
from .semantic_ids import SemanticIDs, validate_corpus


__version__ = "0.1.0"

AutoConfig.register(LMIndexerConfig.model_type, LMIndexerConfig, exist_ok=True)
AutoModel.register(LMIndexerConfig, LMIndexerForSemanticID, exist_ok=True)
LMIndexerConfig.register_for_auto_class()
LMIndexerForSemanticID.register_for_auto_class("AutoModel")

__all__ = [
    "DEFAULT_BACKBONE",
    "LMIndexerCodebook",
    "LMIndexerConfig",
    "LMIndexerForSemanticID",
    "LMIndexerOutput",
    "LMIndexerPreTrainedModel",
    "LMIndexerReconstructor",
    "PrefixGroupMeans",
    "SemanticIDs",
    "kmeans_centroids",
    "load_backbone",
    "load_offline_backbone",
    "validate_corpus",
]
