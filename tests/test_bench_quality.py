"""benchmarks/bench_quality.py: every scheme trained and evaluated by the example script, reference rows, the tables.

The end-to-end tests read no real data: synthetic Cranfield files (12 documents, 4 judged test queries) written by
`test_retrieval_tasks.write_synthetic_cranfield`, synthetic Beauty files (12 items, 7 users) written by
`write_synthetic_beauty`, tiny random T5 / Llama models and a tiny untrained indexer.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_t5_config
from script_runs import forking_subprocess_run
from test_retrieval_tasks import SYNTHETIC_SEQUENCES, write_synthetic_beauty, write_synthetic_cranfield
from test_retriever_trainer import save_tiny_indexer
from transformers import T5ForConditionalGeneration

from modeling_lmindexer import LMIndexerForSemanticID, LMIndexerRetriever, SemanticIDs
from modeling_lmindexer.collaborative import consecutive_prefix_sharing
from modeling_lmindexer.data.retrieval_tasks import EvaluationQuery, RetrievalTask, TrainingPair
from modeling_lmindexer.metrics import compute_retrieval_metrics


SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_quality.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_quality", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def quiet_subprocesses(monkeypatch):
    """The benchmark's runs of the example scripts: offline, one thread, forked from a process that has imported the
    library (`script_runs`)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(subprocess, "run", forking_subprocess_run(subprocess.run))


