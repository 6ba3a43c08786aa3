#!/usr/bin/env python
"""Time constrained ID decoding: `python benchmarks/bench_decoding.py [--quick] [--model_size small|tiny]`.

One randomly initialised retriever (a T5-small-shaped backbone over the 32,100-token T5 vocabulary, wrapped by
`LMIndexerRetriever.from_backbone`; random weights do not change the cost of decoding) decodes a batch of 16 random
32-token queries with beam search, `num_return_sequences = num_beams` and `max_new_tokens = num_levels + 1`, five ways:

- (a) `trie`: full vocabulary head + our `TrieConstrainedLogitsProcessor`;
- (b) `prefix_fn`: full vocabulary head + `prefix_allowed_tokens_fn=DictTrie(...).prefix_allowed_tokens_fn` (the
  GENRE way, `constrain_to_trie=False`);
- (c) `unconstrained`: full vocabulary head, no constraint;
- (d) `id_only_trie`: the ID-only output head + `TrieConstrainedLogitsProcessor`, decoded by the retriever's own
  `id_beam_search` (the default of `generate()` with the ID-only head);
- (e) `id_only_trie_generic`: the same, decoded by `GenerationMixin`'s generic beam search (`id_beam_search=False`);

at 10^3, 10^4, 10^5 and 10^6 random unique IDs of 3 levels x 256 codes, with 10 and 20 beams. Every cell warms up
once, then times `--repeats` runs of every method round-robin (the starting method rotates) and reports the median,
min and max milliseconds per query (batch time / 16); the ratios (a)/(c), (b)/(a) and (b)/(d) come from the medians
of one cell. It also checks that (a) and (b), and (d) and (e), return the same sequences and that (a) and (d) return
only valid IDs, and measures the build time and memory of the tensor trie (`IDTrie`) and of the dict trie
(`DictTrie`, tracemalloc).

Masking alone: for every cell it also times the two constraint implementations by themselves, outside any model, on
the inputs of every decoding step (the decoder start token plus the prefixes of random indexed IDs, random scores
over the whole vocabulary): our `TrieConstrainedLogitsProcessor` against transformers'
`PrefixConstrainedLogitsProcessor` calling `DictTrie.prefix_allowed_tokens_fn` (what `prefix_allowed_tokens_fn=`
runs).

Under load: for the largest cell with 20 beams, the masking alone (the trie processor with one torch thread, its
default, and with all `--threads`; the dict trie) and the default decoding (d) with all `--threads` and with one are
timed on the quiet machine and again beside a CPU-bound process (a Python busy loop holding one core), side by side.

Writes `decoding.json` + `decoding.md` (`decoding_quick.*` with `--quick`, which runs the 10^4 cell only) to
`--results_dir`, with the machine, commit, seed and the acceptance ratios at 10^6 IDs / 20 beams (PASS/FAIL; a
`--quick` run shows them at 10^4 IDs, marked as indicative). Run it alone on the machine; the full grid takes a few
minutes on 2 cores, `--quick` (3 timed runs per method by default instead of 5) under a minute.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration
from transformers.generation.logits_process import PrefixConstrainedLogitsProcessor


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from modeling_lmindexer import (  # noqa: E402
    IDTrie,
    LMIndexerRetriever,
    SemanticIDs,
    TrieConstrainedLogitsProcessor,
)
from modeling_lmindexer.dict_trie import DictTrie  # noqa: E402
from trainers.report import machine_info, repository_relative  # noqa: E402


logger = logging.getLogger(__name__)

ID_COUNTS = (10**3, 10**4, 10**5, 10**6)
QUICK_ID_COUNTS = (10**4,)
BEAM_WIDTHS = (10, 20)
CODEBOOK_SIZES = (256, 256, 256)
BATCH_SIZE = 16
QUERY_LENGTH = 32
T5_VOCAB_SIZE = 32100
PAD_TOKEN_ID, EOS_TOKEN_ID = 0, 1
BUILD_REPEATS = 3
DEFAULT_REPEATS = 5
# Keeps --quick under a minute on 2 cores.
QUICK_REPEATS = 3
METHODS = {
    "trie": "(a) full head + trie processor",
    "prefix_fn": "(b) full head + prefix_allowed_tokens_fn (DictTrie)",
    "unconstrained": "(c) full head, unconstrained",
    "id_only_trie": "(d) ID-only head + trie, id_beam_search",
    "id_only_trie_generic": "(e) ID-only head + trie processor, generic beam search",
}
# name: (numerator method, denominator method)
RATIOS = {
    "trie_over_unconstrained": ("trie", "unconstrained"),
    "prefix_fn_over_trie": ("prefix_fn", "trie"),
    "prefix_fn_over_id_only_trie": ("prefix_fn", "id_only_trie"),
    "id_only_trie_generic_over_id_only_trie": ("id_only_trie_generic", "id_only_trie"),
}
ACCEPTANCE_CELL = (10**6, 20)
# name: (what is measured, comparison, target)
ACCEPTANCE_TARGETS = {
    "trie_over_unconstrained": ("(a)/(c): trie masking cost over unconstrained decoding", "<=", 1.15),
    "prefix_fn_over_trie": ("(b)/(a): speed-up of the trie over prefix_allowed_tokens_fn, whole decoding", ">=", 1.5),
    "masking_prefix_fn_over_trie": (
        "(b)/(a): speed-up of the trie over prefix_allowed_tokens_fn, masking alone",
        ">=",
        1.5,
    ),
    "prefix_fn_over_id_only_trie": ("(b)/(d): speed-up of the ID-only head + trie over (b)", ">=", 3.0),
    "trie_bytes_per_id": ("trie memory per ID (bytes)", "<=", 32.0),
}


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Only the 10^4-ID cells (both beam widths).")
    parser.add_argument("--model_size", choices=("small", "tiny"), default="small", help="tiny is for smoke tests.")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"Timed runs per method and cell after warm-up (default {DEFAULT_REPEATS}, {QUICK_REPEATS} if --quick).",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--results_dir", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
    if args.repeats < 1 or args.threads < 1:
        parser.error(f"--repeats and --threads must be at least 1, got {args.repeats} and {args.threads}")
    return args


def backbone_config(model_size: str) -> T5Config:
    """A T5-small-shaped config (`small`) or a 1-layer, 32-wide one (`tiny`), both over the T5 vocabulary."""
    shape = dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8)
    if model_size == "tiny":
        shape = dict(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4)
    return T5Config(
        vocab_size=T5_VOCAB_SIZE,
        num_decoder_layers=shape["num_layers"],
        dropout_rate=0.0,
        decoder_start_token_id=PAD_TOKEN_ID,
        pad_token_id=PAD_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,
        **shape,
    )


def random_semantic_ids(num_ids: int, seed: int) -> SemanticIDs:
    """`num_ids` distinct random IDs of `CODEBOOK_SIZES`, the same for a given `(num_ids, seed)` in every run."""
    rng = np.random.default_rng((seed, num_ids))
    flat = rng.choice(int(np.prod(CODEBOOK_SIZES)), size=num_ids, replace=False)
    codes = np.stack(np.unravel_index(flat, CODEBOOK_SIZES), axis=1)
    return SemanticIDs([str(row) for row in range(num_ids)], codes, CODEBOOK_SIZES)


def random_queries(seed: int) -> dict[str, torch.Tensor]:
    """`BATCH_SIZE` random text-token queries of `QUERY_LENGTH` tokens (no special tokens)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(EOS_TOKEN_ID + 1, T5_VOCAB_SIZE, (BATCH_SIZE, QUERY_LENGTH), generator=generator)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def build_retriever(model_size: str, semantic_ids: SemanticIDs, seed: int) -> LMIndexerRetriever:
    """The one retriever every method and ID count uses (full head by default; see [`output_head`])."""
    torch.manual_seed(seed)
    backbone = T5ForConditionalGeneration(backbone_config(model_size))
    return LMIndexerRetriever.from_backbone(backbone, semantic_ids, id_only_head=False).eval()


