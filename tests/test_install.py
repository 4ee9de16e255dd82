"""What a game ships: `pip install handnet[runtime]` into a fresh environment (NumPy, OpenCV,
LiteRT; no TensorFlow) finds the same hands as the full install does."""

import json
import shutil
import subprocess
import sys

import cv2

from conftest import ROOT
from handnet.runtime import HandDetector
from handnet.synthetic import generate_scene

MODEL = ROOT / "models" / "handnet-fast-int8.tflite"
DETECT = """
import json, sys
import cv2
from handnet.runtime import HandDetector
hands = HandDetector(sys.argv[1], num_threads=1).detect(cv2.imread(sys.argv[2]))
heavy = sorted(name for name in ("tensorflow", "keras", "tf_keras") if name in sys.modules)
print(json.dumps({"hands": [[h.x, h.y, h.label] for h in hands], "heavy": heavy}))
"""


def test_the_runtime_extra_installs_alone_and_finds_the_same_hands(tmp_path):
    scene = tmp_path / "scene.png"
    for index in range(20):  # a fresh synthetic scene in which the shipped model finds a hand
        image, _ = generate_scene(seed=777, index=index)
        expected = HandDetector(MODEL, num_threads=1).detect(image)
        if expected:
            cv2.imwrite(str(scene), image)
            break
    assert expected, "no scene with a hand found"
    source = tmp_path / "src"  # only what the package is made of, so the build leaves the checkout alone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "handnet", source / "handnet", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The pinned versions as constraints: the same wheels the project's own install fetched.
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "-c",
                              str(ROOT / "requirements.txt"), f"{source}[runtime]"], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            check=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "tensorflow" not in installed and "keras" not in installed
    assert {"handnet", "numpy", "opencv-python", "ai-edge-litert"} <= installed
    run = subprocess.run([str(python), "-c", DETECT, str(MODEL), str(scene)], capture_output=True, text=True,
                         cwd=tmp_path)  # not the checkout: the installed package is what is imported
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["heavy"] == []
    assert [label for _, _, label in found["hands"]] == [h.label for h in expected]
    for (x, y, _), hand in zip(found["hands"], expected):
        assert abs(x - hand.x) < 1e-3 and abs(y - hand.y) < 1e-3
