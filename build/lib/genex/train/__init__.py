"""Training loops: one per model family, sharing checkpoint/resume and device choice."""

from genex.train.checkpoint import (
                                    Checkpointer,
                                    TrainState,
                                    epoch_rng,
                                    fingerprint,
                                    finite_loss,
                                    NonFiniteLoss,
                                    resolve_device,
                                    set_threads,
)

__all__ = ["Checkpointer", "TrainState", "epoch_rng", "fingerprint", "finite_loss", "NonFiniteLoss", "resolve_device",
           "set_threads"]
