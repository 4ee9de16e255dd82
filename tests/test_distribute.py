"""train.py under tf.distribute on CPU: mirrored over two logical CPU devices, multiworker as two
local processes on loopback, and the training arithmetic (--precision); each run must produce a
normal run folder."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest
from conftest import ROOT

import train
import handnet.distribute
from handnet.config import Config
from handnet.distribute import cpu_has_bfloat16, is_chief, resolve_precision

FLAGS = ["--input-size", "64", "96", "--batch-size", "4", "--epochs", "2", "--seed", "1", "--no-export"]
TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import train
sys.exit(train.main(sys.argv[1:]))
"""


def python(args, env=None):
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def assert_run_folder(out):
    for name in ("config.json", "model.keras", "metrics.json", "history.csv"):
        assert (out / name).is_file(), name
    assert len((out / "history.csv").read_text().splitlines()) == 3


def test_mirrored_over_two_logical_cpus(tmp_path, tiny_synthetic):
    out = tmp_path / "mirrored"
    proc = python(["-c", TWO_CPUS, "--data", str(tiny_synthetic), "--out", str(out), "--strategy", "mirrored", *FLAGS])
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert "training on 2 replicas" in log
    assert_run_folder(out)


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multiworker_as_two_local_processes(tmp_path, tiny_synthetic):
    out = tmp_path / "cluster"
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    procs = [python(["train.py", "--data", str(tiny_synthetic), "--out", str(out), "--strategy", "multiworker", *FLAGS],
                    {"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert all("training on 2 replicas" in log for log in logs)
    assert_run_folder(out)  # written by the chief alone
    assert f"run folder: {out}" in logs[0] and "run folder: " not in logs[1]


def test_multiworker_without_tf_config_is_a_clear_error(tmp_path, tiny_synthetic, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert train.main(["--data", str(tiny_synthetic), "--out", str(tmp_path / "x"), "--strategy", "multiworker"]) == 2
    assert "needs TF_CONFIG" in capsys.readouterr().err


@pytest.mark.parametrize("tf_config, chief", [
    ("", True),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}', False),
    ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', False),
    ('{"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', True),
])
def test_only_the_chief_writes(tf_config, chief, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert is_chief() is chief


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_trains_and_saves_a_float32_model(tmp_path, tiny_synthetic, precision):
    out = tmp_path / precision
    try:
        assert train.main(["--data", str(tiny_synthetic), "--out", str(out), "--precision", precision, *FLAGS]) == 0
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert_run_folder(out)
    model = keras.saving.load_model(out / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert json.loads((out / "config.json").read_text())["precision"] == precision
    assert json.loads((out / "metrics.json").read_text())["train_precision"] == precision


CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni{}\n"


@pytest.mark.parametrize("extra, native", [("", False), (" avx512_bf16", True), (" amx_bf16 amx_tile", True),
                                           (" avx512_bf16x", False)])
def test_cpu_has_bfloat16_reads_the_cpu_flags(extra, native):
    assert cpu_has_bfloat16(CPUINFO.format(extra)) is native


@pytest.mark.parametrize("native, gpus, expected", [(True, [], "bfloat16"), (False, [], "float32"),
                                                    (True, ["GPU:0"], "float32")])
def test_auto_precision_is_bfloat16_only_on_cpus_that_have_it(monkeypatch, native, gpus, expected):
    monkeypatch.setattr(handnet.distribute, "cpu_has_bfloat16", lambda: native)
    monkeypatch.setattr(handnet.distribute.tf.config, "list_physical_devices", lambda kind=None: gpus)
    assert resolve_precision("auto") == expected
    assert resolve_precision("float16") == "float16"  # an explicit choice is kept


def test_configs_from_before_precision_load_as_they_trained():
    assert Config.from_dict({}).precision == "float32"
    assert Config.from_dict({}).flip is False  # nor did they flip without --augment
    assert Config.from_dict({"mixed_precision": True}).precision == "float16"
    assert Config.from_dict(json.loads(Config().to_json())).precision == "auto"  # a config saved today
    with pytest.raises(ValueError, match="unknown precision 'half'"):
        Config(precision="half")


def test_a_failed_mixed_precision_run_leaves_the_float32_policy(tmp_path, tiny_synthetic, monkeypatch, capsys):
    # The policy is process-wide: a run that dies mid-training must not leave every network
    # built afterwards in this process (a notebook, a test session) in float16.
    import handnet.training

    def crash(*args, **kwargs):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        raise RuntimeError("disk full")

    monkeypatch.setattr(handnet.training, "run_epochs", crash)
    try:
        code = train.main(["--data", str(tiny_synthetic), "--out", str(tmp_path / "crashed"), "--precision", "float16",
                           *FLAGS])
        assert code == 2 and "error: disk full" in capsys.readouterr().err
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")
