"""LMIndexerRecommender: every-position training, constrained decoding, recommend(), saving, and its example script.

Tiny random Llama configs (Qwen2 and GPT-2 for the decoding loop); the script runs on the synthetic Beauty files of
`test_retrieval_tasks` (12 items, 7 users), no shared data needed.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from script_runs import run_script
from test_retrieval_tasks import SYNTHETIC_SEQUENCES, write_synthetic_beauty
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    Qwen2Config,
    TrainingArguments,
)

from modeling_lmindexer import LMIndexerRecommender, LMIndexerRecommenderConfig, SemanticIDs
from modeling_lmindexer.data.recommendation import leave_one_out_split, training_windows
from modeling_lmindexer.data.user_files import NamedCorpus
from modeling_lmindexer.id_beam_search import DecoderOnlySteps, search_id_codes
from trainers import LMIndexerRecommenderTrainer, RecommendationCollator, recommendation_training_dataset
from trainers.commands import recommend as recommend_command
from trainers.commands.common import CollaborativeArguments


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ITEMS = [f"item-{index}" for index in range(24)]


def tiny_decoder_config() -> LlamaConfig:
    return LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )


def tiny_recommender(seed: int = 0) -> LMIndexerRecommender:
    # 24 items: 4 x 6 learned codes, a collision level of 2 that no item needs.
    codes = [[index // 6, index % 6, 0] for index in range(len(ITEMS))]
    semantic_ids = SemanticIDs(ITEMS, codes, [4, 6, 2])
    torch.manual_seed(seed)
    return LMIndexerRecommender.from_semantic_ids(
        semantic_ids, decoder_config=tiny_decoder_config(), max_history_length=4
    ).eval()


def test_training_on_every_position_equals_training_one_example_at_a_time():
    """The summed loss of one sequence is the sum of the losses of its next-item examples, each seen alone."""
    model = tiny_recommender()
    window = ["item-3", "item-17", "item-8", "item-22"]
    collator = RecommendationCollator(model.config.num_levels, model.config.pad_token_id)
    batch = collator([{"input_ids": model.sequence_token_ids(window)}])
    num_targets = (batch["labels"] != -100).sum()
    all_positions = model(**batch, num_items_in_batch=1).loss
    one_at_a_time = []
    for position in range(1, len(window)):
        example = collator([{"input_ids": model.sequence_token_ids(window[: position + 1])}])
        # Only the last item is this example's target.
        example["labels"][:, : 1 + position * model.config.num_levels] = -100
        one_at_a_time.append(model(**example, num_items_in_batch=1).loss)
    assert num_targets == (len(window) - 1) * model.config.num_levels
    assert all_positions.item() == pytest.approx(sum(loss.item() for loss in one_at_a_time), rel=1e-5)
    # The loss is the softmax over each position's level only: uniform scores would give log(codebook size).
    with torch.no_grad():
        model.get_input_embeddings().weight.zero_()
    sizes = model.config.codebook_sizes
    uniform = sum(torch.log(torch.tensor(float(size))) for size in sizes) * (len(window) - 1)
    assert model(**batch, num_items_in_batch=1).loss.item() == pytest.approx(uniform.item(), rel=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_packed_rows_train_each_sequence_as_if_it_were_alone(family):
    """Two short sequences share a row (and padding ends it); attention never crosses from one to the other."""
    torch.manual_seed(0)
    model = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(ITEMS, [[index // 6, index % 6, 0] for index in range(len(ITEMS))], [4, 6, 2]),
        decoder_config=decoder_configs()[family],
        max_history_length=4,
    ).eval()
    sequences = [
        ["item-5", "item-6", "item-7", "item-8", "item-9"],  # 16 tokens: the row length
        ["item-1", "item-2"],  # 7 tokens
        ["item-13", "item-20"],  # 7 tokens: packed with the one before, then 2 tokens of padding
    ]
    features = [{"input_ids": model.sequence_token_ids(sequence)} for sequence in sequences]
    packed = RecommendationCollator(model.config.num_levels, model.config.pad_token_id)(features)
    assert packed["input_ids"].shape == (2, 16) and "attention_mask" not in packed
    assert (packed["labels"] != -100).sum(dim=1).tolist() == [12, 3 + 3]
    assert packed["position_ids"][1].tolist() == [*range(7), *range(7), 0, 1]
    padded = RecommendationCollator(model.config.num_levels, model.config.pad_token_id, pack_sequences=False)
    with torch.no_grad():
        separate = [model(**padded([feature]), num_items_in_batch=1).loss.item() for feature in features]
        one_per_row = model(**padded(features), num_items_in_batch=1).loss.item()
        packed_loss = model(**packed, num_items_in_batch=1).loss.item()
    assert packed_loss == pytest.approx(sum(separate), rel=1e-5)
    assert one_per_row == pytest.approx(sum(separate), rel=1e-5)


def test_item_dropout_trains_on_ordered_sub_sequences_of_whole_items():
    """Each batching leaves items out (whole items, order kept, at least two); no dropout leaves sequences as given."""
    model = tiny_recommender()
    num_levels, pad = model.config.num_levels, model.config.pad_token_id
    window = [f"item-{index}" for index in range(20)]
    tokens = model.sequence_token_ids(window)
    items_of = {tuple(tokens[1 + index * num_levels : 1 + (index + 1) * num_levels]): index for index in range(20)}
    plain = RecommendationCollator(num_levels, pad, pack_sequences=False)([{"input_ids": tokens}])
    assert plain["input_ids"][0].tolist() == tokens
    torch.manual_seed(0)
    collator = RecommendationCollator(num_levels, pad, pack_sequences=False, item_dropout=0.3)
    kept_counts, seen = [], set()
    for _ in range(200):
        batch = collator([{"input_ids": tokens}])
        row = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
        assert row[0] == model.config.bos_token_id and (len(row) - 1) % num_levels == 0
        kept = [
            items_of[tuple(row[1 + index * num_levels : 1 + (index + 1) * num_levels])]
            for index in range((len(row) - 1) // num_levels)
        ]
        assert kept == sorted(set(kept)) and len(kept) >= 2
        # Labels follow the shortened sequence: the ID tokens of every kept item after the first.
        assert batch["labels"][0][: len(row)].tolist() == [-100] * (1 + num_levels) + row[1 + num_levels :]
        kept_counts.append(len(kept))
        seen.add(tuple(kept))
    assert np.mean(kept_counts) == pytest.approx(20 * 0.7, abs=0.5)
    assert len(seen) > 150
    # A sequence that would keep fewer than two items is used whole.
    two_items = model.sequence_token_ids(["item-1", "item-2"])
    always = RecommendationCollator(num_levels, pad, item_dropout=0.99)
    assert all(always([{"input_ids": two_items}])["input_ids"][0].tolist() == two_items for _ in range(20))
    with pytest.raises(ValueError, match="item_dropout = 1.0"):
        RecommendationCollator(num_levels, pad, item_dropout=1.0)


def test_label_smoothing_spreads_over_the_level_codes_only():
    """The smoothed loss is, per target, (1 - e) * cross-entropy + e * the mean negative log-probability of its
    level's codes: torch's label smoothing applied to that level's scores alone, and finite."""
    model = tiny_recommender()
    collator = RecommendationCollator(model.config.num_levels, model.config.pad_token_id)
    batch = collator([{"input_ids": model.sequence_token_ids(["item-3", "item-17", "item-8", "item-22"])}])
    with torch.no_grad():
        plain = model(**batch).loss
        model.config.label_smoothing = 0.2
        smoothed = model(**batch).loss
        logits = model(**batch).logits[0, :-1]
    targets = batch["labels"][0, 1:]
    layout = model.config.id_token_layout
    expected = []
    for position in (targets != -100).nonzero()[:, 0].tolist():
        level = layout.level_token_ids(position % model.config.num_levels)
        scores = logits[position, level.start : level.stop]
        target = targets[position] - level.start
        expected.append(torch.nn.functional.cross_entropy(scores, target, label_smoothing=0.2))
    assert smoothed.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    assert smoothed.item() != pytest.approx(plain.item(), rel=1e-3)
    with pytest.raises(ValueError, match="label_smoothing = 1.0"):
        LMIndexerRecommenderConfig(label_smoothing=1.0)


