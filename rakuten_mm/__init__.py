"""Multimodal (title, description, image) classifier for Rakuten France product type codes."""

import os

# TensorFlow's C++ start-up chatter drowns the stages' own logs; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