@pytest.mark.slow  # two schemes x two seeds of real indexing runs: about 30 s
def test_cranfield_table_from_two_schemes_and_two_seeds(t5_tokenizer, tmp_path, quiet_subprocesses):
    bench = load_benchmark()
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    backbone = tmp_path / "tiny-t5"
    torch.manual_seed(0)
    T5ForConditionalGeneration(tiny_t5_config()).save_pretrained(backbone)
    t5_tokenizer.save_pretrained(backbone)
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(doc) for doc in range(1, 13)], t5_tokenizer)
    arguments = [
        "--task", "retrieval", "--dataset", "cranfield", "--data_dir", str(data_dir), "--schemes", "random",
        "lmindexer", "--indexer", str(indexer), "--seeds", "1", "2", "--budget_minutes", "0.2",
        "--num_train_epochs", "1", "--output_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
        "--zero_shot_beams", "10", "20",
        # passed through to examples/run_retrieval.py
        "--backbone", str(backbone), "--codebook_sizes", "4", "4", "--per_device_train_batch_size", "8",
        "--disable_tqdm", "True", "--log_level", "warning",
    ]  # fmt: skip
    result = bench.main(arguments)

    assert [(row["scheme"], row["seed"]) for row in result["rows"]] == [
        ("random", 1), ("lmindexer", 1), ("random", 2), ("lmindexer", 2)
    ]  # fmt: skip
    for row in result["rows"]:
        assert set(bench.METRIC_COLUMNS["retrieval"]) <= set(row["metrics"])
        assert all(0.0 <= value <= 1.0 for value in row["metrics"].values())
        assert row["num_test_queries"] == 4 and row["optimizer_steps"] >= 1
        # Training queries 1-4 judge 3 documents each; every one of the 12 documents gives a document->ID pair.
        assert row["training_examples"] == {"query": 12, "indexing": 12}
        quality = row["id_quality"]
        assert len(quality["code_usage_perplexity"]) == 2 and all(p >= 1.0 for p in quality["code_usage_perplexity"])
        assert 0.0 <= quality["collision_rate_before_resolution"] <= 1.0
        assert quality["ami_level_1"] is None  # synthetic Cranfield documents carry no category
        # The script's test evaluation time over its test queries, at the beam width it reports.
        report = json.loads(
            (tmp_path / "runs" / f"{row['scheme']}-seed{row['seed']}" / "retrieval_report.json").read_text()
        )
        assert row["num_beams"] == report["num_beams"] == 20
        assert row["milliseconds_per_query"] == pytest.approx(1000 * report["wall_time_seconds"]["evaluation"] / 4)
    random_runs = [row for row in result["rows"] if row["scheme"] == "random"]
    assert random_runs[0]["id_quality"] != random_runs[1]["id_quality"]  # the seed reaches the random IDs
    assert [row["system"] for row in result["reference_rows"]] == [
        "BM25 (bm25s)", "dense retrieval (MiniLM, exact cosine, faiss)"
    ]  # fmt: skip
    bm25 = result["reference_rows"][0]["metrics"]
    assert bm25["recall@10"] > 0.5  # each query names its topic, and its documents repeat it
    assert all(row["milliseconds_per_query"] > 0 for row in result["reference_rows"])
    # The retriever built from the indexer, not trained, on the same 4 test queries at each requested beam width.
    assert [(row["system"], row["num_beams"]) for row in result["zero_shot_rows"]] == [
        (f"LMIndexer, no fine-tuning (zero-shot), {num_beams} beams", num_beams) for num_beams in (10, 20)
    ]
    for row in result["zero_shot_rows"]:
        assert row["num_test_queries"] == 4 and row["seed"] == 1 and row["milliseconds_per_query"] > 0
        assert set(bench.METRIC_COLUMNS["retrieval"]) <= set(row["metrics"])
        assert all(0.0 <= value <= 1.0 for value in row["metrics"].values())
    assert result["torch_threads"] == torch.get_num_threads()

    spread = result["seed_spread"]["random"]["recall@10"]
    values = [row["metrics"]["recall@10"] for row in random_runs]
    assert spread["min"] == min(values) and spread["max"] == max(values) and spread["seeds"] == 2
    assert result["machine"]["git_commit"] and result["seeds"] == [1, 2] and result["wall_time_seconds"] > 0
    assert {row["commit"] for row in result["rows"]} == {result["machine"]["git_commit"]}

    results_dir = tmp_path / "results"
    stored = json.loads((results_dir / "quality_retrieval_cranfield.json").read_text())
    assert stored["rows"] == result["rows"] and stored["zero_shot_rows"] == result["zero_shot_rows"]
    markdown = (results_dir / "quality_retrieval_cranfield.md").read_text()
    assert "LMIndexer (learned)" in markdown and "BM25 (bm25s)" in markdown and "Seed-to-seed spread" in markdown
    assert "| LMIndexer, no fine-tuning (zero-shot), 20 beams | t5 (the indexer's, no fine-tuning) | 1 |" in markdown
    assert "| beams | ms per query |" in markdown and "ms per query: the wall time of ranking all" in markdown
    # The lmindexer row's retriever is its indexer's (a tiny T5 without a backbone name); random uses --backbone.
    assert [row["retriever"] for row in result["rows"][:2]] == [str(backbone), "t5"]
    assert f"| random IDs | {backbone} | 1 |" in markdown
    for plot in ("quality_retrieval_cranfield_metrics.png", "quality_retrieval_cranfield_recall_vs_time.png"):
        assert (results_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({plot})" in markdown

    # --resume reuses every finished run: the same rows, without training again; --zero_shot_beams with no widths
    # leaves out the zero-shot rows.
    logs = {path: path.stat().st_mtime for path in (tmp_path / "runs").glob("*/bench.log")}
    resumed = bench.main([*arguments, "--resume", "--zero_shot_beams"])
    assert resumed["rows"] == result["rows"] and resumed["zero_shot_rows"] == []
    assert {path: path.stat().st_mtime for path in logs} == logs
    assert "no fine-tuning (zero-shot)" not in (results_dir / "quality_retrieval_cranfield.md").read_text()

    # Without the run folders (a fresh checkout), --keep_rows_from keeps the rows of the written results instead of
    # training them again, after checking the command and that the indexer still gives the lmindexer row's IDs.
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(stored))
    shutil.rmtree(tmp_path / "runs")
    kept = bench.main([*arguments, "--keep_rows_from", str(earlier)])
    assert kept["rows"] == result["rows"] and not (tmp_path / "runs").exists()
    assert kept["reference_rows"][0]["metrics"] == result["reference_rows"][0]["metrics"]
    other_command = [*arguments, "--num_train_epochs", "2", "--keep_rows_from", str(earlier)]
    with pytest.raises(SystemExit, match="its rows come from another command"):
        bench.main(other_command)
    stored["rows"][1]["id_quality"]["collision_rate_before_resolution"] += 0.5  # the lmindexer row of seed 1
    earlier.write_text(json.dumps(stored))
    with pytest.raises(SystemExit, match=r"row lmindexer seed 1 was trained with other IDs than .*semantic_ids.json"):
        bench.main([*arguments, "--keep_rows_from", str(earlier)])
    stored["rows"][1]["id_quality"]["collision_rate_before_resolution"] -= 0.5
    stored["rows"][0]["id_quality"]["collision_rate_before_resolution"] += 0.5  # random IDs: not the indexer's
    earlier.write_text(json.dumps(stored))
    assert bench.main([*arguments, "--seeds", "1", "--keep_rows_from", str(earlier)])["rows"] == stored["rows"][:2]
    with pytest.raises(SystemExit, match="not a results JSON of bench_quality.py"):
        bench.main([*arguments, "--keep_rows_from", str(tmp_path / "missing.json")])


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_a_failing_scheme_names_its_log(tmp_path, quiet_subprocesses):
    bench = load_benchmark()
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    arguments = [
        "--task", "retrieval", "--dataset", "cranfield", "--data_dir", str(data_dir), "--schemes", "kmeans",
        "--output_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
        "--codebook_sizes", "64", "64",  # more codes than the 12 documents
    ]  # fmt: skip
    with pytest.raises(RuntimeError, match=r"the kmeans run \(seed 42\) failed .* see .*kmeans-seed42/bench.log"):
        bench.main(arguments)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--task", "rec", "--dataset", "scifact"], "--task rec takes --dataset beauty | office | movielens"),
    (["--task", "retrieval", "--dataset", "scifact", "--budget_minutes", "0"], "--budget_minutes must be positive"),
    (["--dataset", "beauty", "--indexer", "{missing}"], "the lmindexer row needs a trained indexer of 'beauty'"),
    (["--dataset", "beauty", "--keep_best_validation_state"], "picks among validation points: pass --eval_every"),
])  # fmt: skip
def test_bad_arguments_stop_before_any_run(arguments, message, tmp_path, capsys):
    bench = load_benchmark()
    arguments = [argument.format(missing=tmp_path / "missing") for argument in arguments]
    with pytest.raises(SystemExit):
        bench.main([*arguments, "--output_dir", str(tmp_path / "runs")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def fake_indexer(tmp_path: Path) -> Path:
    indexer = tmp_path / "indexer"
    indexer.mkdir()
    (indexer / "config.json").write_text("{}")
    return indexer


def test_each_lmindexer_row_starts_its_retriever_as_its_name_says(tmp_path):
    bench = load_benchmark()
    indexer = fake_indexer(tmp_path)
    args, extra = bench.parse_arguments(["--task", "retrieval", "--dataset", "scifact", "--indexer", str(indexer)])
    assert args.schemes == ["random", "kmeans", "rq_kmeans", "lmindexer", "lmindexer_ids"] and args.peers == []
    commands = {scheme: bench.script_command(args, scheme, 42, tmp_path, extra) for scheme in args.schemes}
    assert commands["lmindexer"][-2:] == ["--indexer", str(indexer)]
    assert commands["lmindexer_ids"][-4:] == ["--indexer", str(indexer), "--retriever_init", "backbone"]
    assert commands["kmeans"][-2:] == ["--id_scheme", "kmeans"]
    assert all("run_retrieval.py" in command[1] for command in commands.values())


def test_rec_rows_train_the_recommender_with_their_ids_and_curves(tmp_path):
    bench = load_benchmark()
    indexer = fake_indexer(tmp_path)
    args, extra = bench.parse_arguments(
        ["--dataset", "beauty", "--indexer", str(indexer), "--eval_every_minutes", "2", "--max_users", "300"]
    )
    assert args.task == "rec" and args.peers == ["sasrec", "sasrec_ce"]
    assert args.schemes == ["random", "kmeans", "rq_kmeans", "lmindexer", "lmindexer_codebooks"]
    commands = {scheme: bench.script_command(args, scheme, 42, tmp_path, extra) for scheme in args.schemes}
    for scheme, command in commands.items():
        assert command[1].endswith("run_recommendation.py")
        assert command[-8:] == [
            "--max_users", "300", "--eval_every_minutes", "2.0", "--eval_on_start", "True", "--num_validation_users",
            "5000",
        ]  # fmt: skip
        ids = command[command.index("--k_values") + 3 : -8]
        expected = {
            "lmindexer": ["--indexer", str(indexer)],
            "lmindexer_codebooks": ["--indexer", str(indexer), "--init_from_codebooks", "True"],
        }.get(scheme, ["--id_scheme", scheme])
        assert ids == expected, scheme


def test_rec_rows_read_saved_ids_without_an_indexer(tmp_path):
    bench = load_benchmark()
    ids_file = tmp_path / "semantic_ids.json"
    args, extra = bench.parse_arguments([
        "--dataset", "beauty", "--schemes", "lmindexer", "kmeans", "random", "--indexer", str(tmp_path / "missing"),
        "--semantic_ids_file", f"lmindexer={ids_file}", f"kmeans={ids_file}",
    ])  # fmt: skip
    commands = {scheme: bench.script_command(args, scheme, 42, tmp_path, extra) for scheme in args.schemes}
    ids = {scheme: command[command.index("--k_values") + 3 : -2] for scheme, command in commands.items()}
    assert ids == {
        "lmindexer": ["--semantic_ids_file", str(ids_file)],
        "kmeans": ["--semantic_ids_file", str(ids_file), "--id_scheme", "kmeans"],
        "random": ["--id_scheme", "random"],
    }


@pytest.mark.parametrize("arguments, message", [
    (["--task", "rec", "--schemes", "lmindexer_ids"], "--task rec takes --schemes random | kmeans"),
    (["--task", "retrieval", "--dataset", "scifact", "--schemes", "lmindexer_codebooks"], "--task retrieval takes"),
    (["--task", "retrieval", "--dataset", "scifact", "--peers", "sasrec"], "--peers are recommenders"),
    (["--task", "rec", "--schemes", "random", "--retriever_config", "t5"], "--retriever_config is for retrieval"),
    (["--task", "rec", "--schemes", "random", "--eval_every_minutes", "0"], "--eval_every_minutes must be positive"),
    (["--task", "rec", "--schemes", "random", "--zero_shot_beams", "20"], "--zero_shot_beams is for the retrieval"),
    (["--task", "retrieval", "--dataset", "scifact", "--zero_shot_beams", "20", "5"], "the largest cut-off 10, got"),
    (["--schemes", "kmeans", "--semantic_ids_file", "kmeans"], "'kmeans': expected SCHEME=FILE, SCHEME one of"),
    (["--schemes", "lmindexer_codebooks", "--semantic_ids_file", "lmindexer_codebooks=ids.json"],
     "'lmindexer_codebooks=ids.json': expected SCHEME=FILE"),
    (["--schemes", "kmeans", "--semantic_ids_file", "kmeans=a.json", "kmeans=b.json"], "'kmeans' has a file already"),
    (["--schemes", "kmeans", "--semantic_ids_file", "random=ids.json"], "not in --schemes: random"),
    (["--task", "retrieval", "--dataset", "scifact", "--schemes", "kmeans", "--semantic_ids_file", "kmeans=ids.json"],
     "--semantic_ids_file is for --task rec"),
])  # fmt: skip
def test_arguments_of_the_other_task_or_bad_id_files_are_refused(arguments, message, capsys):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.parse_arguments(arguments)
    assert message in capsys.readouterr().err


def test_variants_train_every_scheme_once_per_choice_with_its_flags(tmp_path):
    bench = load_benchmark()
    indexer = fake_indexer(tmp_path)
    args, extra = bench.parse_arguments([
        "--task", "retrieval", "--dataset", "scifact", "--indexer", str(indexer), "--schemes", "lmindexer",
        "--variants", "all=", "queries_only=--training_pairs query 'pseudo-query'", "--eval_every_minutes", "1",
        "--validation_queries", "50",
    ])  # fmt: skip
    assert args.variants == [("all", []), ("queries_only", ["--training_pairs", "query", "pseudo-query"])]
    assert extra == ["--validation_queries", "50"]
    command = bench.script_command(args, "lmindexer", 1, tmp_path, extra + args.variants[1][1])
    assert command[-11:] == [
        "--indexer", str(indexer), "--eval_every_minutes", "1.0", "--eval_on_start", "True", "--validation_queries",
        "50", "--training_pairs", "query", "pseudo-query",
    ]  # fmt: skip
    assert [bench.run_name("lmindexer", name) for name, _ in args.variants] == [
        "lmindexer-all",
        "lmindexer-queries_only",
    ]
    default = bench.parse_arguments(["--task", "retrieval", "--dataset", "scifact", "--schemes", "random"])[0]
    assert default.variants == [("", [])]


@pytest.mark.parametrize("arguments, message", [
    (["--variants", "no_flags"], "--variants takes NAME=FLAGS"),
    (["--variants", "a b=--learning_rate 1"], "--variants takes NAME=FLAGS"),
    (["--variants", "a=", "a=--learning_rate 1"], "--variants names must differ"),
    (["--eval_every_minutes", "1"], "pass --validation_queries N (missing for default)"),
    (["--variants", "a=--validation_queries 5", "b=", "--eval_every_minutes", "1"], "(missing for b)"),
])  # fmt: skip
def test_bad_variants_are_refused(arguments, message, capsys):
    bench = load_benchmark()
    with pytest.raises(SystemExit):
        bench.parse_arguments(["--task", "retrieval", "--dataset", "scifact", "--schemes", "random", *arguments])
    assert message in capsys.readouterr().err


@pytest.mark.slow  # two variants of a real training run each: about 20 s
def test_retrieval_variants_side_by_side_with_validation_curves(t5_tokenizer, tmp_path, quiet_subprocesses):
    bench = load_benchmark()
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(doc) for doc in range(1, 13)], t5_tokenizer)
    result = bench.main([
        "--task", "retrieval", "--dataset", "cranfield", "--data_dir", str(data_dir), "--schemes", "lmindexer",
        "--indexer", str(indexer), "--budget_minutes", "1", "--num_train_epochs", "2", "--eval_every_minutes",
        "0.000001", "--variants", "all=", "queries=--training_pairs query", "--zero_shot_beams",
        "--output_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"), "--results_name",
        "choices",
        # passed through to examples/run_retrieval.py
        "--validation_queries", "1", "--per_device_train_batch_size", "3", "--disable_tqdm", "True",
        "--log_level", "warning",
    ])  # fmt: skip
    assert [(row["scheme"], row["id_scheme"], row["variant"]) for row in result["rows"]] == [
        ("lmindexer-all", "lmindexer", "all"), ("lmindexer-queries", "lmindexer", "queries")
    ]  # fmt: skip
    assert [row["system"] for row in result["rows"]] == [
        "LMIndexer (learned) [all: defaults]", "LMIndexer (learned) [queries: --training_pairs query]"
    ]  # fmt: skip
    assert result["variants"] == {"all": [], "queries": ["--training_pairs", "query"]}
    # 9 query pairs (one of the 4 training queries held out) and 12 indexing pairs at batch 3: 7 steps an epoch;
    # 3 steps an epoch on the 9 query pairs alone. One validation point per step.
    assert [row["optimizer_steps"] for row in result["rows"]] == [14, 6]
    for row in result["rows"]:
        assert len(row["curve"]) == row["optimizer_steps"] + 1  # and one before training (--eval_on_start)
        assert all(0.0 <= point["recall@10"] <= 1.0 for point in row["curve"])
    assert "trained on query pairs only (--training_pairs)" in result["rows"][1]["labels"]
    # The table's labels: the held-out queries concern every row, the training pairs one variant only.
    assert result["labels"] == [
        "1 training queries held out for validation (--validation_queries, seed 42)",
        "trained on query pairs only (--training_pairs) (rows lmindexer-queries)",
    ]
    assert set(result["seed_spread"]) == {"lmindexer-all", "lmindexer-queries"}
    markdown = (tmp_path / "results" / "choices.md").read_text()
    assert "| LMIndexer (learned) [queries: --training_pairs query] | t5 | 42 |" in markdown
    assert (tmp_path / "results" / "choices_recall_vs_time.png").is_file()
    assert (tmp_path / "runs" / "lmindexer-queries-seed42" / "retrieval_report.json").is_file()


