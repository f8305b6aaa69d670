"""What the nsynth steps write and read back: features, masks, scores and the two models.

The steps (``steps.py``) and the report section (``report.py``) both read these files.
"""

from __future__ import annotations

from pathlib import Path

from genex.pipeline.io import load_tensors, save_tensors


def load_features(folder: str | Path) -> dict:
    """The features step's output: ``x [N, 2, L]``, ``family [N]``, ``split``, ``note_str``, …"""
    import torch

    path = Path(folder) / "features.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: features not found (run `genex nsynth features`)")
    return load_tensors(path)


def load_masks(folder: str | Path) -> dict:
    """explain-notes' ``masks.pt``: ``index``, ``family``, ``predicted``, ``rde_concrete``, ``rde_l1``."""
    path = Path(folder) / "masks.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: masks not found (run `genex nsynth explain-notes`)")
    return load_tensors(path)


def load_scores(folder: str | Path) -> dict:
    """evaluate's ``scores.pt``: every method's attributions and the Fig 1 example."""
    path = Path(folder) / "scores.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: scores not found (run `genex nsynth evaluate`)")
    return load_tensors(path)


def save_classifier(path: str | Path, model, params: dict) -> None:
    """Φ's ``model.pt``: its params and CPU weights (what :func:`load_classifier` reads)."""
    save_tensors(path, {"params": params,
                        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})


def save_inpainter(path: str | Path, model, params: dict) -> None:
    """G's ``model.pt``: its params, length and CPU weights (what :func:`load_inpainter` reads)."""
    save_tensors(path, {"params": params, "length": model.length,
                        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})


def split_data(feats: dict, split: str):
    """``(x, y)`` of one split."""
    import torch

    idx = [i for i, s in enumerate(feats["split"]) if s == split]
    if not idx:
        raise ValueError(f"nsynth: the {split!r} split has no notes")
    index = torch.tensor(idx)
    return feats["x"][index], feats["family"][index]


def load_classifier(folder: str | Path, device=None):
    """Φ from a train-classifier output folder (eval mode)."""
    from genex.studies.nsynth.models import InstrumentCNN

    path = Path(folder) / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: classifier not found (run `genex nsynth train-classifier`)")
    saved = load_tensors(path)
    p = saved["params"]
    model = InstrumentCNN(int(p["n_classes"]), p["width"], p["hidden"], p["dropout"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device or "cpu").eval()


def load_inpainter(folder: str | Path, device=None):
    """G from a train-inpainter output folder (eval mode)."""
    from genex.studies.nsynth.models import Inpainter

    path = Path(folder) / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: inpainter not found (run `genex nsynth train-inpainter`)")
    saved = load_tensors(path)
    model = Inpainter(saved["length"], saved["params"]["width"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device or "cpu").eval()
