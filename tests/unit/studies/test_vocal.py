"""The vocal study: Fréchet distance, activation maximisation, features, training, the CLI
(the tiny DAG: tests/pipeline/test_vocal_run.py)."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from helpers.trainers import POOL, synthetic_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------ Fréchet distance

def test_frechet_equals_closed_form_for_known_gaussians():
    from genex.xai.activation import response_frechet
    from genex.xai.frechet import frechet_gaussians

    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_gaussians([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)
    # diagonal covariances commute: |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([4.0, 1.0, 1.0])
    closed = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_gaussians(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed)
    # on response samples: the closed form of their sample moments (unbiased variance)
    rng = np.random.default_rng(0)
    x, y = rng.normal(2.0, 0.5, 200), rng.normal(-1.0, 2.0, 300)
    expected = (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2
    assert response_frechet(x, y) == pytest.approx(expected, rel=1e-9)
    assert response_frechet(x, x) == pytest.approx(0.0, abs=1e-12)


def test_selection_is_best_median_worst():
    from genex.xai.activation import reference_responses, select

    fd = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 5.0, "e": 4.0}
    assert select(fd) == {"best": "b", "median": "a", "worst": "d"}
    data = np.array([0.5, -2.0, 3.0, 1.0, -1.0])
    assert sorted(reference_responses(data, 2, "maximise")) == [1.0, 3.0]
    assert sorted(reference_responses(data, 2, "minimise")) == [-2.0, -1.0]


# ------------------------------------------------------------------ activation maximisation

def tiny_networks(seed: int = 0):
    """A tiny detector and generator on the 4x4-pooled grid (random weights, frozen)."""
    from genex.studies.vocal.models import Generator, VocalDetector

    torch.manual_seed(seed)
    det = VocalDetector((2, 2, 4, 4), (8, 4), 0.5, pool=POOL, padding=1).eval()
    gen = Generator(16, 4, pool=POOL)
    with torch.no_grad():
        for p in [*det.parameters(), *gen.parameters()]:
            if p.dim() > 1:
                p.mul_(2.0)  # at its default init a network this narrow barely responds
        gen.train()(torch.randn(64, 16))  # non-trivial batch-norm statistics, then eval mode
    gen.eval()
    for p in [*det.parameters(), *gen.parameters()]:
        p.requires_grad_(False)
    return det, gen


def test_am_raises_the_response_of_a_tiny_detector():
    from genex.xai.activation import maximise, trajectories

    det, gen = tiny_networks()
    response = lambda z: det.forward_pooled(gen(z))  # noqa: E731
    z0 = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    trajs = trajectories([0.1], [0.01])  # maximise, then minimise
    snaps = maximise(response, z0, trajs, [1, 30])
    with torch.no_grad():
        start = response(z0).mean()
        up, down = (response(snaps[30][i]).mean() for i in range(2))
    assert up > start + 0.01, (start, up)
    assert down < start - 0.01, (start, down)
    assert set(snaps) == {1, 30} and snaps[30].shape == (2, 8, 16)


def test_batched_am_equals_one_example_at_a_time_and_torch_adam():
    from genex.xai.activation import Trajectory, maximise

    det, gen = tiny_networks(3)
    response = lambda z: det.forward_pooled(gen(z))  # noqa: E731
    z0 = torch.randn(4, 16, generator=torch.Generator().manual_seed(2))
    trajs = [Trajectory("maximise", 0.05, 0.1), Trajectory("minimise", 0.01, 0.01)]
    batched = maximise(response, z0, trajs, [10])[10]
    for t_i, traj in enumerate(trajs):
        for n in range(len(z0)):
            alone = maximise(response, z0[n:n + 1], [traj], [10])[10][0, 0]
            torch.testing.assert_close(batched[t_i, n], alone, rtol=1e-4, atol=1e-5)
    # the written-out update is torch.optim.Adam's
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(10):
        opt.zero_grad()
        (-response(z) + 0.1 * 0.5 * (z * z).sum(1)).sum().backward()
        opt.step()
    torch.testing.assert_close(batched[0], z.detach(), rtol=1e-4, atol=1e-5)


def test_generator_upsampling_makes_coarse_am_exact():
    det, gen = tiny_networks()
    z = torch.randn(5, 16)
    with torch.no_grad():
        full = gen.full(z)
        assert full.shape == (5, 1, 80, 115)
        torch.testing.assert_close(det(full), det.forward_pooled(gen(z)))


def test_paper_sized_networks_have_the_papers_shapes():
    from genex.studies.vocal.models import Generator, VocalDetector, count_parameters

    det = VocalDetector()  # valid convs on 80 x 115: 64 channels x 7 x 11 before dense 256
    assert det.dense[2].in_features == 64 * 7 * 11
    assert det(torch.zeros(2, 1, 80, 115)).shape == (2,)
    assert Generator(128, 8)(torch.zeros(2, 128)).shape == (2, 1, 80, 115)
    assert count_parameters(det) > 1_000_000


# ---------------------------------------------------------------------------- features

def test_log_mel_has_80_bands_at_70_fps():
    from genex.studies.vocal.features import DEFAULTS, hop_length, log_mel

    sr = 22050
    t = np.arange(sr) / sr
    mel = log_mel(0.5 * np.sin(2 * np.pi * 1000 * t), DEFAULTS)
    assert hop_length(DEFAULTS) == 315
    assert mel.shape == (1 + sr // 315, 80)
    import librosa

    freqs = librosa.mel_frequencies(82, fmin=27.5, fmax=8000.0)[1:-1]
    assert abs(freqs[mel.mean(axis=0).argmax()] - 1000) < 100


def test_excerpts_are_centred_and_songs_padded():
    from genex.studies.vocal.features import _pack

    songs = [("a", np.arange(10 * 3, dtype=np.float32).reshape(10, 3), np.arange(10) % 2 == 0),
             ("b", np.ones((4, 3), np.float32), np.ones(4, bool))]
    feats = _pack(songs, np.zeros(3), np.ones(3), frames=5)
    assert len(feats.centres) == 14 and feats.labels.tolist()[:3] == [1, 0, 1]
    x = feats.excerpts(np.array([0, 12]), 5)
    assert x.shape == (2, 1, 3, 5)
    assert x[0, 0, 0].tolist() == [0, 0, 0, 3, 6]  # padded before the song, centre = frame 0
    assert x[1, 0, 0].tolist() == [1, 1, 1, 1, 0]  # song b's third frame, padding after it


def test_evaluate_frames_median_filter_and_scores():
    from genex.studies.vocal.metrics import evaluate_frames

    labels = np.array([0] * 20 + [1] * 20)
    logits = np.where(labels > 0, 3.0, -3.0)
    logits[5] = 3.0  # an isolated false positive the median filter removes
    song = np.zeros(40, int)
    out = evaluate_frames(logits, labels, song, {"median_frames": 5, "threshold": 0.5})
    assert out["accuracy"] == 1.0 and out["f1"] == 1.0
    assert out["raw"]["accuracy"] == pytest.approx(39 / 40)
    assert out["auc"] == pytest.approx(1 - 10 / 400)  # the blip ties with 20 positives: half


# ---------------------------------------------------------------------------- training

def test_detector_training_resumes_after_a_kill_as_if_never_stopped(tmp_path):
    from genex.studies.vocal.train import train_detector

    rng = np.random.default_rng(0)
    train, valid = synthetic_split(rng), synthetic_split(rng, songs=1)
    params = {"conv": [2, 2, 4, 4], "dense": [8, 4], "padding": 1, "epochs": 3, "batch": 16,
              "train_hop": 2, "valid_hop": 4}
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    straight, state = train_detector(train, valid, params, POOL, 115, 0, cpu, tmp_path / "a")
    assert state.epoch == 3 and len(state.history) == 3
    # a resumed run (last.pt at epoch 2 of the same parameters) gives the same weights
    ckpt_dir = tmp_path / "d"
    torch.manual_seed(0)
    _interrupted(train, valid, params, ckpt_dir, stop_after=2)
    torch.manual_seed(123)  # the resumed run restores the RNG state from the checkpoint
    resumed, rstate = train_detector(train, valid, params, POOL, 115, 0, cpu, ckpt_dir)
    assert rstate.epoch == 3 and rstate.history == state.history
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def _interrupted(train, valid, params, ckpt_dir, stop_after):
    """Train with ``params`` but die (KeyboardInterrupt) after ``stop_after`` epochs."""
    from genex.pipeline import checkpoint
    from genex.studies.vocal.train import train_detector

    original = checkpoint.Checkpointer.save

    def save_then_die(self, state, best=False):
        original(self, state, best)
        if state.epoch >= stop_after:
            raise KeyboardInterrupt
    checkpoint.Checkpointer.save = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            train_detector(train, valid, params, POOL, 115, 0, torch.device("cpu"), ckpt_dir)
    finally:
        checkpoint.Checkpointer.save = original


def test_detector_learns_a_separable_toy_problem(tmp_path):
    from genex.studies.vocal.metrics import evaluate_frames
    from genex.studies.vocal.train import predict, train_detector

    rng = np.random.default_rng(1)
    train, test = synthetic_split(rng, songs=4), synthetic_split(rng, songs=1)
    torch.manual_seed(0)
    model, _ = train_detector(train, test, {"conv": [4, 4, 8, 8], "dense": [16, 8], "padding": 1,
                                            "epochs": 4, "batch": 16, "dropout": 0.0, "lr": 3e-3},
                              POOL, 115, 0, torch.device("cpu"), tmp_path / "ck")
    logits = predict(model, test, np.arange(len(test.centres)), 115, torch.device("cpu"))
    assert evaluate_frames(logits, test.labels, test.song, {"median_frames": 1})["auc"] > 0.9


# ---------------------------------------------------------------------------- workflow

def test_cli_has_the_vocal_steps():
    from genex.cli import build_parser

    parser = build_parser()
    for step in ("features", "train-detector", "train-gan", "evaluate-detector", "activation-max",
                 "report"):
        args = parser.parse_args(_args_for(step))
        assert callable(args.func)


def _args_for(step: str) -> list[str]:
    needs = {"features": ["--root", "r", "--out", "o"],
             "train-detector": ["--features", "f", "--checkpoints", "c", "--out", "o"],
             "train-gan": ["--features", "f", "--checkpoints", "c", "--out", "o"],
             "evaluate-detector": ["--features", "f", "--detector", "d", "--out", "o"],
             "activation-max": ["--features", "f", "--detector", "d", "--gan", "g", "--out", "o"],
             "report": ["--features", "f", "--evaluation", "e", "--detector", "d", "--gan", "g",
                        "--am", "a", "--metrics", "m", "--section", "s"]}
    return ["vocal", step, "--params", "{}", *needs[step]]
