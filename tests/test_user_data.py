"""Your own data: corpus, interaction, query and qrels files (JSON lines, CSV, Parquet) read into the benchmark tables,
bad rows stopped with one error naming the file, line and id (or counted with `skip_bad_rows`), and the installed
commands `lmindexer-index`, `lmindexer-recommend` and `lmindexer-retrieve` run end to end on tiny files and models.

Every file here is written by the test (synthetic); no real dataset is read.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest
from script_runs import run_script

from modeling_lmindexer import LMIndexerForSemanticID, LMIndexerRecommender
from modeling_lmindexer.data.retrieval_tasks import queries_file_retrieval_task
from modeling_lmindexer.data.user_files import (
    DataFileError,
    TableSource,
    load_corpus_file,
    load_interactions_file,
    load_queries_files,
)


BIN = Path(sys.executable).parent
TOPICS = ("space", "horses", "cooking", "music")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def documents(count: int = 16) -> list[dict]:
    return [
        {
            "id": f"d{index}",
            "title": f"a story about {TOPICS[index % 4]}",
            "body": f"document {index} tells of {TOPICS[index % 4]} and more {TOPICS[index % 4]}",
            "genre": TOPICS[index % 4],
        }
        for index in range(count)
    ]


# --- the corpus ---


def test_a_jsonl_corpus_joins_its_text_columns_in_order(tmp_path):
    rows = documents(3)
    rows[1]["title"] = ""  # an empty column is left out of the join, not doubled spaces
    corpus = load_corpus_file(
        TableSource(str(write_jsonl(tmp_path / "docs.jsonl", rows))), text_columns=["title", "body"]
    )
    assert corpus.name == "docs" and corpus.skipped_rows == 0
    assert corpus.documents["doc_id"] == ["d0", "d1", "d2"]
    assert corpus.documents["text"][0] == "a story about space document 0 tells of space and more space"
    assert corpus.documents["text"][1] == "document 1 tells of horses and more horses"
    assert corpus.documents["category"] == ["", "", ""]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_csv_tsv_and_parquet_corpora_read_the_same_table_with_categories(tmp_path, suffix):
    rows = documents(5)
    path = tmp_path / f"docs{suffix}"
    if suffix == ".parquet":
        pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
    else:
        write_csv(path, rows, delimiter="\t" if suffix == ".tsv" else ",")
    corpus = load_corpus_file(TableSource(str(path)), text_columns=["body"], category_column="genre")
    assert corpus.documents["doc_id"] == [row["id"] for row in rows]
    assert corpus.documents["text"] == [row["body"] for row in rows]
    assert corpus.documents["category"] == [row["genre"] for row in rows]


def test_a_hub_dataset_corpus_is_read_with_load_dataset(tmp_path):
    """`--dataset_name` goes to `datasets.load_dataset`; offline, a local dataset folder stands in for a Hub id."""
    folder = tmp_path / "my-org-dataset"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", documents(3))
    corpus = load_corpus_file(TableSource(hub_dataset=str(folder)), text_columns=["body"], category_column="genre")
    assert corpus.name == "my-org-dataset" and corpus.documents["doc_id"] == ["d0", "d1", "d2"]
    assert corpus.documents["category"] == ["space", "horses", "cooking"]
    with pytest.raises(DataFileError, match="no column 'abstract'"):
        load_corpus_file(TableSource(hub_dataset=str(folder)), text_columns=["abstract"])
    with pytest.raises(DataFileError, match=r"validation split\): cannot load it"):
        load_corpus_file(TableSource(hub_dataset=str(folder), hub_split="validation"), text_columns=["body"])


def bad_corpus_rows() -> list:
    """(rows of a JSON-lines corpus, the error's expected words) for every bad-row case."""
    good = documents(4)
    return [
        ([*good, {"id": "d1", "body": "a second d1"}], ["docs.jsonl, line 5", "duplicate id 'd1'", "first at line 2"]),
        ([*good[:2], {"id": "d9", "body": "  "}, *good[2:]], ["docs.jsonl, line 3", "empty text for id 'd9'"]),
        ([*good[:3], {"id": "d9", "text": "no body"}], ["docs.jsonl, line 4", "no field 'body'"]),
        ([{"body": "no id"}, *good], ["docs.jsonl, line 1", "no field 'id'"]),
    ]


@pytest.mark.parametrize("rows, words", bad_corpus_rows(), ids=["duplicate", "empty-text", "missing-field", "no-id"])
def test_a_bad_corpus_row_gives_one_error_naming_file_line_and_id_or_is_skipped(tmp_path, rows, words):
    source = TableSource(str(write_jsonl(tmp_path / "docs.jsonl", rows)))
    with pytest.raises(DataFileError) as raised:
        load_corpus_file(source, text_columns=["body"])
    message = str(raised.value)
    assert all(word in message for word in words), message
    assert "\n" not in message
    corpus = load_corpus_file(source, text_columns=["body"], skip_bad_rows=True)
    assert corpus.skipped_rows == 1 and len(corpus.documents) == len(rows) - 1


def test_a_column_missing_from_a_csv_header_is_an_error_even_when_skipping(tmp_path):
    path = write_csv(tmp_path / "docs.csv", documents(3))
    with pytest.raises(DataFileError, match=r"docs.csv: no column 'abstract'; its columns are 'id', 'title'"):
        load_corpus_file(TableSource(str(path)), text_columns=["abstract"], skip_bad_rows=True)


def test_a_csv_row_with_more_fields_than_the_header_is_a_bad_row(tmp_path):
    (tmp_path / "docs.csv").write_text("id,text\nd1,one text\nd2,hello, world\nd3,third text\n")
    source = TableSource(str(tmp_path / "docs.csv"))
    with pytest.raises(DataFileError, match=r"docs.csv, line 3: 1 more field\(s\) than the header's columns"):
        load_corpus_file(source)
    assert load_corpus_file(source, skip_bad_rows=True).documents["doc_id"] == ["d1", "d3"]


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    (tmp_path / "docs.csv").write_bytes("id,text\nd1,caf\u00e9 au lait\n".encode("utf-8-sig"))
    corpus = load_corpus_file(TableSource(str(tmp_path / "docs.csv")))
    assert corpus.documents["doc_id"] == ["d1"] and corpus.documents["text"] == ["caf\u00e9 au lait"]


def test_unreadable_and_unknown_files_give_one_error(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataFileError, match=r"empty.csv: empty file \(no header line\)"):
        load_corpus_file(TableSource(str(tmp_path / "empty.csv")))
    (tmp_path / "latin1.csv").write_bytes("id,text\nd1,caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataFileError, match="latin1.csv: cannot read it \\(UnicodeDecodeError"):
        load_corpus_file(TableSource(str(tmp_path / "latin1.csv")))
    with pytest.raises(DataFileError, match="unknown file type '.xml'"):
        load_corpus_file(TableSource(str(tmp_path / "docs.xml")))
    with pytest.raises(DataFileError, match="no such file"):
        load_corpus_file(TableSource(str(tmp_path / "missing.jsonl")))
    (tmp_path / "broken.jsonl").write_text('{"id": "a", "text": "fine"}\n{"id": "b", "te\n')
    with pytest.raises(DataFileError, match="broken.jsonl, line 2: not a JSON object"):
        load_corpus_file(TableSource(str(tmp_path / "broken.jsonl")))
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFileError, match="broken.parquet: cannot read it as Parquet"):
        load_corpus_file(TableSource(str(tmp_path / "broken.parquet")))


# --- interactions ---


def test_interactions_are_ordered_by_time_with_ties_in_file_order(tmp_path):
    rows = [
        {"user_id": "u1", "item_id": "d3", "timestamp": "30"},
        {"user_id": "u1", "item_id": "d1", "timestamp": "10"},
        {"user_id": "u1", "item_id": "d2", "timestamp": "20"},
        {"user_id": "u1", "item_id": "d0", "timestamp": "20"},  # ties with d2: after it, as in the file
        {"user_id": "u2", "item_id": "d0", "timestamp": "2026-01-02T00:00:00"},
        {"user_id": "u2", "item_id": "d1", "timestamp": "2026-01-01T00:00:00"},
        {"user_id": "u2", "item_id": "d2", "timestamp": "2026-01-03"},
        {"user_id": "u3", "item_id": "d2", "timestamp": "1"},  # two interactions: too few for leave-one-out
        {"user_id": "u3", "item_id": "d3", "timestamp": "2"},
    ]
    interactions = load_interactions_file(str(write_csv(tmp_path / "inter.csv", rows)), ["d0", "d1", "d2", "d3"])
    assert interactions.sequences == {"u1": ["d1", "d2", "d0", "d3"], "u2": ["d1", "d0", "d2"]}
    assert interactions.num_dropped_users == 1 and "equal timestamps in file order" in interactions.time_order
    in_file_order = load_interactions_file(str(tmp_path / "inter.csv"), ["d0", "d1", "d2", "d3"], time_column=None)
    assert in_file_order.sequences["u1"] == ["d3", "d1", "d2", "d0"]


@pytest.mark.parametrize(
    "bad_row, words",
    [
        ({"user_id": "u1", "item_id": "d404", "timestamp": "5"}, ["line 3", "item 'd404' of user 'u1'"]),
        ({"user_id": "u1", "item_id": "d1", "timestamp": "yesterday"}, ["line 3", "timestamp 'yesterday'"]),
        ({"user_id": "", "item_id": "d1", "timestamp": "5"}, ["line 3", "empty user"]),
    ],
    ids=["unknown-item", "bad-timestamp", "empty-user"],
)
def test_a_bad_interaction_gives_one_error_naming_the_line_or_is_skipped(tmp_path, bad_row, words):
    good = [{"user_id": "u1", "item_id": f"d{index}", "timestamp": str(index)} for index in range(3)]
    path = str(write_csv(tmp_path / "inter.csv", [good[0], bad_row, *good[1:]]))
    with pytest.raises(DataFileError) as raised:
        load_interactions_file(path, ["d0", "d1", "d2"])
    assert all(word in str(raised.value) for word in ["inter.csv", *words]), str(raised.value)
    skipped = load_interactions_file(path, ["d0", "d1", "d2"], skip_bad_rows=True)
    assert skipped.skipped_rows == 1 and skipped.sequences == {"u1": ["d0", "d1", "d2"]}


# --- queries and qrels ---


def write_queries(tmp_path: Path, with_split: bool) -> Path:
    rows = [{"id": f"q{index}", "text": f"tell me about {TOPICS[index % 4]}"} for index in range(6)]
    if with_split:
        for index, row in enumerate(rows):
            row["split"] = "test" if index % 3 == 0 else "train"
    return write_jsonl(tmp_path / "queries.jsonl", rows)


def test_trec_and_beir_qrels_read_the_same_judgments(tmp_path):
    queries = write_queries(tmp_path, with_split=False)
    (tmp_path / "qrels.trec").write_text("q0 0 d0 1\nq1 0 d1 2\nq1 0 d5 0\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t2\nq1\td5\t0\n")
    doc_ids = [f"d{index}" for index in range(8)]
    trec = load_queries_files(str(queries), str(tmp_path / "qrels.trec"), doc_ids)
    beir = load_queries_files(str(queries), str(tmp_path / "qrels.tsv"), doc_ids)
    assert trec.qrels == beir.qrels == {"q0": {"d0": 1}, "q1": {"d1": 2, "d5": 0}}
    assert trec.queries["query_id"] == [f"q{index}" for index in range(6)] and trec.queries["split"] == [""] * 6


@pytest.mark.parametrize(
    "qrels_line, words",
    [
        ("q1 0 d404 1", ["qrels.trec, line 2", "document 'd404' of query 'q1'"]),
        ("q99 0 d1 1", ["qrels.trec, line 2", "query 'q99'"]),
        ("q1 d1", ["qrels.trec, line 2", "2 fields"]),
        ("q0 0 d0 2", ["qrels.trec, line 2", "a second grade of document 'd0' for query 'q0' (first at line 1)"]),
    ],
    ids=["unknown-document", "unknown-query", "bad-line", "second-grade"],
)
def test_a_bad_judgment_gives_one_error_naming_the_line(tmp_path, qrels_line, words):
    queries = write_queries(tmp_path, with_split=False)
    (tmp_path / "qrels.trec").write_text(f"q0 0 d0 1\n{qrels_line}\n")
    with pytest.raises(DataFileError) as raised:
        load_queries_files(str(queries), str(tmp_path / "qrels.trec"), ["d0", "d1"])
    assert all(word in str(raised.value) for word in words), str(raised.value)
    skipped = load_queries_files(str(queries), str(tmp_path / "qrels.trec"), ["d0", "d1"], skip_bad_rows=True)
    assert skipped.qrels == {"q0": {"d0": 1}} and skipped.skipped_rows == {"qrels.trec": 1}


@pytest.mark.parametrize("first_line", ["q0\td0\t1.0", "q0 0 d0 x"])
def test_only_a_beir_header_is_passed_over_on_the_first_qrels_line(tmp_path, first_line):
    queries = write_queries(tmp_path, with_split=False)
    (tmp_path / "qrels.trec").write_text(f"{first_line}\nq1 0 d1 1\n")
    with pytest.raises(DataFileError, match=r"qrels.trec, line 1: grade '(1.0|x)' of query 'q0' is not an integer"):
        load_queries_files(str(queries), str(tmp_path / "qrels.trec"), ["d0", "d1"])


def test_a_split_column_or_the_fixed_split_by_id_makes_the_task(tmp_path):
    corpus = load_corpus_file(
        TableSource(str(write_jsonl(tmp_path / "docs.jsonl", documents(8)))), text_columns=["body"]
    )
    qrels_text = "".join(f"q{index} 0 d{index} 1\n" for index in range(6))
    (tmp_path / "qrels.trec").write_text(qrels_text)
    for with_split, test_ids in ((True, ["q0", "q3"]), (False, ["q3", "q4", "q5"])):
        queries = load_queries_files(
            str(write_queries(tmp_path, with_split)),
            str(tmp_path / "qrels.trec"),
            corpus.documents["doc_id"],
            split_column="split" if with_split else None,
        )
        task = queries_file_retrieval_task("docs", corpus.documents, queries.queries, queries.qrels)
        assert [query.query_id for query in task.test] == test_ids
        assert task.training_counts() == {"query": 6 - len(test_ids), "indexing": 8}
    rows = [{"id": "q0", "text": "a", "split": "dev"}]
    write_jsonl(tmp_path / "bad_split.jsonl", rows)
    with pytest.raises(DataFileError, match="bad_split.jsonl, line 1: split 'dev' of query 'q0'"):
        load_queries_files(
            str(tmp_path / "bad_split.jsonl"), str(tmp_path / "qrels.trec"), ["d0"], split_column="split"
        )


# --- the installed commands, end to end on tiny models ---


def run_command(command: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console command `command` (its entry point, as the console script runs it)."""
    assert (BIN / command).is_file(), f"{command} is not installed next to {sys.executable}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return run_script(command, *arguments, "--disable_tqdm", "True", cwd=cwd, env=env)


def one_error_line(completed: subprocess.CompletedProcess) -> str:
    error_lines = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert completed.returncode != 0 and len(error_lines) == 1, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    return error_lines[0]


TINY_INDEXING = (
    "--codebook_sizes", "4", "4", "--max_document_length", "16", "--kmeans_baseline", "False",
    "--warmup_epochs", "0", "--continuous_epochs", "0", "--joint_epochs", "1", "--per_device_train_batch_size", "8",
)  # fmt: skip


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_lmindexer_index_learns_ids_for_a_jsonl_corpus(tmp_path, tiny_backbone):
    """A JSON-lines corpus with two text columns and no category, indexed through the installed command."""
    rows = documents(16)
    write_jsonl(tmp_path / "my_docs.jsonl", rows)
    completed = run_command(
        "lmindexer-index", "--corpus_file", "my_docs.jsonl", "--text_column", "title", "body",
        "--backbone", str(tiny_backbone), *TINY_INDEXING, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = tmp_path / "outputs" / "lmindexer-my_docs"  # named after the file
    indexer = LMIndexerForSemanticID.from_pretrained(output)
    assert indexer.semantic_ids.doc_ids == [row["id"] for row in rows] and indexer.config.dataset_name == "my_docs"
    report = json.loads((output / "indexing_report.json").read_text())
    assert report["dataset"] == "my_docs" and report["ami_level_1"] is None  # no category column
    assert report["prediction_agreement"]["num_documents"] == 16


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_lmindexer_index_on_a_csv_with_categories_stops_on_a_bad_row_or_skips_and_reports_it(tmp_path, tiny_backbone):
    """A CSV corpus with a category column and one duplicate id: one error line before training, or with
    `--skip_bad_rows` the row left out, counted in the report, and the AMI computed against the categories."""
    rows = documents(16)
    rows.insert(7, {**rows[3], "body": "a second d3"})
    write_csv(tmp_path / "docs.csv", rows)
    arguments = (
        "--corpus_file", "docs.csv", "--text_column", "body", "--category_column", "genre",
        "--backbone", str(tiny_backbone), *TINY_INDEXING,
    )  # fmt: skip
    error = one_error_line(run_command("lmindexer-index", *arguments, cwd=tmp_path))
    assert "docs.csv, line 9: duplicate id 'd3' (first at line 5)" in error
    output = tmp_path / "outputs" / "lmindexer-docs"
    assert not (output / "indexer_progress.json").exists()
    completed = run_command("lmindexer-index", *arguments, "--skip_bad_rows", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((output / "indexing_report.json").read_text())
    assert report["skipped_rows"] == 1 and report["num_documents"] == 16 and report["ami_level_1"] is not None
    assert "left out (--skip_bad_rows) | 1 |" in (output / "indexing_report.md").read_text()


TINY_DECODER = (
    "--decoder_config_overrides",
    "hidden_size=16,intermediate_size=32,num_hidden_layers=1,num_attention_heads=2,num_key_value_heads=2",
)


def ring_interactions() -> list[dict]:
    """10 users with 5 timed interactions each, walking the 12 items of `documents(12)` from their own start."""
    return [
        {"user_id": f"u{user}", "item_id": f"d{(user + step) % 12}", "timestamp": step}
        for user in range(10)
        for step in range(5)
    ]


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_lmindexer_recommend_trains_on_your_interactions_file(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", documents(12))
    interactions = ring_interactions()
    write_csv(tmp_path / "inter.csv", interactions)
    arguments = (
        "--corpus_file", "items.jsonl", "--text_column", "body", "--id_scheme", "random", "--codebook_sizes", "4", "4",
        *TINY_DECODER, "--num_train_epochs", "1", "--num_beams", "10", "--k_values", "5",
    )  # fmt: skip
    completed = run_command("lmindexer-recommend", "--interactions_file", "inter.csv", *arguments, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = tmp_path / "outputs" / "recommendation-items"
    report = json.loads((output / "recommendation_report.json").read_text())
    assert report["dataset"] == "items" and report["num_test_queries"] == 10
    assert report["labels"] == ["time order: sorted by 'timestamp', equal timestamps in file order"]
    model = LMIndexerRecommender.from_pretrained(output)
    ranking = model.recommend([["d0", "d1"]], k=5)[0]
    assert len(ranking) == 5 and set(ranking) <= {f"d{index}" for index in range(12)}

    write_csv(tmp_path / "bad.csv", [*interactions[:4], {"user_id": "u0", "item_id": "d77", "timestamp": 9}])
    error = one_error_line(
        run_command("lmindexer-recommend", "--interactions_file", "bad.csv", *arguments, cwd=tmp_path)
    )
    assert "bad.csv, line 6: item 'd77' of user 'u0' is not in the corpus" in error


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_collaborative_ids_of_your_interactions_file_skip_its_bad_rows(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", documents(12))
    interactions = ring_interactions()
    write_csv(tmp_path / "inter.csv", [*interactions, {"user_id": "u0", "item_id": "d77", "timestamp": 9}])
    arguments = (
        "--interactions_file", "inter.csv", "--corpus_file", "items.jsonl", "--text_column", "body",
        "--id_scheme", "kmeans", "--codebook_sizes", "4", "4", "--collaborative_share", "0.5",
        "--collaborative_dimension", "4", *TINY_DECODER, "--num_train_epochs", "1", "--num_beams", "10",
        "--k_values", "5",
    )  # fmt: skip
    error = one_error_line(run_command("lmindexer-recommend", *arguments, cwd=tmp_path))
    assert "inter.csv, line 52: item 'd77' of user 'u0' is not in the corpus" in error
    completed = run_command("lmindexer-recommend", *arguments, "--skip_bad_rows", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "outputs" / "recommendation-items" / "recommendation_report.json").read_text())
    assert report["id_scheme"] == "kmeans_collaborative0.5" and report["num_test_queries"] == 10


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_lmindexer_retrieve_trains_on_your_queries_and_qrels(tmp_path, tiny_backbone):
    write_jsonl(tmp_path / "docs.jsonl", documents(12))
    write_queries(tmp_path, with_split=True)
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(6)))
    arguments = (
        "--corpus_file", "docs.jsonl", "--text_column", "title", "body", "--queries_file", "queries.jsonl",
        "--qrels_file", "qrels.tsv", "--query_split_column", "split", "--id_scheme", "random",
        "--backbone", str(tiny_backbone), "--codebook_sizes", "4", "4", "--num_train_epochs", "1",
    )  # fmt: skip
    completed = run_command("lmindexer-retrieve", *arguments, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "outputs" / "retrieval-docs" / "retrieval_report.json").read_text())
    assert report["dataset"] == "docs" and report["num_test_queries"] == 2
    assert report["training_examples"] == {"query": 4, "indexing": 12}
    assert "split column" in report["split_description"]
    error = one_error_line(run_command("lmindexer-retrieve", *arguments[:7], "--id_scheme", "random", cwd=tmp_path))
    assert "need all of --corpus_file (or --dataset_name), --queries_file and --qrels_file" in error


@pytest.mark.slow
def test_bench_indexing_times_the_job_on_your_corpus_file(tmp_path, tiny_backbone):
    write_jsonl(tmp_path / "my_docs.jsonl", documents(16))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_indexing.py"
    completed = subprocess.run(
        [
            sys.executable, str(script), "--corpus_file", str(tmp_path / "my_docs.jsonl"), "--text_column", "body",
            "--backbone", str(tiny_backbone), *TINY_INDEXING, "--output_dir", str(tmp_path / "out"),
            "--results_dir", str(tmp_path / "results"), "--results_name", "my_docs_run",
        ],
        env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == [
        "indexing_my_docs_run.json",
        "indexing_my_docs_run.md",
    ]
    result = json.loads((tmp_path / "results" / "indexing_my_docs_run.json").read_text())
    assert result["dataset"] == "my_docs" and result["indexing_report"]["num_documents"] == 16
    assert "--corpus_file" in result["command"] and result["wall_time_minutes"] > 0
