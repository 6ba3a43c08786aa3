"""Train a tiny indexer on 40 synthetic documents and write its IDs; launched by tests under 1 or 2 processes."""

import json
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from conftest import synthetic_documents, t5_tokenizer_path, tiny_indexer_config  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer, TrainingArguments  # noqa: E402

from modeling_lmindexer import LMIndexerForSemanticID  # noqa: E402
from trainers import LMIndexerTrainer, default_stage_plan  # noqa: E402


def main(output_dir: str, per_device_batch_size: int, sampling_strategy: str) -> None:
    corpus = Dataset.from_dict({"doc_id": [f"doc-{i}" for i in range(40)], "text": synthetic_documents()})
    torch.manual_seed(0)
    model = LMIndexerForSemanticID(tiny_indexer_config(codebook_sizes=[4, 4]))
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=per_device_batch_size,
        per_device_eval_batch_size=16,
        learning_rate=1e-3,
        report_to=[],
        seed=0,
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        ddp_find_unused_parameters=True,
        train_sampling_strategy=sampling_strategy,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(t5_tokenizer_path()))
    plan = default_stage_plan(2, warmup_epochs=1, continuous_epochs=1, joint_epochs=1)
    trainer = LMIndexerTrainer(model, args, corpus, tokenizer, stage_plan=plan)
    trainer.train()
    if trainer.is_world_process_zero():
        ids = {doc_id: list(codes) for doc_id, codes in model.semantic_ids.to_dict().items()}
        Path(output_dir, "ids.json").write_text(json.dumps({"ids": ids, "world_size": args.world_size}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "random")