def test_zero_shot_beams_default_to_three_widths_with_an_indexer_and_none_without(tmp_path):
    bench = load_benchmark()
    indexer = str(fake_indexer(tmp_path))
    retrieval = ["--task", "retrieval", "--dataset", "scifact", "--indexer", indexer]
    assert bench.parse_arguments(retrieval)[0].zero_shot_beams == [20, 50, 100]
    assert bench.parse_arguments([*retrieval, "--zero_shot_beams"])[0].zero_shot_beams == []
    assert bench.parse_arguments([*retrieval, "--schemes", "random", "kmeans"])[0].zero_shot_beams == []
    assert bench.parse_arguments(["--task", "rec", "--indexer", indexer])[0].zero_shot_beams == []
    # The zero-shot retriever truncates queries as the script does, which reads the flag passed through.
    args, extra = bench.parse_arguments([*retrieval, "--max_query_length", "8"])
    assert args.max_query_length == 8 and extra == ["--max_query_length", "8"]
    assert bench.parse_arguments(retrieval)[0].max_query_length == 64


def test_zero_shot_rows_rank_the_test_queries_with_the_untrained_retriever(t5_tokenizer, tmp_path):
    bench = load_benchmark()
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    # The indexer knows the documents of two of the four topics: the test queries of the other two, without a relevant
    # document with an ID, are left out, as the script leaves them out of the lmindexer row.
    indexer = save_tiny_indexer(tmp_path / "indexer", ["1", "2", "5", "6", "9", "10"], t5_tokenizer)
    args, _ = bench.parse_arguments([
        "--task", "retrieval", "--dataset", "cranfield", "--data_dir", str(data_dir), "--schemes", "lmindexer",
        "--indexer", str(indexer), "--zero_shot_beams", "10", "40",
    ])  # fmt: skip
    rows = bench.zero_shot_rows(args, 42, {})
    assert [row["system"] for row in rows] == [
        "LMIndexer, no fine-tuning (zero-shot), 10 beams", "LMIndexer, no fine-tuning (zero-shot), 40 beams"
    ]  # fmt: skip
    for row, num_beams in zip(rows, (10, 40)):
        assert row["num_beams"] == num_beams and row["num_test_queries"] == 2  # of the corpus's 4
        assert set(bench.METRIC_COLUMNS["retrieval"]) <= set(row["metrics"])
        assert all(0.0 <= value <= 1.0 for value in row["metrics"].values())
        assert row["milliseconds_per_query"] > 0 and row["training_wall_time_seconds"] == 0.0
        assert row["id_quality"]["codebook_sizes"][:2] == [8, 6]  # the indexer's IDs


