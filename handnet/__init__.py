"""handnet: train a real-time hand-heatmap detector on your own webcam footage."""

import contextlib
import importlib.abc
import importlib.util
import os
import sys

# TensorFlow's and LiteRT's C++ start-up chatter (CUDA probing, oneDNN and CPU notices, "Created
# TensorFlow Lite XNNPACK delegate") buries the tools' own lines; HANDNET_NATIVE_LOGS=1 shows it.
SHOW_NATIVE_LOGS = os.environ.get("HANDNET_NATIVE_LOGS", "") not in ("", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if SHOW_NATIVE_LOGS else "2")

__version__ = "0.1.0"


@contextlib.contextmanager
def native_logs_quieted():
    """Send what native code writes to stderr (file descriptor 2) to /dev/null inside the block,
    unless HANDNET_NATIVE_LOGS is set. Python exceptions still carry their messages."""
    if SHOW_NATIVE_LOGS:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports `tensorflow` inside native_logs_quieted: its C++ logging starts, and prints, while
    the module loads, before TF_CPP_MIN_LOG_LEVEL is read."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and let the normal finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            with native_logs_quieted():
                load(module)
                # Probing for GPUs, here rather than at the first operation, prints cuInit's
                # failure on every machine without one.
                module.config.list_physical_devices("GPU")

        spec.loader.exec_module = exec_module
        return spec


if "tensorflow" not in sys.modules and not SHOW_NATIVE_LOGS:
    sys.meta_path.insert(0, _QuietTensorFlowImport())
