"""Hugging Face Hub behaviour: save/load round trip, Auto classes, trust_remote_code, push_to_hub commit contents."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_indexer_config
from huggingface_hub import HfApi, ModelCard
from safetensors.torch import load_file
from test_retriever import tiny_retriever
from transformers import AutoConfig, AutoModel, LlamaConfig
from transformers.pipelines import SUPPORTED_TASKS

from modeling_lmindexer import LMIndexerConfig, LMIndexerForSemanticID, LMIndexerRecommender, SemanticIDs


CODE_FILES = {
    "configuration_lmindexer.py",
    "modeling_lmindexer.py",
    "codebook.py",
    "reconstructor.py",
    "semantic_ids.py",
}
INPUT_IDS = [[37, 1782, 19, 3, 9, 1], [8, 1365, 13, 5, 1, 0]]
ATTENTION_MASK = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]


@pytest.fixture(scope="module")
def trained_model(t5_tokenizer) -> LMIndexerForSemanticID:
    torch.manual_seed(0)
    config = tiny_indexer_config(dataset_name="synthetic-products", indexing_metrics={"ami_level_1": 0.5})
    model = LMIndexerForSemanticID(config).eval()
    texts = [f"product number {i} in colour {colour}" for i in range(12) for colour in ("red", "blue")]
    model.assign_ids(texts, t5_tokenizer, doc_ids=[f"item-{i}" for i in range(len(texts))])
    return model


def hyper_parameters(config: LMIndexerConfig) -> dict:
    """The config without load-time metadata (source path, dtype read from the weights)."""
    values = config.to_dict()
    values.pop("_name_or_path", None)
    values["seq2seq_config"].pop("dtype", None)
    return values


def reference_codes(model: LMIndexerForSemanticID) -> list[list[int]]:
    return model.predict_codes(torch.tensor(INPUT_IDS), torch.tensor(ATTENTION_MASK)).tolist()


def test_save_and_load_round_trip_bit_exactly(trained_model, tmp_path):
    trained_model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "semantic_ids.json",
        "prefix_group_means.safetensors",
        "README.md",
    } <= files
    assert CODE_FILES <= files
    assert not any(name.endswith(".bin") for name in files)

    loaded = LMIndexerForSemanticID.from_pretrained(tmp_path).eval()
    original_state, loaded_state = trained_model.state_dict(), loaded.state_dict()
    assert original_state.keys() == loaded_state.keys()
    for name, tensor in original_state.items():
        assert torch.equal(tensor, loaded_state[name]), name
    assert loaded.semantic_ids == trained_model.semantic_ids
    original_means, loaded_means = (
        trained_model.prefix_group_means.to_tensors(),
        loaded.prefix_group_means.to_tensors(),
    )
    assert original_means.keys() == loaded_means.keys() and original_means
    for name, tensor in original_means.items():
        assert torch.equal(tensor, loaded_means[name]), name
    assert reference_codes(loaded) == reference_codes(trained_model)
    assert hyper_parameters(loaded.config) == hyper_parameters(trained_model.config)
    assert set(load_file(tmp_path / "model.safetensors")) <= set(original_state)


def test_saved_config_carries_auto_map(trained_model, tmp_path):
    trained_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "lmindexer"
    assert config["auto_map"] == {
        "AutoConfig": "configuration_lmindexer.LMIndexerConfig",
        "AutoModel": "modeling_lmindexer.LMIndexerForSemanticID",
    }


def test_auto_classes_return_our_classes(trained_model, tmp_path):
    trained_model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LMIndexerConfig)
    model = AutoModel.from_pretrained(tmp_path)
    assert isinstance(model, LMIndexerForSemanticID)
    assert model.semantic_ids == trained_model.semantic_ids


def test_loading_refuses_ids_of_other_codebook_sizes(trained_model, tmp_path):
    trained_model.save_pretrained(tmp_path)
    ids = json.loads((tmp_path / "semantic_ids.json").read_text())
    ids["codebook_sizes"][1] = 7
    (tmp_path / "semantic_ids.json").write_text(json.dumps(ids))
    with pytest.raises(ValueError, match="level 1 has codebook size 7 but the model's level 1 has 6"):
        LMIndexerForSemanticID.from_pretrained(tmp_path)


def run_python(script: str, env: dict[str, str], cwd: Path) -> dict:
    """Run `script` in a fresh interpreter and return the JSON it prints last."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def isolated_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "PYTHONPATH"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    return env


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_exact_user_call_loads_from_hub_cache_offline(trained_model, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_cache = tmp_path / "hub" / "models--org--lmindexer-beauty"
    trained_model.save_pretrained(repo_cache / "snapshots" / commit)
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text(commit)
    env = isolated_env(tmp_path)
    env["HF_HUB_CACHE"] = str(tmp_path / "hub")
    result = run_python(
        f"""
        import json, torch
        import modeling_lmindexer
        from transformers import AutoModel
        model = AutoModel.from_pretrained("org/lmindexer-beauty").eval()
        codes = model.predict_codes(torch.tensor({INPUT_IDS}), torch.tensor({ATTENTION_MASK})).tolist()
        print(json.dumps({{"class": type(model).__name__, "codes": codes, "ids": model.semantic_ids.to_dict()}}))
        """,
        env,
        tmp_path,
    )
    assert result["class"] == "LMIndexerForSemanticID"
    assert result["codes"] == reference_codes(trained_model)
    assert {doc_id: tuple(codes) for doc_id, codes in result["ids"].items()} == trained_model.semantic_ids.to_dict()


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_trust_remote_code_loads_without_the_package(trained_model, tmp_path):
    model_dir = tmp_path / "saved"
    trained_model.save_pretrained(model_dir)
    repo_root = str(Path(__file__).resolve().parents[1])
    result = run_python(
        f"""
        import importlib.abc, json, sys
        sys.path = [entry for entry in sys.path if entry not in ("", {repo_root!r}) and "__editable__" not in entry]

        class BlockPackage(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("modeling_lmindexer", "trainers"):
                    raise ImportError("the lmindexer package must not be imported here")
                return None

        sys.meta_path.insert(0, BlockPackage())
        import torch
        from transformers import AutoConfig, AutoModel
        config = AutoConfig.from_pretrained({str(model_dir)!r}, trust_remote_code=True)
        model = AutoModel.from_pretrained({str(model_dir)!r}, trust_remote_code=True).eval()
        codes = model.predict_codes(torch.tensor({INPUT_IDS}), torch.tensor({ATTENTION_MASK})).tolist()
        print(json.dumps({{
            "config_class": type(config).__name__,
            "class": type(model).__name__,
            "module": type(model).__module__,
            "codes": codes,
            "num_ids": len(model.semantic_ids),
            "package_imported": any(name.split(".")[0] == "modeling_lmindexer" for name in sys.modules),
        }}))
        """,
        isolated_env(tmp_path),
        tmp_path,
    )
    assert result["config_class"] == "LMIndexerConfig"
    assert result["class"] == "LMIndexerForSemanticID"
    assert result["module"].startswith("transformers_modules.")
    assert result["package_imported"] is False
    assert result["codes"] == reference_codes(trained_model)
    assert result["num_ids"] == len(trained_model.semantic_ids)


def test_push_to_hub_sends_config_weights_ids_card_and_code(trained_model, monkeypatch):
    sent = {}

    def create_repo(self, repo_id, **kwargs):
        return SimpleNamespace(repo_id=repo_id)

    def create_commit(self, repo_id, operations, **kwargs):
        sent["repo_id"] = repo_id
        sent["files"] = {operation.path_in_repo for operation in operations}
        card = next(op for op in operations if op.path_in_repo == "README.md")
        sent["card"] = Path(card.path_or_fileobj).read_text()
        return "https://huggingface.co/org/lmindexer-beauty/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    trained_model.push_to_hub("org/lmindexer-beauty", tags=["beauty"])

    assert sent["repo_id"] == "org/lmindexer-beauty"
    saved_files = {"config.json", "model.safetensors", "semantic_ids.json", "prefix_group_means.safetensors"}
    assert saved_files | {"README.md"} | CODE_FILES <= sent["files"]
    card = sent["card"]
    assert "Learned ID levels: 2" in card
    assert "Codebook sizes: 8, 6" in card
    assert "synthetic-products" in card
    assert "ami_level_1" in card
    assert "t5" in card
    assert "- beauty" in card and "- lmindexer" in card


def test_model_cards_name_no_pipeline_task_that_transformers_removed(trained_model, tmp_path):
    """transformers v5 removed the text2text-generation pipeline: a card naming it would point the Hub at no task."""
    assert "text2text-generation" not in SUPPORTED_TASKS
    recommender = LMIndexerRecommender.from_semantic_ids(
        SemanticIDs(["a", "b"], [[0, 1], [1, 0]], [2, 2]),
        decoder_config=LlamaConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2
        ),
    )
    models = {"indexer": trained_model, "retriever": tiny_retriever(), "recommender": recommender}
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
        card = ModelCard.load(tmp_path / name / "README.md")
        assert card.data.pipeline_tag is None or card.data.pipeline_tag in SUPPORTED_TASKS, name
        assert "text2text-generation" not in str(card), name
