"""benchmarks/bench_decoding.py: a tiny --quick run writes every method row, passing checks and measured ratios."""

import importlib.util
import json
from pathlib import Path

import pytest


SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_decoding.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_decoding", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # seconds: a subprocess (script, import check) or several trainings
def test_quick_tiny_run_writes_the_grid_checks_and_ratios(tmp_path):
    bench = load_benchmark()
    bench.main(["--quick", "--model_size", "tiny", "--repeats", "1", "--threads", "1", "--results_dir", str(tmp_path)])

    result = json.loads((tmp_path / "decoding_quick.json").read_text())
    markdown = (tmp_path / "decoding_quick.md").read_text()
    assert result["machine"]["torch"] and result["seed"] == 42 and result["arguments"]["quick"]
    assert [(cell["num_ids"], cell["num_beams"]) for cell in result["cells"]] == [(10**4, 10), (10**4, 20)]
    for cell in result["cells"]:
        medians = {method: cell["ms_per_query"][method]["median"] for method in bench.METHODS}
        assert all(median > 0 for median in medians.values())
        for name, (numerator, denominator) in bench.RATIOS.items():
            assert cell["ratios"][name] == pytest.approx(medians[numerator] / medians[denominator], abs=1e-3)
        checks = cell["checks"]
        assert checks["trie_matches_prefix_fn"] is True and checks["id_beam_search_matches_generic"] is True
        masking = cell["masking"]["ms_per_batch"]
        assert masking["trie"]["median"] > 0 and masking["prefix_fn"]["median"] > 0
        expected_masking_ratio = masking["prefix_fn"]["median"] / masking["trie"]["median"]
        assert cell["masking"]["prefix_fn_over_trie"] == pytest.approx(expected_masking_ratio, abs=1e-3)
        assert checks["trie_only_valid_ids"] is True and checks["id_only_trie_only_valid_ids"] is True
    assert len({ratio for cell in result["cells"] for ratio in cell["ratios"].values()}) > 1

    (trie,) = result["tries"]
    assert trie["num_ids"] == 10**4 and 0 < trie["trie_bytes_per_id"] < trie["dict_trie_bytes_per_id"]
    verdict = result["acceptance"]
    assert (verdict["num_ids"], verdict["num_beams"], verdict["at_target_cell"]) == (10**4, 20, False)
    values = {criterion["name"]: criterion["value"] for criterion in verdict["criteria"]}
    assert values == {
        "trie_over_unconstrained": result["cells"][1]["ratios"]["trie_over_unconstrained"],
        "prefix_fn_over_trie": result["cells"][1]["ratios"]["prefix_fn_over_trie"],
        "masking_prefix_fn_over_trie": result["cells"][1]["masking"]["prefix_fn_over_trie"],
        "prefix_fn_over_id_only_trie": result["cells"][1]["ratios"]["prefix_fn_over_id_only_trie"],
        "trie_bytes_per_id": trie["trie_bytes_per_id"],
    }

    load = result["under_load"]
    assert (load["num_ids"], load["num_beams"], load["threads"]) == (10**4, 20, 1)
    for condition in ("quiet", "beside a CPU-bound process"):
        timings = load["conditions"][condition]
        assert set(timings["masking_ms_per_batch"]) == {"trie, 1 thread", "trie, 1 threads", "prefix_fn"}
        assert all(summary["median"] > 0 for summary in timings["decoding_ms_per_query"].values())
    assert "## Under load" in markdown and "decoding: (d), 1 thread" in markdown

    for description in bench.METHODS.values():
        assert description in markdown
    assert "indicative only" in markdown and ("PASS" in markdown or "FAIL" in markdown)
