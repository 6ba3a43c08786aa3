"""LoRA adapters on the indexer's backbone with PEFT: train adapters instead of full weights, merge them to save."""

from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers.utils import logging

from modeling_lmindexer import LMIndexerForSemanticID


logger = logging.get_logger(__name__)


def default_lora_target_modules(model: LMIndexerForSemanticID) -> list[str]:
    """PEFT's default LoRA targets for the backbone; for an `EncoderDecoderModel`, those of its encoder's type."""
    backbone_config = model.backbone.config
    model_type = getattr(getattr(backbone_config, "encoder", None), "model_type", backbone_config.model_type)
    if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        raise ValueError(f"No default LoRA target modules for backbone type '{model_type}'; pass target_modules.")
    return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])


def apply_lora(
    model: LMIndexerForSemanticID,
    lora_config: LoraConfig | None = None,
    r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
) -> LMIndexerForSemanticID:
    """
    Wrap the backbone in LoRA adapters (in place). Stages that train `"backbone"` then train only the adapters;
    codebooks and reconstructor still train fully.

    Args:
        model ([`LMIndexerForSemanticID`]): The indexer.
        lora_config (`peft.LoraConfig`, *optional*): Full control; otherwise built from `r`, `lora_alpha`,
            `lora_dropout` and the backbone type's default target modules.
    """
    if isinstance(model.backbone, PeftModel):
        raise ValueError("The backbone already carries LoRA adapters.")
    if lora_config is None:
        lora_config = LoraConfig(
            r=r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=default_lora_target_modules(model),
        )
    model.backbone = get_peft_model(model.backbone, lora_config)
    trainable, total = model.backbone.get_nb_trainable_parameters()
    logger.info(f"LoRA on the backbone: {trainable:,} trainable of {total:,} parameters.")
    return model


def merge_lora(model: LMIndexerForSemanticID) -> LMIndexerForSemanticID:
    """Fold the adapters into the backbone weights (in place), so the model saves and loads as a plain indexer."""
    if isinstance(model.backbone, PeftModel):
        model.backbone = model.backbone.merge_and_unload()
    return model


def is_lora_parameter(name: str) -> bool:
    return "lora_" in name


__all__ = ["apply_lora", "default_lora_target_modules", "is_lora_parameter", "merge_lora"]
