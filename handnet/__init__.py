"""handnet: train a real-time hand-heatmap detector on your own webcam footage."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) buries the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