def test_renormalized_zero_shot_rows_rank_as_the_retriever_does_with_renormalized_logits(t5_tokenizer, tmp_path):
    bench = load_benchmark()
    data_dir = write_synthetic_cranfield(tmp_path / "data")
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(doc) for doc in range(1, 13)], t5_tokenizer)
    arguments = [
        "--task", "retrieval", "--dataset", "cranfield", "--data_dir", str(data_dir), "--schemes", "lmindexer",
        "--indexer", str(indexer), "--zero_shot_renormalized",
    ]  # fmt: skip
    args, _ = bench.parse_arguments([*arguments, "--zero_shot_beams", "10"])
    rows = bench.zero_shot_rows(args, 42, {})
    assert [(row["system"], row["renormalize_logits"]) for row in rows] == [
        ("LMIndexer, no fine-tuning (zero-shot), 10 beams", False),
        ("LMIndexer, no fine-tuning (zero-shot), 10 beams, scores renormalised over the valid codes", True),
    ]
    retriever = LMIndexerRetriever.from_indexer(LMIndexerForSemanticID.from_pretrained(indexer))
    task, _, _ = bench.load_task(args, 42)
    queries, references = [query.source for query in task.test], [query.relevance for query in task.test]
    for row in rows:
        rankings = retriever.retrieve(queries, t5_tokenizer, k=10, renormalize_logits=row["renormalize_logits"])
        assert row["metrics"] == compute_retrieval_metrics(rankings, references, bench.TASKS["retrieval"]["k_values"])
    assert rows[0]["metrics"] != rows[1]["metrics"]  # renormalising changes this untrained retriever's rankings
    with pytest.raises(SystemExit):
        bench.parse_arguments([*arguments, "--zero_shot_beams"])


