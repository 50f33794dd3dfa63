"""Keras image classifiers: a small CNN from scratch or a keras.applications backbone."""

import keras
import numpy as np
from keras import layers

IMAGE_BACKBONES = ("small_cnn", "mobilenet_v3_small", "efficientnet_b0")


def blank_image_probabilities(n_rows: int, n_classes: int) -> np.ndarray:
    """NaN rows: products without an image get no image prediction."""
    return np.full((n_rows, n_classes), np.nan, dtype=np.float32)


class PretrainedWeightsUnavailableError(RuntimeError):
    """ImageNet weights could not be downloaded."""


def flips_in_input_pipeline(params: dict) -> bool:
    """Whether training batches of pixels get random left-right flips (done by array_batches, not a layer)."""
    return params["input"] == "pixels" and params["augment"]["enabled"] and params["augment"]["flip"]


def augmentation_block(params: dict) -> keras.Sequential | None:
    """Random rotations and zooms (each off when 0), active only while training; None when both are off."""
    # Flips are not here: mirroring uint8 batches in the input pipeline costs far less than a layer.
    steps = []
    # Products sit on white: fill what a rotation or zoom uncovers with white, not black.
    if params["rotation"]:
        steps.append(layers.RandomRotation(params["rotation"], fill_mode="constant", fill_value=255.0))
    if params["zoom"]:
        steps.append(layers.RandomZoom(params["zoom"], fill_mode="constant", fill_value=255.0))
    return keras.Sequential(steps, name="augmentation") if steps else None


def conv_bn_relu(x, filters: int, strides: int = 1):
    """3×3 convolution, batch normalisation, ReLU."""
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def small_cnn(inputs, params: dict):
    """A strided stem then conv-BN-pool blocks from scratch, ending in global average pooling."""
    x = layers.Rescaling(1.0 / 255)(inputs)
    # The strided stem halves the resolution first: most of a small CNN's CPU cost is there.
    x = conv_bn_relu(x, params["filters"][0], strides=2)
    if params["stem_pool"]:
        # Pooling the stem too runs the first block at a quarter of the input side: at 64 px its
        # convolution at 32 x 32 was over half of a training step's CPU time.
        x = layers.MaxPooling2D()(x)
    for filters in params["filters"][1:]:
        x = layers.MaxPooling2D()(conv_bn_relu(x, filters))
    return layers.GlobalAveragePooling2D()(x)


def applications_backbone(name: str, weights: str, size: int, trainable: bool) -> keras.Model:
    """A keras.applications backbone taking 0–255 pixels, with average pooling.

    weights: none, imagenet (downloaded once into ~/.keras/models) or the path of a weights file.
    """
    builders = {
        "mobilenet_v3_small": lambda **kw: keras.applications.MobileNetV3Small(
            include_preprocessing=True, minimalistic=False, **kw),
        "efficientnet_b0": keras.applications.EfficientNetB0,
    }
    if name not in builders:
        raise ValueError(f"a pretrained backbone must be one of {tuple(builders)}, got {name!r}")
    try:
        backbone = builders[name](
            input_shape=(size, size, 3), include_top=False, pooling="avg",
            weights=None if weights == "none" else weights,
        )
    except Exception as error:  # urllib/SSL/HTTP errors and unreadable files all mean no weights
        raise PretrainedWeightsUnavailableError(
            f"weights={weights}: could not load {name} weights ({error}). Offline, use weights=none, "
            "the path of a weights file, or pre-fill ~/.keras/models with the ImageNet file."
        ) from error
    backbone.trainable = trainable
    return backbone


def build_image_model(params: dict, size: int, n_classes: int) -> keras.Model:
    """Build the image classifier named by params['backbone'] for size×size RGB inputs."""
    name = params["backbone"]
    if name not in IMAGE_BACKBONES:
        raise ValueError(f"train_image.backbone must be one of {IMAGE_BACKBONES}, got {name!r}")
    inputs = keras.Input(shape=(size, size, 3), name="image")
    augmentation = augmentation_block(params["augment"]) if params["augment"]["enabled"] else None
    x = augmentation(inputs) if augmentation is not None else inputs
    if name == "small_cnn":
        features = small_cnn(x, params)
    else:
        trainable = params["weights"] == "none" or not params["freeze_backbone"]
        features = applications_backbone(name, params["weights"], size, trainable)(x)
    features = layers.Dropout(params["dropout"])(features)
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(features)
    return keras.Model(inputs, outputs, name=f"image_{name}")


def build_feature_extractor(params: dict, size: int) -> keras.Model:
    """A frozen keras.applications backbone mapping size×size uint8 images to pooled features."""
    inputs = keras.Input(shape=(size, size, 3), name="image")
    backbone = applications_backbone(params["backbone"], params["weights"], size, trainable=False)
    return keras.Model(inputs, backbone(inputs, training=False), name=f"features_{params['backbone']}")


def build_feature_head(n_features: int, params: dict, n_classes: int) -> keras.Model:
    """The classifier trained on frozen features: dropout, optional hidden layer, softmax."""
    inputs = keras.Input(shape=(n_features,), name="features")
    x = layers.Dropout(params["dropout"])(inputs)
    if params["head_units"]:
        x = layers.Dropout(params["dropout"])(layers.Dense(params["head_units"], activation="relu")(x))
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="image_head")


def compose_image_model(extractor: keras.Model, head: keras.Model) -> keras.Model:
    """Frozen extractor then trained head: one model from pixels to probabilities, as served."""
    inputs = keras.Input(shape=extractor.input_shape[1:], name="image")
    return keras.Model(inputs, head(extractor(inputs)), name=f"image_{extractor.name}")
