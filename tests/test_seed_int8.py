"""handnet.experiments.seed_int8: prepared files time in pinned processes, paired ratios are
Keras over int8 against the fastest backend (no timing assertions: speed is noisy)."""

import json

import pytest
from handnet.experiments import seed_int8


def test_ratio_table_divides_the_fastest_keras_backend_by_int8_within_each_pair():
    rows = [{"threads": 1, "pair": 0, "kind": "blazepalm", "median_ms": 12.0},
            {"threads": 1, "pair": 1, "kind": "int8", "median_ms": 50.0},
            {"threads": 1, "pair": 1, "kind": "keras-jax", "median_ms": 600.0},
            {"threads": 1, "pair": 1, "kind": "keras-torch", "median_ms": 900.0},
            {"threads": 1, "pair": 2, "kind": "int8", "median_ms": 80.0},
            {"threads": 1, "pair": 2, "kind": "keras-jax", "median_ms": 700.0},
            {"threads": 1, "pair": 2, "kind": "keras-torch", "median_ms": 640.0}]
    lines = seed_int8.ratio_table(rows).splitlines()
    assert lines[0] == "| threads | pair | int8 ms | keras-jax ms | keras-torch ms | Keras / int8 |"
    assert lines[2:4] == ["| 1 | 1 | 50.0 | 600.0 | 900.0 | 12.0x |",   # 600 / 50
                          "| 1 | 2 | 80.0 | 700.0 | 640.0 | 8.0x |"]    # 640 / 80: torch was faster here
    assert lines[-1] == "median Keras / int8 over 2 pairs: 10.0x; 1 of 2 reach 10x"


def test_prepared_folder_times_int8_and_keras_in_pinned_processes(tmp_path, capsys):
    folder = seed_int8.prepare(tmp_path / "fast", preset="fast")  # the small preset: same files, quicker
    assert {"config.json", "fast-fp32.tflite", "fast-int8.tflite"} <= {p.name for p in folder.iterdir()}
    out = tmp_path / "rows.json"
    assert seed_int8.main(["time", str(folder), "--threads", "1", "--pairs", "1", "--runs", "3",
                           "--keras-runs", "2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    kinds = [r["kind"] for r in rows if r["pair"] == 1]
    assert kinds == ["int8", "keras-tensorflow"]
    assert all(0 < r["median_ms"] <= r["p90_ms"] and r["peak_rss_mb"] > 10 for r in rows)
    assert [r["backend"] for r in rows if r["kind"] == "keras-tensorflow"] == ["tensorflow"]
    assert "| 1 | 1 |" in capsys.readouterr().out


def test_missing_files_and_too_many_cores_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"preset": "seed"}))
    assert seed_int8.main(["time", str(tmp_path)]) == 2
    assert "seed-int8.tflite: missing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="asked for"):
        seed_int8.run_worker("tflite", tmp_path / "x.tflite", threads=4096, first_core=0, runs=1, warmup=0)
