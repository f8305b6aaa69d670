"""genex.xai: in-distribution explanations for any PyTorch model.

One contract, ``Explainer(model, ...).attribute(x, target) -> [B, C]`` (see
:mod:`genex.xai.base`), over components (:class:`ComponentMap`), with removed components
filled in by an :class:`Infiller`: a constant, noise, a blur, or a generative model that
keeps the obfuscated inputs in the data's distribution. Depends on torch, numpy and scipy;
Captum is needed only for the gradient baselines and for Captum's perturbation methods with
infillers (:mod:`genex.xai.interop`; ``pip install 'genex[captum]'``).

Example::

    import torch
    from genex.xai import ComponentMap, NoiseInfiller, RDEConcrete

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 64, 3))
    x = torch.randn(4, 2, 64)                               # 4 inputs, 2 channels x 64 bins
    bins = ComponentMap.identity((2, 64))                   # one component per entry
    rde = RDEConcrete(model, NoiseInfiller(std=1.0), bins)  # defaults: genex.xai.rde.DEFAULTS
    keep = rde.attribute(x, target=0)                       # [4, 128] keep probabilities
"""

from genex.xai.activation import ActivationMaximisation
from genex.xai.base import Explainer
from genex.xai.batching import Chunked
from genex.xai.baselines import IntegratedGradients, Occlusion, Random, Saliency
from genex.xai.components import ComponentMap
from genex.xai.evaluate import (
    Curve,
    auc,
    binarise,
    binarised_distortion,
    deletion_curve,
    evaluate_masks,
    in_distribution,
    insertion_curve,
    keep_curve,
    keep_top,
    mask_distortion,
    mean_spearman,
    order_curve,
    prefix_masks,
    prune,
    random_orders,
    randomisation_sanity,
    top_order,
)
from genex.xai.frechet import frechet_distance
from genex.xai.interop import CaptumPerturbation, InfilledForward, infilled_forward, quantus_perturb_func
from genex.xai.infill import (
    BlurInfiller,
    GenerativeInfiller,
    Infiller,
    MeanInfiller,
    NoiseInfiller,
    ZeroInfiller,
)
from genex.xai.rde import (RDEL1, MatchingPursuit, PursuitResult, RateDistortion, RDEConcrete,
                          RelaxationWarning, concrete_mask)
from genex.xai.target import Target

__all__ = [
    "Explainer", "Chunked", "RDEConcrete", "RDEL1", "MatchingPursuit", "PursuitResult", "Saliency",
    "IntegratedGradients", "Occlusion", "Random", "ActivationMaximisation",
    "Infiller", "ZeroInfiller", "MeanInfiller", "NoiseInfiller", "BlurInfiller", "GenerativeInfiller",
    "ComponentMap", "Target", "RateDistortion", "concrete_mask", "frechet_distance",
    "CaptumPerturbation", "InfilledForward", "infilled_forward", "quantus_perturb_func",
    "Curve", "auc", "keep_curve", "deletion_curve", "insertion_curve", "order_curve", "evaluate_masks",
    "mask_distortion", "binarised_distortion", "binarise", "keep_top", "top_order", "random_orders",
    "prefix_masks", "prune", "in_distribution", "randomisation_sanity", "mean_spearman",
    "RelaxationWarning",
]
