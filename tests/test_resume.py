"""Training survives interruption: a killed or Ctrl-C'd train.py resumes from its last epoch
checkpoint and ends where an uninterrupted run ends; and the same seed gives the same first epoch
(the synthetic set's bytes are checked in test_synthetic.py)."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

import train
from handnet.synthetic import generate_dataset
from handnet.training import CHECKPOINT

EPOCHS = 4
FLAGS = ["--input-size", "64", "96", "--batch-size", "4", "--epochs", str(EPOCHS), "--seed", "2", "--no-export"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("resume") / "scenes", 96, (64, 96), seed=5, progress=False)


def start(out, scenes, *extra):
    cmd = [sys.executable, str(ROOT / "train.py"), "--data", str(scenes), "--out", str(out), *FLAGS, *extra]
    # A shell's background jobs (CI runners, `cmd &`) ignore SIGINT, and an ignored signal stays
    # ignored across exec; the run must see Ctrl-C as a terminal would deliver it.
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def interrupt_after_first_epoch(proc, out, sig):
    """Send `sig` soon after the first checkpoint appears, while later epochs are running."""
    deadline = time.time() + 300
    while not (out / CHECKPOINT).exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no checkpoint after 300 s"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    return proc.communicate(timeout=120)


def epochs_done(out):
    with np.load(out / CHECKPOINT) as data:
        return int(data["epochs_done"])


def losses(out):
    with open(out / "history.csv") as f:
        return [(int(row["epoch"]), float(row["loss"])) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, scenes):
    out = tmp_path_factory.mktemp("whole") / "run"
    proc = start(out, scenes)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return out


def test_a_killed_run_resumes_and_ends_like_an_uninterrupted_one(tmp_path, scenes, uninterrupted):
    out = tmp_path / "killed"
    interrupt_after_first_epoch(start(out, scenes), out, signal.SIGKILL)
    # Determinism: the same seed gives the same first-epoch loss, to the last digit.
    assert losses(out)[0] == losses(uninterrupted)[0]
    assert not (out / "model.keras").exists()
    done = epochs_done(out)
    assert 1 <= done < EPOCHS  # killed mid-run, after at least one checkpoint
    assert train.main(["--resume", str(out)]) == 0
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()
    resumed, whole = losses(out), losses(uninterrupted)
    assert [e for e, _ in resumed] == list(range(EPOCHS))  # the curve joins up: every epoch once
    # Same optimizer state, schedule and data order: the same losses as the run nobody stopped.
    np.testing.assert_allclose([l for _, l in resumed], [l for _, l in whole], rtol=1e-3)


def test_ctrl_c_exits_cleanly_with_a_resume_hint(tmp_path, scenes):
    out = tmp_path / "stopped"
    # Many epochs, so the signal cannot arrive after a fast machine has already finished the run.
    proc = start(out, scenes, "--epochs", "40")
    stdout, stderr = interrupt_after_first_epoch(proc, out, signal.SIGINT)
    assert proc.returncode == 130, stdout[-2000:] + stderr
    assert f"python train.py --resume {out}" in stderr
    assert epochs_done(out) >= 1 and (out / "config.json").is_file() and (out / "curves.png").is_file()
    # A new run must not silently take over the interrupted one's folder.
    assert train.main(["--data", str(scenes), "--out", str(out), *FLAGS]) == 2


def test_ctrl_c_while_a_resumed_run_prepares_its_examples_keeps_the_resume_hint(tmp_path, scenes, capsys,
                                                                               monkeypatch):
    out = tmp_path / "prepare-stopped"
    interrupt_after_first_epoch(start(out, scenes), out, signal.SIGKILL)
    done = epochs_done(out)

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("handnet.training.PreparedExamples", pressed)
    assert train.main(["--resume", str(out)]) == 130
    assert f"python train.py --resume {out}" in capsys.readouterr().err
    assert epochs_done(out) == done and not (out / "prepared").exists()


def test_resume_needs_a_checkpoint_and_no_other_flags(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path)]) == 2
    assert "no checkpoints/last.npz to resume from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--resume", str(tmp_path), "--epochs", "3"])


def test_ctrl_c_during_fit_waits_for_the_next_batch_end():
    # Python may raise KeyboardInterrupt inside a weakref callback, which drops it; during fit the
    # handler only takes note, and the next batch end raises where nothing can swallow it.
    from handnet.training import StopOnCtrlC

    before = signal.getsignal(signal.SIGINT)
    with StopOnCtrlC() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handler has run by now, and raised nothing
        assert stop.pressed
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_batch_end(0)
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
    assert signal.getsignal(signal.SIGINT) is before


def test_a_process_that_ignores_ctrl_c_keeps_ignoring_it():
    from handnet.training import StopOnCtrlC

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopOnCtrlC() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            stop.on_train_batch_end(0)  # nothing was noted, nothing raises
    finally:
        signal.signal(signal.SIGINT, before)


def test_sigterm_stops_training_as_ctrl_c_does():
    # kill, a scheduler or a closing terminal sends SIGTERM, and a script's background job gets
    # only that: during fit it is noted and raised at the next batch end, elsewhere at once, and
    # train.py exits 130 with "interrupted" instead of dying without the resume command.
    from handnet.training import StopOnCtrlC

    before = signal.getsignal(signal.SIGTERM)
    with StopOnCtrlC() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert stop.pressed
        with pytest.raises(KeyboardInterrupt):
            stop.on_train_batch_end(0)
    assert signal.getsignal(signal.SIGTERM) is before

    def job():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM did not stop the job")

    assert train.run_job(job) == 130
    assert signal.getsignal(signal.SIGTERM) is before
