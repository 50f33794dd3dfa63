"""Where training runs: the device TensorFlow picked, and mixed precision when asked for."""

import keras
import tensorflow as tf


def training_device() -> str:
    """'GPU' when TensorFlow sees one (it then places ops there by itself), else 'CPU'."""
    return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"


def set_precision(mixed: bool) -> str:
    """Set Keras's global dtype policy: mixed_float16 when asked for, float32 otherwise; return its name."""
    # float16 compute pays off on GPUs with tensor cores; on a CPU it is slower, so it stays opt-in.
    policy = "mixed_float16" if mixed else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def device_summary(mixed: bool) -> dict:
    """What a training stage logs about where it ran."""
    return {"device": training_device(), "gpus": len(tf.config.list_physical_devices("GPU")),
            "precision": set_precision(mixed)}