@contextmanager
def output_head(model: LMIndexerRetriever, id_only: bool) -> Iterator[None]:
    """Decode with the ID-only head (`id_only=True`) or the full vocabulary head: the same weights either way."""
    previous = model.config.id_only_head
    model.config.id_only_head = id_only
    try:
        yield
    finally:
        model.config.id_only_head = previous


def decode(
    model: LMIndexerRetriever, method: str, queries: dict[str, torch.Tensor], num_beams: int, dict_trie: DictTrie
) -> torch.LongTensor:
    """Beam search with one of the `METHODS`; returns the sequences `(BATCH_SIZE * num_beams, 2 + num_levels)`."""
    id_only = method.startswith("id_only")
    constraint = {"constrain_to_trie": method != "prefix_fn" and method != "unconstrained"}
    if method == "prefix_fn":
        constraint["prefix_allowed_tokens_fn"] = dict_trie.prefix_allowed_tokens_fn
    with output_head(model, id_only=id_only):
        return model.generate(
            **queries,
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=model.config.num_levels + 1,
            do_sample=False,
            id_beam_search=method == "id_only_trie",
            **constraint,
        )


def masking_milliseconds(
    model: LMIndexerRetriever,
    semantic_ids: SemanticIDs,
    processors: dict[str, Callable],
    num_beams: int,
    repeats: int,
    seed: int,
) -> dict[str, dict[str, float]]:
    """
    Milliseconds per batch that each processor alone spends on the `num_levels + 1` steps of one beam search
    (summary of `repeats` round-robin runs): every step gets `BATCH_SIZE * num_beams` rows of the decoder start token
    and the prefixes of random indexed IDs, and random scores over the whole vocabulary.
    """
    generator = torch.Generator().manual_seed(seed)
    num_rows = BATCH_SIZE * num_beams
    rows = torch.randint(len(semantic_ids), (num_rows,), generator=generator)
    id_tokens = model.config.id_token_layout.codes_to_tokens(
        torch.as_tensor(semantic_ids.codes[rows.numpy()], dtype=torch.long)
    )
    start = torch.full((num_rows, 1), model.config.decoder_start_token_id)
    steps = [
        (
            torch.cat([start, id_tokens[:, :length]], dim=1),
            torch.randn(num_rows, model.config.vocab_size, generator=generator),
        )
        for length in range(model.config.num_levels + 1)
    ]
    for processor in processors.values():  # warm-up
        for input_ids, scores in steps:
            processor(input_ids, scores)

    def mask_every_step(name: str) -> None:
        for input_ids, scores in steps:
            processors[name](input_ids, scores)

    seconds = round_robin_seconds(mask_every_step, list(processors), repeats)
    return {name: millisecond_summary(durations) for name, durations in seconds.items()}


