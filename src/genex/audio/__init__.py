"""genex.audio: in-distribution explanations of *your* audio model, from one call.

Example::

    from genex.audio import explain

    e = explain("my_model.pt", "clip.wav", None, components="tiles:16x8", method="rde-concrete")
    e.scores, e.mask           # [C] keep scores per component, [F, Tf] over the spectrogram
    e.save("out/")             # masks.npz, explanation.json, mask.png, kept/removed.wav, index.html

The command line is ``genex explain`` (see ``genex explain --help``); infillers fitted on your
own audio come from ``genex fit-infiller``. Needs the ``audio`` extra (librosa, soundfile,
matplotlib), never the pipeline's Snakemake/DVC.
"""

from __future__ import annotations

import importlib
import sys
import types

# public name -> module; loaded on first use so `import genex.audio` stays cheap and the
# parts written by other modules (infiller, harmonics, zoo) load only when asked for
_EXPORTS = {
    "load_audio": "signal", "AudioError": "signal", "resample": "signal",
    "Representation": "representations", "make_representation": "representations",
    "time_frequency_tiles": "components", "frequency_bands": "components",
    "time_segments": "components", "parse_components": "components",
    "load_model": "models", "LoadedModel": "models", "ModelError": "models",
    "explain": "explain", "explain_many": "explain", "Explanation": "explain",
    "write_outputs": "page", "ExplainError": "explain",
    "TFInpainter": "infiller", "TFCritic": "infiller", "fit_infiller": "infiller",
    "load_infiller": "infiller",
    "in_distribution_table": "indist",
    "estimate_f0": "harmonics", "harmonic_components": "harmonics",
    "torchcrepe_pitch": "zoo", "pesto_pitch": "zoo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genex.audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"genex.audio.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """``genex.audio.explain`` is the function, also after its module is imported.

    Importing the submodule ``genex.audio.explain`` (e.g. ``from genex.audio.explain import
    explain_many``) makes Python set the package attribute ``explain`` to that module, which
    would turn a later ``from genex.audio import explain`` into a module. The function wins;
    the module stays reachable as ``sys.modules["genex.audio.explain"]``.
    """

    def __setattr__(self, name: str, value) -> None:
        if name == "explain" and isinstance(value, types.ModuleType):
            value = value.explain
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
