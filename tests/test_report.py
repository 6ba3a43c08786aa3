"""Tests of the indexing report: collision rates, AMI, stage records and the JSON and Markdown files."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from modeling_lmindexer.semantic_ids import SemanticIDs
from trainers.report import (
    IndexingReport,
    StageRecord,
    adjusted_mutual_information,
    code_agreement,
    machine_info,
    new_document_metrics,
    peak_memory_mb,
    prefix_collision_rate,
    semantic_id_metrics,
)


DOC_IDS = ["d0", "d1", "d2", "d3", "d4", "d5"]
# d0, d2 and d5 share (1, 2); d1 and d4 share (0, 3); d3 is alone.
LEARNED_CODES = np.array([[1, 2], [0, 3], [1, 2], [2, 0], [0, 3], [1, 2]])
CATEGORIES = ["lips", "hair", "lips", "pens", "hair", ""]


@pytest.fixture
def stages() -> list[StageRecord]:
    return [
        StageRecord("level 1 k-means", 0, "kmeans", 1.5, 100.0, code_usage_perplexity=2.9, codes_used=3),
        StageRecord("level 1 training", 0, "train", 10.25, 120.0, {"reconstruction": 2.5, "commitment": 0.125}),
        StageRecord("level 2 training", 1, "train", 8.0, 130.0, {"reconstruction": 2.0}, 1.9, 2, 5 / 6),
        StageRecord(
            "final/reassign", 0, "reassign", 0.01, 130.0, collision_rate=0.5, changed_code_fraction=[0.0, 0.5]
        ),
    ]


@pytest.fixture
def report(stages) -> IndexingReport:
    semantic_ids = SemanticIDs.from_learned_codes(DOC_IDS, LEARNED_CODES, [4, 5])
    baselines = {"random codes": {"ami_level_1": 0.01, "ami_full_id": None, "collision_rate_before_resolution": 0.5}}
    return IndexingReport.build(
        "toy", "tiny-t5", semantic_ids, CATEGORIES, stages, baselines=baselines, extra={"seed": 0}
    )


def test_prefix_collision_rate():
    assert prefix_collision_rate(LEARNED_CODES) == pytest.approx(5 / 6)
    assert prefix_collision_rate(LEARNED_CODES[:, :1]) == pytest.approx(5 / 6)
    assert prefix_collision_rate(np.array([0, 1, 2, 0])) == pytest.approx(0.5)
    assert prefix_collision_rate(np.arange(10).reshape(5, 2)) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        prefix_collision_rate(np.zeros((0, 2), dtype=np.int64))


def test_ami_is_one_for_aligned_codes_and_near_zero_for_random_codes():
    categories = [f"category {index % 5}" for index in range(2000)]
    aligned = np.array([[index % 5, 0] for index in range(2000)])
    assert adjusted_mutual_information(aligned, categories) == pytest.approx(1.0)
    assert adjusted_mutual_information(aligned[:, 0], categories) == pytest.approx(1.0)
    random = np.random.default_rng(0).integers(0, 5, size=2000)
    assert abs(adjusted_mutual_information(random, categories)) < 0.02


def test_ami_ignores_unknown_categories():
    # Without the "" documents, codes and categories match exactly.
    codes = np.array([0, 0, 1, 1, 1, 0])
    assert adjusted_mutual_information(codes, ["a", "a", "b", "b", "", ""]) == pytest.approx(1.0)
    assert adjusted_mutual_information(codes, ["a", "a", "", "", "", ""]) is None
    assert adjusted_mutual_information(codes, [""] * 6) is None
    with pytest.raises(ValueError, match="6 code rows but 2 categories"):
        adjusted_mutual_information(codes, ["a", "b"])


def test_stage_record_round_trips_and_refuses_unknown_kinds(stages):
    for stage in stages:
        assert StageRecord.from_dict(json.loads(json.dumps(stage.to_dict()))) == stage
    assert stages[0].losses == {}
    with pytest.raises(ValueError, match="stage kind 'eval'"):
        StageRecord("evaluation", 0, "eval", 1.0, 1.0)


def test_peak_memory_and_machine_info():
    assert peak_memory_mb() > 0
    info = machine_info()
    assert {"platform", "python", "torch", "cpu_count", "cuda_device", "git_commit"} <= set(info)
    assert info["git_commit"] is None or len(info["git_commit"]) == 40


def test_machine_info_keeps_the_commit_the_process_started_at(monkeypatch):
    started_at = machine_info()["git_commit"]

    def commit_made_since(*args, **kwargs):
        return SimpleNamespace(stdout="f" * 40 + "\n")

    monkeypatch.setattr(subprocess, "run", commit_made_since)
    assert machine_info()["git_commit"] == started_at


def test_build_computes_levels_collisions_and_ami(report):
    assert report.num_documents == 6 and report.codebook_sizes == [4, 5, 3]
    assert report.collision_rate_before_resolution == pytest.approx(5 / 6)
    assert report.collision_rate_after_resolution == 0.0
    assert report.total_wall_time_seconds == pytest.approx(19.76)
    assert [row["level"] for row in report.per_level] == [1, 2, 3]
    assert [row["kind"] for row in report.per_level] == ["learned", "learned", "collision"]
    assert [row["codes_used"] for row in report.per_level] == [3, 3, 3]
    assert [row["prefix_collision_rate"] for row in report.per_level] == pytest.approx([5 / 6, 5 / 6, 0.0])
    first = report.per_level[0]
    assert first["perplexity_ratio"] == pytest.approx(first["code_usage_perplexity"] / 4)
    # The known categories match the learned codes exactly (d5, the only mixed case, has no category).
    assert report.ami_level_1 == pytest.approx(1.0) and report.ami_full_id == pytest.approx(1.0)
    assert report.extra == {"seed": 0}


def test_semantic_id_metrics_of_ids_without_collisions():
    semantic_ids = SemanticIDs(["a", "b", "c", "d"], [[0, 0], [0, 1], [1, 0], [1, 1]], [2, 2])
    metrics = semantic_id_metrics(semantic_ids, ["x", "x", "y", "y"])
    assert metrics["ami_level_1"] == pytest.approx(1.0)
    assert metrics["collision_rate_before_resolution"] == 0.0


def test_write_produces_json_and_markdown(report, tmp_path):
    json_path, markdown_path = report.write(tmp_path / "reports", name="toy_report")
    assert json_path == tmp_path / "reports" / "toy_report.json" and markdown_path.suffix == ".md"
    content = json.loads(json_path.read_text())
    expected_keys = {
        "dataset",
        "num_documents",
        "backbone",
        "codebook_sizes",
        "stages",
        "per_level",
        "collision_rate_before_resolution",
        "collision_rate_after_resolution",
        "ami_level_1",
        "ami_full_id",
        "baselines",
        "total_wall_time_seconds",
        "extra",
    }
    assert set(content) == expected_keys | {"prediction_agreement", "new_documents", "disk_use_mb", "skipped_rows"}
    assert content["stages"][1]["losses"] == {"reconstruction": 2.5, "commitment": 0.125}
    assert IndexingReport.from_dict(content) == report

    markdown = markdown_path.read_text()
    for heading in ["# Indexing report: toy", "## Summary", "## Levels", "## Stages", "## Comparison with baselines"]:
        assert heading in markdown
    assert "| collision rate after resolution | 0.0000 |" in markdown
    assert "| levels | 3 (2 learned + 1 collision) |" in markdown
    assert (
        "| level 1 training | 1 | train | 10.2500 | 120.0000 | reconstruction=2.5000, commitment=0.1250 |" in markdown
    )
    assert "| 3 | collision | 3 | 3 |" in markdown
    assert "| learned (tiny-t5) | 1.0000 | 1.0000 | 0.8333 |" in markdown
    assert "| random codes | 0.0100 | n/a | 0.5000 |" in markdown


def test_stage_table_shows_the_codes_a_reassignment_changed(report):
    assert "| final/reassign | 1 | reassign | 0.0100 | 130.0000 | n/a | n/a | 0.5000 | 0.0000, 0.5000 |" in (
        report.to_markdown()
    )


def test_code_agreement_per_level_and_full_id():
    stored = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    predicted = np.array([[0, 1], [2, 0], [1, 5], [6, 7]])
    agreement = code_agreement(stored, predicted)
    assert agreement == {"per_level": [0.75, 0.75], "full_id": 0.5, "num_documents": 4}
    with pytest.raises(ValueError, match="one \\(num_documents, num_levels\\) shape"):
        code_agreement(stored, predicted[:, :1])


def test_report_shows_the_saved_model_agreement_per_level(report):
    report.prediction_agreement = {"per_level": [1.0, 0.995], "full_id": 0.995, "num_documents": 6}
    markdown = report.to_markdown()
    assert "| stored IDs = predicted by the saved model (full learned ID) | 0.9950 |" in markdown
    assert "| 1 | learned | 4 | 3 | " in markdown and markdown.count("| 0.9950 |") == 2
    assert IndexingReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_new_document_metrics_compare_new_and_indexed_rows():
    # Indexed rows d0-d5 (LEARNED_CODES), then two new rows: n0 shares (1, 2) with indexed ones, n1 is alone.
    semantic_ids = SemanticIDs.from_learned_codes(DOC_IDS, LEARNED_CODES, [4, 5]).extend(
        ["n0", "n1"], [[1, 2], [3, 1]]
    )
    categories = [*CATEGORIES, "lips", "pens"]
    rows = new_document_metrics(semantic_ids, 6, categories, num_samples=5)
    indexed, new = rows["indexed documents"], rows["new documents"]
    assert indexed["documents"] == 6 and new["documents"] == 2
    assert indexed["collision_rate"] == pytest.approx(5 / 6) and new["collision_rate"] == pytest.approx(0.5)
    assert indexed["ami_level_1"] == pytest.approx(adjusted_mutual_information(LEARNED_CODES[:, 0], CATEGORIES))
    assert new["ami_level_1"] == pytest.approx(1.0)
    assert rows["indexed documents, samples of the new set's size"]["documents"] == 2
    report = IndexingReport.build("toy", "tiny-t5", semantic_ids, categories, [])
    report.new_documents = {"new documents": 2, "seconds": 0.5, "rows": rows}
    markdown = report.to_markdown()
    assert "## New documents (add_documents, no retraining)" in markdown
    assert "| new documents | 2 | 1.0000 |" in markdown


def test_markdown_has_no_comparison_without_baselines(stages):
    semantic_ids = SemanticIDs(["a", "b"], [[0], [1]], [2])
    report = IndexingReport.build("toy", "tiny-t5", semantic_ids, ["", ""], stages)
    markdown = report.to_markdown()
    assert "## Comparison" not in markdown and "| AMI level 1 | n/a |" in markdown
    assert "| levels | 1 learned |" in markdown


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_trainers_import_without_scikit_learn_and_ami_names_the_extra():
    script = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import trainers\n"
        "from trainers.report import adjusted_mutual_information\n"
        "try:\n"
        "    adjusted_mutual_information([[0], [1]], ['a', 'b'])\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "needs scikit-learn: pip install 'lmindexer[examples]'" in completed.stdout
