"""The autoencoders: the seed notebook's dense autoencoder and a VAE.

Both are trained on normal logins only and score a login by the mean squared
error of its reconstruction. Each kind yields two Keras models sharing
weights: ``trainer`` (what ``fit`` optimises) and ``scorer`` (features ->
reconstruction, deterministic, what is exported to ONNX).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import keras
import tensorflow as tf

from login_scorer_training.export import INPUT_NAME, OUTPUT_NAME
from login_scorer_training.features import WIDTH

LOG = logging.getLogger(__name__)

KINDS = ("autoencoder", "vae")

#: Latent width and KL weight of the VAE.
VAE_LATENT = 4
VAE_KL_WEIGHT = 1e-3


@dataclass
class Autoencoder:
    """A compiled training model and the deterministic model that scores."""

    kind: str
    trainer: keras.Model
    scorer: keras.Model


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic.

    NOTE: TensorFlow runs single-threaded here. Measured on 350k rows, batch
    1024: 1.55 s/epoch pinned against 1.75-2.6 s/epoch free (the model is so
    small that thread hand-offs cost more than they save), and it rules out
    thread scheduling as a source of run-to-run differences.
    """
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # Threads can only be set before TF starts; a second run in the same
        # process (tests) keeps the first setting, which is the same one.
        LOG.debug("TensorFlow threading already initialised")


def build(kind: str, seed: int) -> Autoencoder:
    """Build and compile a model of ``kind`` ("autoencoder" or "vae")."""
    if kind == "autoencoder":
        return _build_autoencoder()
    if kind == "vae":
        return _build_vae(seed)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")


def _build_autoencoder() -> Autoencoder:
    """8 -> 32 relu (L1 activity 1e-5) -> 16 relu -> 32 relu -> 8 sigmoid."""
    features = keras.Input(shape=(WIDTH,), name=INPUT_NAME)
    hidden = keras.layers.Dense(
        32,
        activation="relu",
        activity_regularizer=keras.regularizers.L1(1e-5),
        name="encoder_1",
    )(features)
    hidden = keras.layers.Dense(16, activation="relu", name="bottleneck")(hidden)
    hidden = keras.layers.Dense(32, activation="relu", name="decoder_1")(hidden)
    reconstruction = keras.layers.Dense(WIDTH, activation="sigmoid", name=OUTPUT_NAME)(
        hidden
    )
    model = keras.Model(features, reconstruction, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    return Autoencoder("autoencoder", model, model)


class _Sampling(keras.layers.Layer):
    """Draws z ~ N(mean, exp(log_var)) and adds the KL term as a loss."""

    def __init__(self, seed: int, kl_weight: float, **kwargs: object):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.kl_weight = kl_weight

    def call(self, inputs: list[tf.Tensor]) -> tf.Tensor:
        mean, log_var = inputs
        kl = -0.5 * keras.ops.mean(
            1.0 + log_var - keras.ops.square(mean) - keras.ops.exp(log_var)
        )
        self.add_loss(self.kl_weight * kl)
        noise = keras.random.normal(keras.ops.shape(mean), seed=self.seed_generator)
        return mean + keras.ops.exp(0.5 * log_var) * noise


def _build_vae(seed: int) -> Autoencoder:
    """8 -> 32 -> 16 -> (mean, log var) of 4 -> 16 -> 32 -> 8 sigmoid.

    The scorer feeds the encoder mean straight to the decoder, so exported
    scores are deterministic.
    """
    features = keras.Input(shape=(WIDTH,), name=INPUT_NAME)
    hidden = keras.layers.Dense(32, activation="relu", name="encoder_1")(features)
    hidden = keras.layers.Dense(16, activation="relu", name="encoder_2")(hidden)
    mean = keras.layers.Dense(VAE_LATENT, name="latent_mean")(hidden)
    log_var = keras.layers.Dense(VAE_LATENT, name="latent_log_var")(hidden)
    sample = _Sampling(seed, VAE_KL_WEIGHT, name="sampling")([mean, log_var])

    decoder = [
        keras.layers.Dense(16, activation="relu", name="decoder_1"),
        keras.layers.Dense(32, activation="relu", name="decoder_2"),
        keras.layers.Dense(WIDTH, activation="sigmoid", name=OUTPUT_NAME),
    ]

    def decode(latent: tf.Tensor) -> tf.Tensor:
        for layer in decoder:
            latent = layer(latent)
        return latent

    trainer = keras.Model(features, decode(sample), name="vae")
    trainer.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    scorer = keras.Model(features, decode(mean), name="vae_mean")
    return Autoencoder("vae", trainer, scorer)