def test_trainer_label_smoothing_factor_sets_the_models_smoothing(tmp_path):
    """`TrainingArguments.label_smoothing_factor` reaches the model's loss: a finite loss equal to the model's own."""
    model = tiny_recommender().train()
    dataset = recommendation_training_dataset(model, [["item-1", "item-2", "item-3"], ["item-4", "item-5"]])
    args = TrainingArguments(
        output_dir=str(tmp_path), label_smoothing_factor=0.1, report_to="none", use_cpu=True, disable_tqdm=True
    )
    trainer = LMIndexerRecommenderTrainer(model, args, train_dataset=dataset)
    assert model.config.label_smoothing == 0.1 and trainer.label_smoother is None
    batch = trainer.data_collator(list(dataset))
    loss = trainer.compute_loss(model, dict(batch))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(model(**batch).loss.item(), rel=1e-6)


def test_training_windows_predict_every_training_target_once():
    sequences = {"u": [f"i{index}" for index in range(12)], "v": ["a", "b", "c"]}
    windows = training_windows(sequences, max_history_length=4)
    split = leave_one_out_split(sequences, max_history_length=4)
    targets = [item for window in windows for item in window[1:]]
    assert sorted(targets) == sorted(example.target for example in split.train)
    assert all(2 <= len(window) <= 5 for window in windows)