def masking_costs(
    model: LMIndexerRetriever, semantic_ids: SemanticIDs, dict_trie: DictTrie, num_beams: int, repeats: int, seed: int
) -> dict:
    """The trie processor against `prefix_allowed_tokens_fn`, masking alone (see [`masking_milliseconds`])."""
    processors = {
        "trie": model.trie_logits_processor(),
        "prefix_fn": PrefixConstrainedLogitsProcessor(dict_trie.prefix_allowed_tokens_fn, num_beams),
    }
    ms_per_batch = masking_milliseconds(model, semantic_ids, processors, num_beams, repeats, seed)
    return {
        "ms_per_batch": ms_per_batch,
        "prefix_fn_over_trie": round(ms_per_batch["prefix_fn"]["median"] / ms_per_batch["trie"]["median"], 3),
    }


# One core held by a CPU-bound process that allocates nothing, as other work on a shared machine would.
BUSY_LOOP = "while True:\n    pass\n"
LOAD_BEAMS = 20


@contextmanager
def cpu_bound_process() -> Iterator[None]:
    """Run the block beside a Python busy loop in another process (started 0.5 s before, killed after)."""
    process = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def load_comparison(
    model: LMIndexerRetriever,
    queries: dict[str, torch.Tensor],
    dict_trie: DictTrie,
    threads: int,
    repeats: int,
    seed: int,
) -> dict:
    """
    The thread policy on a quiet machine and beside a CPU-bound process: milliseconds per batch of the masking alone
    (trie processor with 1 thread and with `threads`, dict trie) and milliseconds per query of the default decoding
    (d) with `threads` torch threads and with 1, at `LOAD_BEAMS` beams.
    """
    trie = model.trie
    layout = {
        "text_vocab_size": model.config.text_vocab_size,
        "eos_token_id": model.config.eos_token_id,
        "pad_token_id": model.config.pad_token_id,
    }
    processors = {
        "trie, 1 thread": TrieConstrainedLogitsProcessor(trie, **layout, num_threads=1),
        f"trie, {threads} threads": TrieConstrainedLogitsProcessor(trie, **layout, num_threads=threads),
        "prefix_fn": PrefixConstrainedLogitsProcessor(dict_trie.prefix_allowed_tokens_fn, LOAD_BEAMS),
    }
    decoding_threads = {f"(d), {threads} threads": threads, "(d), 1 thread": 1}
    conditions = {}
    for condition in ("quiet", "beside a CPU-bound process"):
        with cpu_bound_process() if condition != "quiet" else nullcontext():
            masking = masking_milliseconds(model, model.semantic_ids, processors, LOAD_BEAMS, repeats, seed)

            def decode_with_threads(name: str) -> None:
                torch.set_num_threads(decoding_threads[name])
                decode(model, "id_only_trie", queries, LOAD_BEAMS, dict_trie)

            seconds = round_robin_seconds(decode_with_threads, list(decoding_threads), repeats)
            torch.set_num_threads(threads)
        decoding = {name: millisecond_summary(durations, BATCH_SIZE) for name, durations in seconds.items()}
        conditions[condition] = {"masking_ms_per_batch": masking, "decoding_ms_per_query": decoding}
    return {"num_ids": len(model.semantic_ids), "num_beams": LOAD_BEAMS, "threads": threads, "conditions": conditions}


