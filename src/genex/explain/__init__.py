"""Explanations over components: infillers, the rate-distortion objective and its
optimisers (concrete, l1, matching pursuit), and Captum baselines behind one contract
``explainer.attribute(x, target) -> [B, C]``."""

from genex.explain.infill import (
                                  BlurInfiller,
                                  ComponentMap,
                                  GenerativeInfiller,
                                  Infiller,
                                  MeanInfiller,
                                  NoiseInfiller,
                                  ZeroInfiller,
)
from genex.explain.rde import (
                                  RDEL1,
                                  MatchingPursuit,
                                  PursuitResult,
                                  RateDistortion,
                                  RDEConcrete,
                                  concrete_mask,
)
from genex.explain.target import Target

__all__ = [
    "Infiller", "ZeroInfiller", "MeanInfiller", "NoiseInfiller", "BlurInfiller",
    "GenerativeInfiller", "ComponentMap", "Target", "RateDistortion", "concrete_mask",
    "RDEConcrete", "RDEL1", "MatchingPursuit", "PursuitResult",
]
