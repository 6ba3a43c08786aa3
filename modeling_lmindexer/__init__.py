"""lmindexer: language models as semantic indexers, the Hugging Face way.

Importing this package registers `LMIndexerConfig` with `AutoConfig` and `LMIndexerForSemanticID` with `AutoModel`
(`LMIndexerRetrieverConfig` and `LMIndexerRetriever` with `AutoConfig` and `AutoModelForSeq2SeqLM`,
`LMIndexerRecommenderConfig` and `LMIndexerRecommender` with `AutoConfig` and `AutoModelForCausalLM`), and marks them
for `register_for_auto_class`, so that `save_pretrained` writes `auto_map` and the modeling code next to
the weights (for `trust_remote_code=True` loading without this package).
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from .backbones import DEFAULT_BACKBONE, backbone_from_config, load_backbone, load_offline_backbone, load_tokenizer
from .codebook import LMIndexerCodebook, PrefixGroupMeans, kmeans_centroids
from .configuration_lmindexer import LMIndexerConfig
from .configuration_recommender import LMIndexerRecommenderConfig
from .configuration_retriever import LMIndexerRetrieverConfig
from .id_tokens import IDTokenLayout
from .logits_process import TrieConstrainedLogitsProcessor
from .modeling_lmindexer import LMIndexerForSemanticID, LMIndexerOutput, LMIndexerPreTrainedModel
from .modeling_recommender import LMIndexerRecommender
from .modeling_retriever import LMIndexerRetriever
from .reconstructor import LMIndexerReconstructor
from .semantic_ids import SemanticIDs, validate_corpus
from .trie import IDTrie


__version__ = "0.1.0"

AutoConfig.register(LMIndexerConfig.model_type, LMIndexerConfig, exist_ok=True)
AutoModel.register(LMIndexerConfig, LMIndexerForSemanticID, exist_ok=True)
LMIndexerConfig.register_for_auto_class()
LMIndexerForSemanticID.register_for_auto_class("AutoModel")
AutoConfig.register(LMIndexerRetrieverConfig.model_type, LMIndexerRetrieverConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(LMIndexerRetrieverConfig, LMIndexerRetriever, exist_ok=True)
LMIndexerRetrieverConfig.register_for_auto_class()
LMIndexerRetriever.register_for_auto_class("AutoModelForSeq2SeqLM")
AutoConfig.register(LMIndexerRecommenderConfig.model_type, LMIndexerRecommenderConfig, exist_ok=True)
AutoModelForCausalLM.register(LMIndexerRecommenderConfig, LMIndexerRecommender, exist_ok=True)
LMIndexerRecommenderConfig.register_for_auto_class()
LMIndexerRecommender.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "DEFAULT_BACKBONE",
    "IDTokenLayout",
    "IDTrie",
    "LMIndexerCodebook",
    "LMIndexerConfig",
    "LMIndexerForSemanticID",
    "LMIndexerOutput",
    "LMIndexerPreTrainedModel",
    "LMIndexerReconstructor",
    "LMIndexerRecommender",
    "LMIndexerRecommenderConfig",
    "LMIndexerRetriever",
    "LMIndexerRetrieverConfig",
    "PrefixGroupMeans",
    "SemanticIDs",
    "TrieConstrainedLogitsProcessor",
    "backbone_from_config",
    "kmeans_centroids",
    "load_backbone",
    "load_offline_backbone",
    "load_tokenizer",
    "validate_corpus",
]
