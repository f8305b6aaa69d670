"""Checkpoints: a run stopped after any epoch and resumed ends with the same weights."""

import torch

from genex.pipeline.checkpoint import Checkpointer, TrainState, epoch_rng, fingerprint


def _train(folder, epochs, stop_after=None, fp="a"):
    """A tiny regression trained epoch by epoch, checkpointing at epoch ends."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ckpt = Checkpointer(folder, {"model": model, "opt": opt}, fingerprint(fp))
    state = ckpt.resume()
    x = torch.linspace(-1, 1, 64 * 4).reshape(64, 4)
    y = x.sum(1, keepdim=True) ** 2
    while state.epoch < epochs:
        order = torch.as_tensor(epoch_rng(7, state.epoch).permutation(64))
        for batch in order.split(16):
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            state.step += 1
        state.epoch += 1
        ckpt.save(state, best=state.improved(float(loss)))
        if stop_after is not None and state.epoch == stop_after:
            return None, state
    return model, state


def test_resumed_training_equals_uninterrupted(tmp_path):
    reference, _ = _train(tmp_path / "a", epochs=5)
    _, stopped = _train(tmp_path / "b", epochs=5, stop_after=2)
    assert stopped.step == 8
    resumed, state = _train(tmp_path / "b", epochs=5)
    assert state.epoch == 5 and state.step == 20
    for p, q in zip(reference.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_of_other_parameters_is_ignored(tmp_path, caplog):
    _train(tmp_path, epochs=2, stop_after=2, fp="a")
    _, state = _train(tmp_path, epochs=1, fp="b")
    assert state.epoch == 1 and state.step == 4
    assert "other parameters" in caplog.text


def test_best_score_tracking():
    state = TrainState()
    assert state.improved(3.0) and not state.improved(4.0) and state.improved(1.0)
    assert state.best == 1.0