def decoder_configs() -> dict[str, PretrainedConfig]:
    """Causal language models of other families, with grouped-query attention where the family has it."""
    return {
        "llama": tiny_decoder_config(),
        "llama-gqa": LlamaConfig(
            **{**tiny_decoder_config().to_dict(), "num_attention_heads": 4, "num_key_value_heads": 2}
        ),
        "qwen2": Qwen2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
            max_position_embeddings=256, tie_word_embeddings=True,
        ),
        "gpt2": GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=256, tie_word_embeddings=True),
    }  # fmt: skip


@pytest.mark.parametrize("family", ["llama", "llama-gqa", "qwen2", "gpt2"])
def test_fast_id_beam_search_returns_the_generic_loops_sequences(family):
    codes = [[index // 6, index % 6, 0] for index in range(len(ITEMS))]
    torch.manual_seed(0)
    model = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(ITEMS, codes, [4, 6, 2]), decoder_config=decoder_configs()[family], max_history_length=4
    ).eval()
    prompts, attention_mask = model.history_prompts([["item-1", "item-2", "item-9"], ["item-20"]])
    arguments = dict(input_ids=prompts, attention_mask=attention_mask, num_beams=6, num_return_sequences=6)
    with torch.no_grad():
        fast = model.generate(**arguments)
        generic = model.generate(**arguments, id_beam_search=False)
    assert torch.equal(fast, generic)
    codes = model.config.id_token_layout.tokens_to_codes(fast[:, prompts.shape[1] : -1])
    assert (model.trie.doc_rows(codes) >= 0).all()  # every generated ID is a catalogue item


def test_beams_share_their_prompts_cache_instead_of_copying_it():
    """The history's keys and values stay one row per user; each beam caches only its own generated tokens."""
    model = tiny_recommender()
    prompts, attention_mask = model.history_prompts([["item-1", "item-2", "item-9"], ["item-20"]])
    steps = DecoderOnlySteps(model, prompts, attention_mask)
    with torch.no_grad():
        codes, scores = search_id_codes(model, steps, batch_size=2, num_beams=6, trie=model.trie)
    assert all(keys.shape[0] == 2 and keys.shape[2] == prompts.shape[1] for keys in steps.prefix.keys)
    assert steps.cache.get_seq_length() == model.config.num_levels - 1
    assert all(layer.keys.shape[0] == 2 * 6 for layer in steps.cache.layers)
    # The same beams as generic beam search (test_fast_id_beam_search_returns_the_generic_loops_sequences).
    assert model.recommend([["item-1", "item-2", "item-9"], ["item-20"]], k=6) == [
        [ITEMS[row] for row in model.trie.doc_rows(user_codes).tolist()] for user_codes in codes
    ]


def test_recommend_renormalizes_logits_as_its_generation_config_says():
    model = tiny_recommender()
    histories = [["item-1", "item-2", "item-9"], ["item-20"]]
    prompts, attention_mask = model.history_prompts(histories)
    rankings = {}
    for renormalize in (False, True):
        model.generation_config.renormalize_logits = renormalize
        with torch.no_grad():
            generic = model.generate(
                input_ids=prompts, attention_mask=attention_mask, num_beams=6, num_return_sequences=6,
                id_beam_search=False,
            )  # fmt: skip
        codes = model.config.id_token_layout.tokens_to_codes(generic[:, prompts.shape[1] : -1])
        generic_items = [ITEMS[row] for row in model.trie.doc_rows(codes).tolist()]
        rankings[renormalize] = model.recommend(histories, k=6)
        assert rankings[renormalize] == [generic_items[:6], generic_items[6:]]
    # Only code 0 of the collision level is used: renormalising over it reorders the items.
    assert rankings[True] != rankings[False]


def test_recommend_on_a_saved_and_reloaded_model_returns_valid_distinct_items(tmp_path):
    model = tiny_recommender()
    histories = [["item-1", "item-2"], ["item-23"], ["item-4", "item-4", "item-9"]]
    rankings, scores = model.recommend(histories, k=10, return_scores=True)
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert isinstance(reloaded, LMIndexerRecommender) and reloaded.semantic_ids == model.semantic_ids
    assert reloaded.recommend(histories, k=10) == rankings
    for ranking, user_scores in zip(rankings, scores):
        assert len(ranking) == len(set(ranking)) == 10 and set(ranking) <= set(ITEMS)
        assert user_scores == sorted(user_scores, reverse=True) and all(score < 0 for score in user_scores)
    # trust_remote_code loading finds the saved code and the Auto class.
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_recommender.LMIndexerRecommender"
    assert "# LMIndexer generative recommender" in (tmp_path / "README.md").read_text()


def test_recommend_learns_a_deterministic_next_item():
    """After a few steps on sequences where item k is always followed by item k + 1, that item ranks first."""
    model = tiny_recommender().train()
    collator = RecommendationCollator(model.config.num_levels, model.config.pad_token_id)
    windows = [[f"item-{start + offset}" for offset in range(4)] for start in range(0, 20)]
    dataset = recommendation_training_dataset(model, windows)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model(**collator(list(dataset))).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    rankings = model.recommend([["item-5", "item-6"], ["item-10", "item-11", "item-12"]], k=3)
    assert [ranking[0] for ranking in rankings] == ["item-7", "item-13"]


def test_bad_input_gets_one_clear_error(caplog, tmp_path):
    model = tiny_recommender()
    with pytest.raises(
        ValueError, match=r"histories\[1\]: 1 item\(s\) are not in the recommender's catalogue.*'nope'"
    ):
        model.recommend([["item-1"], ["item-2", "nope"]])
    # An unknown item older than the max_history_length (4) items read is an error too.
    with pytest.raises(ValueError, match=r"histories\[0\]: 1 item\(s\) are not.*'old-nope'"):
        model.recommend([["old-nope", "item-1", "item-2", "item-3", "item-4"]])
    with pytest.raises(ValueError, match=r"histories\[0\] = \[\]: a history is a non-empty list"):
        model.recommend([[]])
    with pytest.raises(ValueError, match="k = 0"):
        model.recommend([["item-1"]], k=0)
    with caplog.at_level("WARNING", logger="modeling_lmindexer.trie"):
        (ranking,) = model.recommend([["item-1"]], k=100)
    assert sorted(ranking) == sorted(ITEMS)
    assert "k = 100 is more than the 24 catalogue items: ranking all of them." in caplog.text
    LMIndexerRecommender(model.config).save_pretrained(tmp_path / "no-ids")
    without_ids = LMIndexerRecommender.from_pretrained(tmp_path / "no-ids")
    with pytest.raises(ValueError, match="has no semantic IDs"):
        without_ids.recommend([["item-1"]])
    with pytest.raises(ValueError, match="level 1 has codebook size 5 but the recommender's level 1 has 6"):
        model.set_semantic_ids(SemanticIDs(["a"], [[0, 0, 0]], [4, 5, 2]))


def test_bad_histories_are_named_by_their_index_before_anything_is_decoded(monkeypatch):
    model = tiny_recommender().train()
    decoded = []
    monkeypatch.setattr(DecoderOnlySteps, "first", lambda steps: decoded.append(steps) or 1 / 0)
    with pytest.raises(ValueError, match=r"histories\[2\]: 1 item\(s\) are not in the recommender's catalogue"):
        model.recommend([["item-1"], ["item-2"], ["nope"]], batch_size=1)
    assert decoded == [] and model.training
    with pytest.raises(ValueError, match=r"histories = 'item-1' is one string: pass a list of histories"):
        model.recommend("item-1")
    # An error while decoding leaves the model in the mode it was in.
    with pytest.raises(ZeroDivisionError):
        model.recommend([["item-1"]])
    assert model.training


@pytest.mark.parametrize("k_values, message", [
    ([], r"k_values = \[\]: give at least one cut-off"),
    ([0, 10], r"k_values = \[0, 10\]: give at least one cut-off, each at least 1"),
    ([5, 30], "num_beams = 20 must be at least the largest cut-off 30"),
])  # fmt: skip
def test_the_trainer_refuses_cut_offs_it_cannot_rank(k_values, message, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    with pytest.raises(ValueError, match=message):
        LMIndexerRecommenderTrainer(tiny_recommender(), args, k_values=k_values)


def test_forward_counts_positions_from_the_attention_mask_of_left_padded_prompts():
    """Without position_ids, a left-padded prompt gets the logits it gets alone (GPT-2: absolute positions)."""
    torch.manual_seed(0)
    model = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(ITEMS, [[index // 6, index % 6, 0] for index in range(len(ITEMS))], [4, 6, 2]),
        decoder_config=decoder_configs()["gpt2"],
        max_history_length=4,
    ).eval()
    prompts, attention_mask = model.history_prompts([["item-1", "item-2", "item-9"], ["item-20"]])
    with torch.no_grad():
        padded = model(input_ids=prompts, attention_mask=attention_mask).logits
        alone = model(input_ids=prompts[1:, -4:]).logits
    torch.testing.assert_close(padded[1, -4:], alone[0])
    with pytest.raises(ValueError, match="attention_mask has 3 columns for 0 cached and 10 new tokens"):
        model(input_ids=prompts, attention_mask=attention_mask[:, :3])


def test_labels_that_a_position_cannot_produce_are_named():
    model = tiny_recommender()
    input_ids = torch.tensor([model.sequence_token_ids(["item-1", "item-2"])])
    for bad_label in (model.config.vocab_size + 5, model.config.bos_token_id):
        labels = input_ids.clone()
        labels[0, :4] = -100
        labels[0, 5] = bad_label
        with pytest.raises(ValueError, match=rf"labels\[0, 5\] = {bad_label} cannot be produced there"):
            model(input_ids=input_ids, labels=labels)


def test_recommenders_built_from_one_decoder_config_keep_their_own_vocabularies(tmp_path):
    shared = tiny_decoder_config()
    small = LMIndexerRecommender.from_semantic_ids(SemanticIDs(["a", "b"], [[0, 0], [1, 0]], [2, 2]), shared)
    large = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(ITEMS, [[i // 6, i % 6, 0] for i in range(24)], [4, 6, 2]), shared
    )
    assert small.config.decoder_config.vocab_size == 3 + 4 and large.config.decoder_config.vocab_size == 3 + 12
    assert shared.vocab_size == LlamaConfig().vocab_size
    small.save_pretrained(tmp_path)
    assert LMIndexerRecommender.from_pretrained(tmp_path).semantic_ids == small.semantic_ids


def test_a_decoder_config_dict_without_model_type_overrides_the_small_default():
    config = LMIndexerRecommenderConfig(decoder_config={"num_hidden_layers": 2}, codebook_sizes=[4, 6, 2])
    decoder = config.decoder_config
    assert (decoder.model_type, decoder.num_hidden_layers, decoder.hidden_size) == ("llama", 2, 128)
    assert decoder.tie_word_embeddings and decoder.vocab_size == 3 + 12
    gpt2 = LMIndexerRecommenderConfig(decoder_config={"model_type": "gpt2", "n_layer": 1}, codebook_sizes=[4, 6, 2])
    assert (gpt2.decoder_config.n_layer, gpt2.decoder_config.n_embd) == (1, GPT2Config().n_embd)


@pytest.mark.parametrize("dim", [8, 32])
@pytest.mark.parametrize("tied", [True, False])
def test_id_token_embeddings_start_from_codebooks_with_their_dot_products(dim, tied):
    """Projected to the model's width (32) from a space as wide or narrower, the codebook's geometry is kept."""
    codes = [[index // 6, index % 6, 0] for index in range(len(ITEMS))]
    codebooks = [torch.randn(4, dim), torch.randn(6, dim)]
    decoder_config = LlamaConfig(**{**tiny_decoder_config().to_dict(), "tie_word_embeddings": tied})
    model = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(ITEMS, codes, [4, 6, 2]), decoder_config=decoder_config, codebook_vectors=codebooks
    )
    layout = model.config.id_token_layout
    for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        for level, vectors in enumerate(codebooks):
            tokens = layout.level_token_ids(level)
            rows = weight[tokens.start : tokens.stop].detach()
            gram, expected = rows @ rows.T, vectors @ vectors.T
            torch.testing.assert_close(gram / gram[0, 0], expected / expected[0, 0], atol=1e-4, rtol=1e-4)
            assert rows.std().item() == pytest.approx(model.config.initializer_range, rel=1e-3)
    with pytest.raises(
        ValueError, match=r"codebook_vectors\[1\] has shape \(5, 8\); level 1 needs one vector per code: \(6, dim\)"
    ):
        model._initialize_id_embeddings_from([torch.randn(4, 8), torch.randn(5, 8)])


def run_recommendation(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_script(EXAMPLES / "run_recommendation.py", *arguments, cwd=cwd)


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_recommendation_end_to_end_reports_tiger_next_to_ours(tmp_path):
    data_dir = write_synthetic_beauty(tmp_path / "data")
    output_dir = tmp_path / "out"
    completed = run_recommendation(
        "--dataset", "beauty", "--data_dir", str(data_dir), "--id_scheme", "random", "--codebook_sizes", "4", "4",
        "--decoder_config_overrides", "hidden_size=16,intermediate_size=32,num_hidden_layers=1,num_attention_heads=2,"
        "num_key_value_heads=2", "--num_train_epochs", "2", "--per_device_train_batch_size", "4",
        "--max_train_minutes", "5", "--eval_every_minutes", "0.0001", "--output_dir", str(output_dir), cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((output_dir / "recommendation_report.json").read_text())
    assert report["num_test_queries"] == len(SYNTHETIC_SEQUENCES) and report["k_values"] == [5, 10]
    assert report["training"]["next-item targets per epoch"] == sum(
        len(items) - 3 for items in SYNTHETIC_SEQUENCES.values()
    )
    assert report["training"]["epochs done"] == 2.0 and len(report["curve"]) >= 1
    assert 0.0 <= report["metrics"]["recall@10"] <= 1.0
    markdown = (output_dir / "recommendation_report.md").read_text()
    assert "| TIGER (Rajput et al., 2023), published | 0.0454 | 0.0648 | 0.0321 | 0.0384 |" in markdown
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    assert model.config.decoder_config.hidden_size == 16
    assert all(set(ranking) <= {str(item) for item in range(12)} for ranking in model.recommend([["0", "1"]], k=5))


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_recommendation_continues_a_stopped_run_from_its_checkpoint(tmp_path):
    data_dir = write_synthetic_beauty(tmp_path / "data")
    output_dir = tmp_path / "out"

    def run(epochs: str, learning_rate: str) -> subprocess.CompletedProcess:
        return run_recommendation(
            "--dataset", "beauty", "--data_dir", str(data_dir), "--id_scheme", "random", "--codebook_sizes", "4", "4",
            "--decoder_config_overrides", "hidden_size=16,intermediate_size=32,num_hidden_layers=1,"
            "num_attention_heads=2,num_key_value_heads=2", "--per_device_train_batch_size", "4",
            "--save_strategy", "epoch", "--num_train_epochs", epochs, "--learning_rate", learning_rate,
            "--output_dir", str(output_dir), cwd=tmp_path,
        )  # fmt: skip

    first = run("1", "0.001")
    assert first.returncode == 0, first.stderr[-3000:]
    (checkpoint,) = output_dir.glob("checkpoint-*")
    steps_per_epoch = int(checkpoint.name.removeprefix("checkpoint-"))
    # The checkpoint is found and continued: a run at another learning rate is refused before any step...
    refused = run("2", "0.0005")
    error_lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode != 0 and len(error_lines) == 1, refused.stderr[-2000:]
    assert f"{checkpoint.name} was trained at learning rate 0.001" in error_lines[0]
    # ...and one at the same rate trains the second epoch only.
    second = run("2", "0.001")
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Continuing from {checkpoint}" in second.stdout + second.stderr
    report = json.loads((output_dir / "recommendation_report.json").read_text())
    assert report["training"]["optimizer steps"] == 2 * steps_per_epoch and report["training"]["epochs done"] == 2.0


def test_collaborative_embeddings_see_only_the_training_part_of_each_sequence(monkeypatch):
    # "v" and "t" are only ever a validation and a test item, so nothing a model may learn from links them.
    sequences = {"u1": ["a", "b", "c", "v", "t"], "u2": ["b", "a", "c", "v", "t"], "u3": ["c", "b", "a", "a"]}
    documents = NamedCorpus(Dataset.from_dict({"doc_id": ["a", "b", "c", "v", "t"], "text": list("abcvt")}), "toy")
    text = np.eye(5, dtype=np.float32)
    monkeypatch.setattr(recommend_command, "sentence_embeddings", lambda texts, show_progress_bar: text)
    arguments = CollaborativeArguments(collaborative_share=0.5, collaborative_dimension=2)
    blend = recommend_command.collaborative_text_embeddings(arguments, documents, sequences)
    assert blend.shape == (5, 7)
    np.testing.assert_allclose(blend[3:, :5], text[3:], atol=1e-6)  # no co-occurrence: the text direction alone
    assert not blend[3:, 5:].any()
    assert blend[0] @ blend[1] > 0.2  # a and b: their texts are orthogonal, their co-occurrence brings them close


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_recommendation_clusters_baseline_ids_on_text_and_co_occurrence(tmp_path):
    data_dir = write_synthetic_beauty(tmp_path / "data")
    output_dir = tmp_path / "out"
    completed = run_recommendation(
        "--dataset", "beauty", "--data_dir", str(data_dir), "--id_scheme", "kmeans", "--codebook_sizes", "2", "2",
        "--collaborative_share", "0.5", "--collaborative_dimension", "4",
        "--decoder_config_overrides", "hidden_size=16,intermediate_size=32,num_hidden_layers=1,num_attention_heads=2,"
        "num_key_value_heads=2", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
        "--output_dir", str(output_dir), cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((output_dir / "recommendation_report.json").read_text())["id_scheme"] == (
        "kmeans_collaborative0.5"
    )
    saved = SemanticIDs.load(output_dir / "semantic_ids-kmeans_collaborative0.5-seed42.json")
    assert AutoModelForCausalLM.from_pretrained(output_dir).semantic_ids == saved


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_run_recommendation_on_ids_saved_elsewhere(tmp_path):
    data_dir = write_synthetic_beauty(tmp_path / "data")
    items = [str(item) for item in range(12)]
    codes = np.random.default_rng(3).integers(0, 4, size=(12, 2))
    semantic_ids = SemanticIDs.from_learned_codes(items, codes, [4, 4])
    semantic_ids.save(tmp_path / "semantic_ids.json")
    output_dir = tmp_path / "out"
    completed = run_recommendation(
        "--dataset", "beauty", "--data_dir", str(data_dir), "--semantic_ids_file", str(tmp_path / "semantic_ids.json"),
        "--decoder_config_overrides", "hidden_size=16,intermediate_size=32,num_hidden_layers=1,num_attention_heads=2,"
        "num_key_value_heads=2", "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
        "--output_dir", str(output_dir), cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((output_dir / "recommendation_report.json").read_text())["id_scheme"] == "lmindexer"
    assert AutoModelForCausalLM.from_pretrained(output_dir).semantic_ids == semantic_ids


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
@pytest.mark.parametrize("arguments, message", [
    (["--dataset", "cranfield", "--id_scheme", "random"], "unknown recommendation dataset 'cranfield'"),
    (["--dataset", "beauty", "--data_dir", "{empty}", "--id_scheme", "random"], "Beauty.inter.json"),
    (["--id_scheme", "random", "--overwrite_output_dir", "True"], "unrecognized arguments: --overwrite_output_dir"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--id_scheme", "rq"], "unknown --id_scheme 'rq'"),
    (["--dataset", "beauty", "--data_dir", "{data}"], "pass either --indexer"),
    (["--corpus_file", "{empty}/items.jsonl", "--dataset_name", "me/items", "--id_scheme", "random"],
     "pass either --corpus_file or --dataset_name, not both"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--id_scheme", "random", "--eval_every_minutes", "1"],
     "--eval_every_minutes counts training minutes: add --max_train_minutes"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--indexer", "{empty}/gone"],
     "cannot load the indexer '{empty}/gone': no such folder, nor a Hub repository"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--id_scheme", "random", "--num_beams", "5"],
     "--num_beams 5 must be at least the largest cut-off 10"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--semantic_ids_file", "{empty}/ids.json"],
     "cannot read --semantic_ids_file"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--semantic_ids_file", "{empty}/ids.json", "--indexer",
      "{empty}"], "--semantic_ids_file brings the IDs alone"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--semantic_ids_file", "{empty}/ids.json", "--id_scheme", "dsi"],
     "--id_scheme 'dsi' cannot name saved IDs"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--id_scheme", "rq_kmeans", "--collaborative_share", "1"],
     "--collaborative_share 1.0 must lie in [0, 1)"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--id_scheme", "random", "--collaborative_share", "0.5"],
     "use it with --id_scheme kmeans|rq_kmeans and no --semantic_ids_file"),
    (["--dataset", "beauty", "--data_dir", "{data}", "--id_scheme", "random", "--resume_from_checkpoint", "{empty}"],
     "not a checkpoint folder (no trainer_state.json)"),
])  # fmt: skip
def test_bad_input_stops_the_script_with_one_error_line(arguments, message, tmp_path):
    (tmp_path / "empty").mkdir()
    data_dir = write_synthetic_beauty(tmp_path / "data")
    arguments = [argument.format(empty=tmp_path / "empty", data=data_dir) for argument in arguments]
    message = message.format(empty=tmp_path / "empty")
    completed = run_recommendation(*arguments, "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert completed.returncode != 0 and len(error_lines) == 1 and message in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
