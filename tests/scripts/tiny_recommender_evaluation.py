"""Evaluate a tiny random recommender on 9 users and write the metrics; launched by tests under 1 or 2 processes."""

import json
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, TrainingArguments


sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from modeling_lmindexer import LMIndexerRecommender, SemanticIDs  # noqa: E402
from modeling_lmindexer.data.recommendation import RecommendationExample  # noqa: E402
from trainers import LMIndexerRecommenderTrainer, recommendation_evaluation_dataset  # noqa: E402


def main(output_dir: str) -> None:
    items = [f"item-{index}" for index in range(24)]
    torch.manual_seed(0)
    model = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(items, [[index // 6, index % 6, 0] for index in range(24)], [4, 6, 2]),
        decoder_config=LlamaConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2
        ),
        max_history_length=4,
    )
    histories = [[items[(3 * user + offset) % 24] for offset in range(1 + user % 3)] for user in range(9)]
    # Targets at a different rank for every user, so that rankings given back in another order change the metrics.
    full_rankings = model.recommend(histories, k=10, batch_size=2)  # as the trainer ranks them
    examples = [
        RecommendationExample(f"user-{user}", tuple(history), full_rankings[user][user])
        for user, history in enumerate(histories)
    ]
    args = TrainingArguments(
        output_dir=output_dir, per_device_eval_batch_size=2, report_to=[], use_cpu=True, disable_tqdm=True
    )
    trainer = LMIndexerRecommenderTrainer(model, args, k_values=(1, 5, 10), num_beams=10)
    ranked = []
    rankings = trainer.rankings
    trainer.rankings = lambda own_histories: ranked.extend(own_histories) or rankings(own_histories)
    metrics = trainer.evaluate(recommendation_evaluation_dataset(examples))
    result = {
        "metrics": {name: value for name, value in metrics.items() if "@" in name},
        "ranked": ranked,
        "rankings": full_rankings,
        "targets": [example.target for example in examples],
    }
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    Path(output_dir, f"evaluation.rank{args.process_index}.json").write_text(json.dumps(result))
    if torch.distributed.is_initialized():
        # Without an orderly shutdown, gloo can abort a process at exit (SIGABRT) after the work is done.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