def valid_id_fraction(model: LMIndexerRetriever, sequences: torch.LongTensor) -> float:
    """Share of sequences that are an indexed ID followed by `eos_token_id`."""
    num_levels = model.config.num_levels
    if sequences.shape[1] < 2 + num_levels:
        return 0.0
    is_indexed = torch.tensor(
        [doc_id is not None for doc_id in model.doc_ids_from_sequences(sequences)], device=sequences.device
    )
    ends = sequences[:, 1 + num_levels] == model.config.eos_token_id
    return float((is_indexed & ends).float().mean())


def millisecond_summary(seconds: Sequence[float], divisor: int = 1) -> dict[str, float]:
    """Median, min and max of durations in seconds, as milliseconds divided by `divisor`."""
    milliseconds = [1000 * value / divisor for value in seconds]
    return {
        "median": round(statistics.median(milliseconds), 3),
        "min": round(min(milliseconds), 3),
        "max": round(max(milliseconds), 3),
    }


def synchronize(device: torch.device | None) -> None:
    """Wait for the device's queued work: a clock read after it times the work, not its queueing."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def round_robin_seconds(
    run: Callable[[str], object], names: Sequence[str], repeats: int, device: torch.device | None = None
) -> dict[str, list[float]]:
    """
    `repeats` rounds of `run(name)` for every name, each round starting one name later so that noise, warm caches and
    position in the round hit every name alike: the wall seconds of every call per name, each timed between two
    synchronisations of `device` (on CUDA a call returns before its work is done).
    """
    seconds = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in [*names[shift:], *names[:shift]]:
            synchronize(device)
            start = time.perf_counter()
            run(name)
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def timed(function: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    """Run `function` `repeats` times; the durations in seconds and the last result."""
    durations, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        durations.append(time.perf_counter() - start)
    return durations, result


def trie_costs(semantic_ids: SemanticIDs) -> dict:
    """Build time (median of `BUILD_REPEATS`) and memory of the tensor trie and of the dict trie."""
    codes, num_ids = semantic_ids.codes, len(semantic_ids)
    trie_seconds, trie = timed(lambda: IDTrie.from_codes(codes, CODEBOOK_SIZES), BUILD_REPEATS)
    dict_trie_seconds, _ = timed(lambda: make_dict_trie(semantic_ids), BUILD_REPEATS)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    dict_trie = make_dict_trie(semantic_ids)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del dict_trie
    return {
        "num_ids": num_ids,
        "trie_build_ms": millisecond_summary(trie_seconds),
        "trie_bytes": trie.nbytes,
        "trie_bytes_per_id": round(trie.bytes_per_id, 2),
        "dict_trie_build_ms": millisecond_summary(dict_trie_seconds),
        "dict_trie_bytes": retained - before,
        "dict_trie_bytes_per_id": round((retained - before) / num_ids, 2),
        "dict_trie_build_peak_bytes": peak - before,
    }


def make_dict_trie(semantic_ids: SemanticIDs) -> DictTrie:
    return DictTrie(semantic_ids.codes, CODEBOOK_SIZES, T5_VOCAB_SIZE, EOS_TOKEN_ID, PAD_TOKEN_ID)


def time_cell(
    model: LMIndexerRetriever,
    queries: dict[str, torch.Tensor],
    num_beams: int,
    dict_trie: DictTrie,
    repeats: int,
    seed: int,
) -> dict:
    """One cell of the grid: warm-up and checks, then `repeats` round-robin timed runs of every method."""
    methods = list(METHODS)
    warm_up = {method: decode(model, method, queries, num_beams, dict_trie) for method in methods}
    seconds = round_robin_seconds(
        lambda method: decode(model, method, queries, num_beams, dict_trie), methods, repeats, model.device
    )
    ms_per_query = {method: millisecond_summary(seconds[method], BATCH_SIZE) for method in methods}
    return {
        "num_ids": len(model.semantic_ids),
        "num_beams": num_beams,
        "ms_per_query": ms_per_query,
        "ratios": {
            name: round(ms_per_query[numerator]["median"] / ms_per_query[denominator]["median"], 3)
            for name, (numerator, denominator) in RATIOS.items()
        },
        "masking": masking_costs(model, model.semantic_ids, dict_trie, num_beams, repeats, seed),
        "checks": {
            "trie_matches_prefix_fn": torch.equal(warm_up["trie"], warm_up["prefix_fn"]),
            "id_beam_search_matches_generic": torch.equal(warm_up["id_only_trie"], warm_up["id_only_trie_generic"]),
            "trie_only_valid_ids": valid_id_fraction(model, warm_up["trie"]) == 1.0,
            "id_only_trie_only_valid_ids": valid_id_fraction(model, warm_up["id_only_trie"]) == 1.0,
            "unconstrained_valid_id_fraction": valid_id_fraction(model, warm_up["unconstrained"]),
        },
    }


def acceptance(cells: list[dict], tries: list[dict]) -> dict:
    """
    The targets at `ACCEPTANCE_CELL`; without that cell (a `--quick` run), the same ratios at the largest measured
    cell, marked as not the target cell.
    """
    cell = max(cells, key=lambda cell: (cell["num_ids"], cell["num_beams"]))
    trie = next(trie for trie in tries if trie["num_ids"] == cell["num_ids"])
    values = {
        **cell["ratios"],
        "masking_prefix_fn_over_trie": cell["masking"]["prefix_fn_over_trie"],
        "trie_bytes_per_id": trie["trie_bytes_per_id"],
    }
    criteria = []
    for name, (description, comparison, target) in ACCEPTANCE_TARGETS.items():
        value = values[name]
        passed = value <= target if comparison == "<=" else value >= target
        criteria.append(
            {
                "name": name,
                "description": description,
                "value": value,
                "target": f"{comparison} {target}",
                "passed": passed,
            }
        )
    return {
        "num_ids": cell["num_ids"],
        "num_beams": cell["num_beams"],
        "at_target_cell": (cell["num_ids"], cell["num_beams"]) == ACCEPTANCE_CELL,
        "criteria": criteria,
    }


def model_summary(model: LMIndexerRetriever, model_size: str) -> dict:
    backbone_config = model.backbone.config
    return {
        "model_size": model_size,
        "backbone": "T5ForConditionalGeneration (random weights)",
        "d_model": backbone_config.d_model,
        "d_ff": backbone_config.d_ff,
        "num_layers": backbone_config.num_layers,
        "num_heads": backbone_config.num_heads,
        "text_vocab_size": model.config.text_vocab_size,
        "vocab_size": model.config.vocab_size,
        "codebook_sizes": list(model.config.codebook_sizes),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
    }


def format_range(summary: dict[str, float]) -> str:
    return f"{summary['median']:.2f} ({summary['min']:.2f}-{summary['max']:.2f})"


def markdown_report(result: dict) -> str:
    machine, model = result["machine"], result["model"]
    lines = [
        "# Decoding benchmark" + (" (quick)" if result["arguments"]["quick"] else ""),
        "",
        f"Command: `{result['command']}`; machine: {machine.get('platform')}, {machine.get('cpu_count')} CPUs, "
        f"{result['threads']} torch threads, torch {machine.get('torch')}; commit {machine.get('git_commit')}; "
        f"seed {result['seed']}.",
        "",
        f"Model: random {model['backbone']}, d_model {model['d_model']}, d_ff {model['d_ff']}, {model['num_layers']} "
        f"+ {model['num_layers']} layers, {model['num_heads']} heads, {model['text_vocab_size']} text + "
        f"{model['vocab_size'] - model['text_vocab_size']} ID tokens ({model['parameters'] / 1e6:.1f}M parameters). "
        f"Batch of {BATCH_SIZE} random {QUERY_LENGTH}-token queries, `num_return_sequences = num_beams`, "
        f"`max_new_tokens = {len(CODEBOOK_SIZES) + 1}`, random unique IDs of {len(CODEBOOK_SIZES)} levels x "
        f"{CODEBOOK_SIZES[0]} codes.",
        "",
        f"## Milliseconds per query: median (min-max) of {result['arguments']['repeats']} round-robin runs",
        "",
        "| IDs | beams | "
        + " | ".join(METHODS.values())
        + " | (a)/(c) | (b)/(a) | (b)/(d) | (e)/(d) | (a) = (b) | (d) = (e) | (a), (d) valid |",
        "|---|---|" + "---|" * (len(METHODS) + 7),
    ]
    for cell in result["cells"]:
        timings = " | ".join(format_range(cell["ms_per_query"][method]) for method in METHODS)
        ratios = " | ".join(f"{cell['ratios'][name]:.2f}" for name in RATIOS)
        checks = cell["checks"]
        valid = checks["trie_only_valid_ids"] and checks["id_only_trie_only_valid_ids"]
        lines.append(
            f"| {cell['num_ids']:,} | {cell['num_beams']} | {timings} | {ratios} | "
            f"{checks['trie_matches_prefix_fn']} | {checks['id_beam_search_matches_generic']} | {valid} |"
        )
    lines += [
        "",
        f"## Masking alone: milliseconds per batch of {BATCH_SIZE} queries, all {len(CODEBOOK_SIZES) + 1} steps",
        "",
        "Median (min-max) of the same number of round-robin runs, outside the model.",
        "",
        "| IDs | beams | (a) TrieConstrainedLogitsProcessor | (b) PrefixConstrainedLogitsProcessor + DictTrie "
        "| (b)/(a) |",
        "|---|---|---|---|---|",
    ]
    for cell in result["cells"]:
        masking = cell["masking"]
        lines.append(
            f"| {cell['num_ids']:,} | {cell['num_beams']} | {format_range(masking['ms_per_batch']['trie'])} | "
            f"{format_range(masking['ms_per_batch']['prefix_fn'])} | {masking['prefix_fn_over_trie']:.2f} |"
        )
    load = result["under_load"]
    quiet, loaded = (load["conditions"][name] for name in ("quiet", "beside a CPU-bound process"))
    lines += [
        "",
        f"## Under load: {load['num_ids']:,} IDs, {load['num_beams']} beams, quiet and beside a CPU-bound process",
        "",
        "Median (min-max) of the same number of round-robin runs; masking in milliseconds per batch, decoding in "
        "milliseconds per query; the CPU-bound process is a Python busy loop holding one core.",
        "",
        "| what | quiet | beside a CPU-bound process | loaded / quiet |",
        "|---|---|---|---|",
    ]
    for kind, key in (("masking", "masking_ms_per_batch"), ("decoding", "decoding_ms_per_query")):
        for name in quiet[key]:
            ratio = loaded[key][name]["median"] / quiet[key][name]["median"]
            lines.append(
                f"| {kind}: {name} | {format_range(quiet[key][name])} | {format_range(loaded[key][name])} | "
                f"{ratio:.2f} |"
            )
    lines += [
        "",
        "## Tries",
        "",
        f"Build times: median (min-max) of {BUILD_REPEATS} builds. `DictTrie` memory: tracemalloc, what the built "
        "trie keeps (its build peaks higher).",
        "",
        "| IDs | IDTrie build (ms) | IDTrie bytes | IDTrie bytes/ID | DictTrie build (ms) | DictTrie bytes | "
        "DictTrie bytes/ID | DictTrie build peak (bytes) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for trie in result["tries"]:
        lines.append(
            f"| {trie['num_ids']:,} | {format_range(trie['trie_build_ms'])} | {trie['trie_bytes']:,} | "
            f"{trie['trie_bytes_per_id']} | {format_range(trie['dict_trie_build_ms'])} | "
            f"{trie['dict_trie_bytes']:,} | {trie['dict_trie_bytes_per_id']} | "
            f"{trie['dict_trie_build_peak_bytes']:,} |"
        )
    verdict = result["acceptance"]
    cell_name = f"{verdict['num_ids']:,} IDs / {verdict['num_beams']} beams"
    lines += ["", f"## Acceptance at {cell_name}", ""]
    if not verdict["at_target_cell"]:
        lines += [
            f"The targets are set at {ACCEPTANCE_CELL[0]:,} IDs / {ACCEPTANCE_CELL[1]} beams, which this run did not "
            "measure: the verdicts below are indicative only.",
            "",
        ]
    lines += ["| criterion | value | target | verdict |", "|---|---|---|---|"]
    for criterion in verdict["criteria"]:
        lines.append(
            f"| {criterion['description']} | {criterion['value']} | {criterion['target']} | "
            f"{'PASS' if criterion['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark, write `decoding[_quick].json` + `.md` to `--results_dir`, and return the JSON content."""
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    id_counts = QUICK_ID_COUNTS if args.quick else ID_COUNTS
    queries = random_queries(args.seed)
    cells, tries, model = [], [], None
    with torch.inference_mode():
        for num_ids in id_counts:
            semantic_ids = random_semantic_ids(num_ids, args.seed)
            if model is None:
                model = build_retriever(args.model_size, semantic_ids, args.seed)
            else:
                model.set_semantic_ids(semantic_ids)
            tries.append(trie_costs(semantic_ids))
            dict_trie = make_dict_trie(semantic_ids)
            for num_beams in BEAM_WIDTHS:
                logger.info(f"Timing {num_ids:,} IDs, {num_beams} beams.")
                cells.append(time_cell(model, queries, num_beams, dict_trie, args.repeats, args.seed))
    with torch.inference_mode():
        under_load = load_comparison(model, queries, dict_trie, args.threads, args.repeats, args.seed)
    result = {
        "benchmark": "decoding",
        "command": " ".join(["python", "benchmarks/bench_decoding.py", *(argv if argv is not None else sys.argv[1:])]),
        "arguments": {**vars(args), "results_dir": repository_relative(args.results_dir)},
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "machine": machine_info(),
        "model": model_summary(model, args.model_size),
        "batch_size": BATCH_SIZE,
        "query_length": QUERY_LENGTH,
        "methods": METHODS,
        "cells": cells,
        "tries": tries,
        "acceptance": acceptance(cells, tries),
        "under_load": under_load,
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "decoding_quick" if args.quick else "decoding"
    (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
    report = markdown_report(result)
    (results_dir / f"{name}.md").write_text(report)
    logger.info(f"Wrote {results_dir / name}.json and .md:\n{report}")
    return result


if __name__ == "__main__":
    logging.basicConfig(
        format="%(asctime)s - %(message)s", level=logging.INFO, handlers=[logging.StreamHandler(sys.stdout)]
    )
    main()
