"""benchmarks/bench_indexing.py --new_document_fraction: a tiny real run indexes part of a corpus, adds the rest with
add_documents, and reports ID quality and retrieval over new and indexed documents.

Reads the real Cranfield collection (cranfield/cran.all.1400, cran.qry, cranqrel: the first 160 documents) and trains
the offline MiniLM BERT2BERT backbone briefly.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeling_lmindexer.data.corpora import default_data_dir


SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_indexing.py"
DATA_DIR = default_data_dir()

# The one test trains MiniLM BERT2BERT on 160 Cranfield documents: about two minutes on two CPU cores.
pytestmark = pytest.mark.slow


def test_new_documents_get_ids_and_retrieval_rows_on_tiny_cranfield(tmp_path):
    if not (DATA_DIR / "cranfield" / "cran.all.1400").exists():
        pytest.skip(f"Cranfield is not in {DATA_DIR}")
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--dataset", "cranfield", "--data_dir", str(DATA_DIR),
            "--new_document_fraction", "0.25", "--output_dir", str(tmp_path / "out"),
            "--results_dir", str(tmp_path / "results"), "--max_documents", "160", "--codebook_sizes", "4", "4",
            "--warmup_epochs", "0", "--continuous_epochs", "0", "--joint_epochs", "0.5",
            "--per_device_train_batch_size", "16", "--kmeans_baseline", "False",
        ],
        env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "results" / "indexing_cranfield_new_documents.json").read_text())
    report = result["indexing_report"]
    assert report["num_documents"] == 160 and report["new_documents"]["new documents"] == 40
    rows = report["new_documents"]["rows"]
    assert rows["indexed documents"]["documents"] == 120 and rows["new documents"]["documents"] == 40
    # Stored = predicted for every document, the added ones included.
    assert report["prediction_agreement"]["full_id"] == 1.0 and report["prediction_agreement"]["num_documents"] == 160
    retrieval = result["new_document_retrieval"]
    assert retrieval["num_beams"] == 20 and retrieval["milliseconds_per_query"] > 0
    new, indexed, everything = (retrieval["rows"][name] for name in ("new", "indexed", "all"))
    assert new["queries"] > 0 and indexed["queries"] > 0
    assert everything["relevant documents"] == new["relevant documents"] + indexed["relevant documents"]
    assert 0.0 <= new["recall@10"] <= 1.0 and 0.0 <= indexed["recall@10"] <= 1.0
    markdown = (tmp_path / "results" / "indexing_cranfield_new_documents.md").read_text()
    assert "## New documents (add_documents, no retraining)" in markdown
    assert "## Retrieval over new and indexed documents" in markdown
    # The recorded command names the script and the data relative to the checkout, not this machine's paths.
    assert str(Path(__file__).resolve().parents[1]) not in result["command"]
    assert "examples/run_indexing.py" in result["command"] and "../shared/data" in result["command"]