def test_reference_rows_time_the_search_of_the_test_queries_without_building_the_index(tmp_path, monkeypatch):
    bench = load_benchmark()
    data_dir = write_synthetic_cranfield(tmp_path / "data")

    def slow_index(doc_ids, texts, depth):
        time.sleep(0.5)  # building the index

        def search(queries):
            time.sleep(0.01 * len(queries))
            return [doc_ids[:depth] for _ in queries]

        return search

    monkeypatch.setattr(bench, "bm25_index", slow_index)
    monkeypatch.setattr(bench, "dense_index", slow_index)
    args, _ = bench.parse_arguments(
        ["--task", "retrieval", "--dataset", "cranfield", "--data_dir", str(data_dir), "--schemes", "random"]
    )
    rows = bench.reference_rows(args, 42)
    assert [row["system"] for row in rows] == ["BM25 (bm25s)", "dense retrieval (MiniLM, exact cosine, faiss)"]
    for row in rows:
        assert row["num_test_queries"] == 4
        assert 10 <= row["milliseconds_per_query"] < 100  # the search alone: 10 ms a query, not the 500 ms index
        assert row["wall_time_seconds"] >= 0.5  # the index is part of the row's wall time


def test_a_retriever_trained_from_scratch_serves_every_row_but_lmindexer(tmp_path):
    bench = load_benchmark()
    indexer = fake_indexer(tmp_path)
    overrides = "num_layers=4,d_model=128"
    args, extra = bench.parse_arguments([
        "--task", "retrieval", "--dataset", "scifact", "--indexer", str(indexer), "--retriever_config", "t5",
        "--retriever_config_overrides", overrides,
    ])  # fmt: skip
    for scheme in args.schemes:
        command = bench.script_command(args, scheme, 42, tmp_path, extra)
        from_scratch = ["--backbone_config", "t5", "--backbone_config_overrides", overrides]
        if scheme == "lmindexer":
            assert "--backbone_config" not in command  # the paper's retriever starts from its indexer
        else:
            assert command[-4:] == from_scratch


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_beauty_table_with_recommender_rows_a_cornac_peer_and_curves(t5_tokenizer, tmp_path, quiet_subprocesses):
    bench = load_benchmark()
    data_dir = write_synthetic_beauty(tmp_path / "data")
    indexer = save_tiny_indexer(tmp_path / "indexer", [str(item) for item in range(12)], t5_tokenizer)
    arguments = [
        "--task", "rec", "--dataset", "beauty", "--data_dir", str(data_dir), "--schemes", "random",
        "lmindexer_codebooks", "--indexer", str(indexer), "--peers", "sasrec", "--seeds", "1", "--budget_minutes", "1",
        "--num_train_epochs", "2", "--eval_every_minutes", "0.0001", "--keep_best_validation_state",
        "--output_dir", str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results"),
        # passed through to examples/run_recommendation.py
        "--codebook_sizes", "4", "4", "--per_device_train_batch_size", "4", "--decoder_config_overrides",
        "hidden_size=16,intermediate_size=32,num_hidden_layers=1,num_attention_heads=2,num_key_value_heads=2",
        "--disable_tqdm", "True", "--log_level", "warning",
    ]  # fmt: skip
    result = bench.main(arguments)

    assert [row["scheme"] for row in result["rows"]] == ["random", "lmindexer_codebooks"]
    for row in result["rows"]:
        assert set(bench.METRIC_COLUMNS["rec"]) <= set(row["metrics"])
        assert row["num_test_queries"] == len(SYNTHETIC_SEQUENCES) and row["epochs_done"] == 2.0
        assert row["retriever"].startswith("LMIndexerRecommender (llama, width 16")
        assert row["targets_per_second"] > 0
        # The recommendation report keeps its beam width with the training fields.
        assert row["num_beams"] == 20 and row["milliseconds_per_query"] > 0
        curve = row["curve"]
        assert len(curve) >= 1 and all(0.0 <= point["recall@10"] <= 1.0 for point in curve)
        assert [point["training_minutes"] for point in curve] == sorted(point["training_minutes"] for point in curve)
        # Tested with the weights of the best validation point, the one before training included (the first of
        # equals, as the Trainer keeps it).
        best = max(curve, key=lambda point: point["recall@10"])
        assert row["tested_weights"]["weights"] == "best validation"
        assert row["tested_weights"]["value"] == best["recall@10"]
        assert row["tested_weights"]["training_minutes"] == best["training_minutes"]
    (sasrec,) = result["peer_rows"]
    assert sasrec["tested_weights"]["weights"] == "best validation"
    assert sasrec["tested_weights"]["value"] == max(point["recall@10"] for point in sasrec["curve"])
    assert sasrec["scheme"] == "sasrec" and sasrec["config"]["loss"] == "bce" and sasrec["config"]["n_epochs"] == 2.0
    assert sasrec["stopped_by"] == "n_epochs" and sasrec["epochs_done"] == pytest.approx(2.0, abs=0.01)
    assert sasrec["num_test_queries"] == len(SYNTHETIC_SEQUENCES) and sasrec["curve"][-1]["recall@10"] is not None
    assert [row["system"] for row in result["reference_rows"]] == ["popularity (most frequent training targets)"]
    assert result["reference_rows"][0]["milliseconds_per_query"] > 0 and result["zero_shot_rows"] == []
    assert set(result["seed_spread"]) == {"random", "lmindexer_codebooks", "sasrec"}
    training_sequences = [[str(item) for item in items[:-2]] for items in SYNTHETIC_SEQUENCES.values()]
    for row in result["rows"]:
        semantic_ids = SemanticIDs.load(tmp_path / "runs" / f"{row['scheme']}-seed1" / "semantic_ids.json")
        learned_codes = semantic_ids.codes[:, : semantic_ids.num_learned_levels]
        sharing = row["id_quality"]["consecutive_prefix_sharing"]
        assert len(sharing) == learned_codes.shape[1] and sharing == sorted(sharing, reverse=True)
        expected = consecutive_prefix_sharing(training_sequences, semantic_ids.doc_ids, learned_codes)
        assert sharing == pytest.approx(expected, abs=1e-4)

    results_dir = tmp_path / "results"
    markdown = (results_dir / "quality_rec_beauty.md").read_text()
    assert "## Peer recommenders (cornac), same split and training minutes" in markdown
    assert "| SASRec (cornac), tuned config (loss bce) | 1 |" in markdown
    assert markdown.count(" | best at ") == 3  # the tested weights of both schemes and of the peer
    assert f"| {bench.PREFIX_SHARING_COLUMN} |" in markdown and f"{bench.PREFIX_SHARING_COLUMN}: of the" in markdown
    assert "| TIGER (Rajput et al., 2023), published | 0.0454 | 0.0648 | 0.0321 | 0.0384 | n/a | - |" in markdown
    assert "| LMIndexer (learned), ID-token embeddings from its codebooks | LMIndexerRecommender" in markdown
    assert (results_dir / "quality_rec_beauty_recall_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --resume keeps the peer's result as well as the schemes' runs.
    resumed = bench.main([*arguments, "--resume"])
    assert resumed["peer_rows"] == result["peer_rows"] and resumed["rows"] == result["rows"]


def test_rows_of_other_commits_are_named_peer_rows_included():
    bench = load_benchmark()
    result = {
        "machine": {"git_commit": "abc"},
        "rows": [{"scheme": "rq_kmeans", "seed": 42, "commit": "abc"}, {"scheme": "lmindexer", "seed": 42}],
        "peer_rows": [{"scheme": "sasrec_ce", "seed": 42, "commit": "d1513960f6"}],
    }
    note, blank = bench._other_commits_note(result)
    assert blank == "" and note.endswith("after a commit): sasrec_ce seed 42 at d151396.**")


def test_popularity_ranks_the_most_frequent_training_targets():
    bench = load_benchmark()
    train = [TrainingPair(("a",), target, "next-item") for target in ["x", "y", "y", "z", "y", "x"]]
    test = [EvaluationQuery("u1", ("a",), {"y": 1}), EvaluationQuery("u2", ("b",), {"z": 1})]
    task = RetrievalTask("synthetic", "sequential recommendation", train, [], test, "leave-one-out")
    assert bench.popularity_index(task, depth=2)(task.test) == [["y", "x"], ["y", "x"]]


def test_table_labels_name_each_seeded_label_once_with_its_seeds():
    bench = load_benchmark()
    held_out = "30 training queries held out for validation (--validation_queries, seed {})"
    rows = [
        {"scheme": scheme, "labels": [held_out.format(seed), *extra]}
        for seed in (1, 2, 3)
        for scheme, extra in (("lmindexer-all", []), ("lmindexer-queries", ["trained on query pairs only"]))
    ]
    assert bench.table_labels(rows) == [
        "30 training queries held out for validation (--validation_queries, seeds 1, 2, 3)",
        "trained on query pairs only (rows lmindexer-queries)",
    ]
    assert bench.table_labels(rows[:2]) == [
        "30 training queries held out for validation (--validation_queries, seed 1)",
        "trained on query pairs only (rows lmindexer-queries)",
    ]


def test_seed_spread_and_markdown_of_a_written_result(tmp_path):
    bench = load_benchmark()
    rows = [
        {
            "scheme": "kmeans",
            "system": bench.SCHEME_NAMES["kmeans"],
            "seed": seed,
            "commit": commit,
            "retriever": "t5 from scratch (num_layers=4,d_model=128)",
            "metrics": {"recall@5": recall / 2, "recall@10": recall, "ndcg@5": recall / 3, "ndcg@10": recall / 2},
            "id_quality": {
                "ami_level_1": 0.3,
                "ami_full_id": 0.5,
                "collision_rate_before_resolution": 0.02,
                "code_usage_perplexity": [200.5, 180.0, 150.25],
                "codebook_sizes": [256, 256, 256, 4],
            },
            "training_wall_time_seconds": 600.0 + seed,
            "evaluation_wall_time_seconds": 60.0,
            "num_beams": 20,
            "milliseconds_per_query": 600.0 if seed == 2 else None,
            "stopped_by_time_budget": True,
            "optimizer_steps": 1000,
            "epochs_done": 3.5,
            "num_test_queries": 100,
            "labels": [],
        }
        for seed, recall, commit in ((1, 0.04, "0123456789ab"), (2, 0.06, "abc"), (3, 0.05, "abc"))
    ]
    spread = bench.seed_spread(rows, bench.METRIC_COLUMNS["rec"])
    assert spread["kmeans"]["recall@10"]["mean"] == pytest.approx(0.05)
    assert (spread["kmeans"]["recall@10"]["min"], spread["kmeans"]["recall@10"]["max"]) == (0.04, 0.06)
    result = {
        "task": "rec",
        "dataset": "beauty",
        "command": "python benchmarks/bench_quality.py --seeds 1 2 3",
        "seeds": [1, 2, 3],
        "budget_minutes": 10.0,
        "labels": ["time order: file order"],
        "metric_columns": list(bench.METRIC_COLUMNS["rec"]),
        "rows": rows,
        "zero_shot_rows": [
            {
                "scheme": "lmindexer_zero_shot",
                "system": "LMIndexer, no fine-tuning (zero-shot), 50 beams",
                "seed": 1,
                "retriever": "t5-base (the indexer's, no fine-tuning)",
                "num_beams": 50,
                "metrics": {"recall@5": 0.01, "recall@10": 0.02, "ndcg@5": 0.005, "ndcg@10": 0.01},
                "milliseconds_per_query": 12.345,
                "id_quality": rows[0]["id_quality"],
                "training_wall_time_seconds": 0.0,
                "num_test_queries": 100,
                "labels": [],
            }
        ],
        "reference_rows": [
            {
                "system": "popularity",
                "metrics": {"recall@10": 0.01},
                "wall_time_seconds": 0.1,
                "milliseconds_per_query": 0.004,
            }
        ],
        "published": bench.PUBLISHED[("rec", "beauty")],
        "seed_spread": spread,
        "machine": {"git_commit": "abc", "platform": "Linux", "cpu_count": 2, "torch": "2.13.0"},
        "torch_threads": 2,
        "wall_time_seconds": 1800.0,
    }
    json_file, markdown_file = bench.write_results(result, tmp_path)
    assert json.loads(json_file.read_text()) == result
    markdown = markdown_file.read_text()
    assert "> **time order: file order**" in markdown
    assert (
        "> **Rows trained at another commit than the table's (kept by `--resume` or `--keep_rows_from`, or started "
        "after a commit): kmeans seed 1 at 0123456.**"
    ) in markdown
    assert (
        "| hierarchical k-means (DSI) on MiniLM embeddings | t5 from scratch (num_layers=4,d_model=128) | 2 | 0.0300 "
        "| 0.0600 |"
    ) in markdown
    assert "| TIGER (Rajput et al., 2023), published | 0.0454 | 0.0648 | 0.0321 | 0.0384 | n/a | - |" in markdown
    # Beams and ms per query follow the metrics; n/a where a run measured none, "-" what an untrained row lacks.
    assert "| 0.0300 | 0.0600 | 0.0200 | 0.0300 | 20 | 600.000 | 0.3000 |" in markdown
    assert "| 0.0200 | 0.0400 | 0.0133 | 0.0200 | 20 | n/a | 0.3000 |" in markdown
    assert (
        "| LMIndexer, no fine-tuning (zero-shot), 50 beams | t5-base (the indexer's, no fine-tuning) | 1 | 0.0100 | "
        "0.0200 | 0.0050 | 0.0100 | 50 | 12.345 |"
    ) in markdown
    assert markdown.count("| 0.0 | - | - | - | - |") == 1  # its training minutes, steps, epochs, targets/s, budget
    assert "| popularity | - | 0.0100 | - | - | 0.004 | 0.1 |" in markdown
    assert "on this machine (CPU, 2 torch threads)" in markdown
    assert "0.0500 (0.0400-0.0600" in markdown and "200.5, 180, 150.25" in markdown
    assert os.path.getsize(tmp_path / "quality_rec_beauty_metrics.png") > 1000
