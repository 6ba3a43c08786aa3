"""LoRA on the indexer's backbone: only adapters train, and the merged model saves and reloads exactly."""

import torch
from conftest import tiny_indexer_config
from datasets import Dataset
from peft import PeftModel
from transformers import TrainingArguments

from modeling_lmindexer import LMIndexerForSemanticID
from trainers import IndexingStage, LMIndexerTrainer
from trainers.lora import apply_lora, merge_lora


PLAN = [
    IndexingStage("level-1/kmeans-init", 0, kind="kmeans"),
    IndexingStage(
        "level-1/joint",
        0,
        trainable=["backbone", "codebook", "reconstructor"],
        losses=["reconstruction", "contrastive"],
        quantize=True,
        num_epochs=2,
    ),
    IndexingStage("level-1/assign", 0, kind="assign"),
]


def test_lora_trains_adapters_only_and_merged_model_round_trips(tmp_path, t5_tokenizer, documents):
    torch.manual_seed(0)
    model = LMIndexerForSemanticID(tiny_indexer_config(num_levels=1, codebook_sizes=[4], mask_ratios=[0.5]))
    apply_lora(model, r=4, lora_alpha=8, lora_dropout=0.0)
    assert isinstance(model.backbone, PeftModel)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}

    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
    )
    corpus = Dataset.from_dict({"doc_id": [str(i) for i in range(len(documents))], "text": documents})
    LMIndexerTrainer(model, args, corpus, t5_tokenizer, stage_plan=PLAN).train()

    changed = {name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])}
    backbone_changed = {name for name in changed if name.startswith("backbone.")}
    assert backbone_changed and all("lora_" in name for name in backbone_changed)
    assert any(name.startswith("codebooks.0.") for name in changed)
    assert any(name.startswith("reconstructor.") for name in changed)

    probe = t5_tokenizer(documents[:6], padding=True, return_tensors="pt")
    model.eval()
    codes_with_adapters = model.predict_codes(probe["input_ids"], probe["attention_mask"])
    merge_lora(model)
    assert not isinstance(model.backbone, PeftModel)
    assert torch.equal(model.predict_codes(probe["input_ids"], probe["attention_mask"]), codes_with_adapters)

    model.save_pretrained(tmp_path / "merged")
    loaded = LMIndexerForSemanticID.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora_" in name for name in loaded.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert torch.equal(loaded.predict_codes(probe["input_ids"], probe["attention_mask"]), codes_with_adapters)
    assert loaded.semantic_ids == model.semantic_ids
