"""handnet.bench runs end to end and reports every mode (no timing assertions: speed is noisy)."""

import pytest
from conftest import ROOT
from handnet import bench

ANCHOR = ROOT.parent / "shared" / "anchors" / "palm_detection_full.tflite"


def test_bench_reports_every_mode_with_memory(tmp_path, capsys):
    table = tmp_path / "performance.md"
    assert bench.main(["--presets", "fast", "--threads", "1", "--runs", "3", "--warmup", "1",
                       "--markdown", str(table)]) == 0
    text = table.read_text()
    assert "Machine:" in text
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| fast")]
    assert sorted(r[1].strip() for r in rows) == sorted(bench.MODES)
    for row in rows:
        median, p90, rss = float(row[3]), float(row[4]), float(row[6])
        assert 0 < median <= p90 and rss > 10
    tflite_rows = [r for r in rows if r[1].strip() != "keras"]
    assert all(r[5].strip() != "-" for r in tflite_rows), "the runtime's detect() is timed too"
    if ANCHOR.is_file():  # the reference is measured in the same run, and ratios are to it
        assert "| palm_detection_full | BlazePalm fp32 | 1 |" in text
        assert all(r[7].strip() != "-" for r in rows)


@pytest.mark.slow  # a benchmark: trains in a subprocess at full frame size
def test_training_memory_reports_peak_rss_per_dataset_size(tmp_path, capsys):
    assert bench.main(["--training-memory", "20", "--workdir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    (row,) = [line for line in printed.splitlines() if line.startswith("| 20 |")]
    assert 100 < float(row.split("|")[2]) < 24000  # a real process's peak, in MB
    assert (tmp_path / "run-20" / "model.keras").is_file()  # it really trained
