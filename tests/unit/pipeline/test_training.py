"""The one training loop: resume equals an uninterrupted run, NaN stops it, clipping applies."""

import math

import numpy as np
import pytest
import torch

from genex.pipeline.checkpoint import Checkpointer, NonFiniteLoss, epoch_rng, fingerprint
from genex.pipeline.training import EpochLosses, Loop, autocast, fit

X = torch.linspace(-1, 1, 60 * 4).reshape(60, 4)
Y = X.sum(1, keepdim=True) ** 2


class Killed(Exception):
    """Stands for the job being killed in the middle of an epoch."""


def _fit(folder, epochs=4, kill_at=None, poison_at=None, fp="a"):
    """A tiny regression with dropout (torch's RNG), a shuffled order (the epoch's generator),
    a scheduler and gradient clipping; returns (model, state). ``kill_at=(epoch, batch)`` stops
    the run there; ``poison_at`` makes that step's loss NaN."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ckpt = Checkpointer(folder, {"model": model, "opt": opt, "sched": sched}, fingerprint(fp))

    def batches(epoch):
        order = torch.as_tensor(epoch_rng(7, epoch).permutation(len(X)))
        for i, idx in enumerate(order.split(16)):  # 16, 16, 16, 12: unequal weights
            if (epoch, i) == kill_at:
                raise Killed
            yield epoch, i, idx

    def step(batch, loop):
        epoch, i, idx = batch
        loss = torch.nn.functional.mse_loss(model(X[idx]), Y[idx])
        if (epoch, i) == poison_at:
            loss = loss * float("nan")
        return {"mse": loop.update(loss, opt, clip_norm=0.5)}

    def evaluate(epoch, losses):
        model.eval()
        with torch.no_grad():
            score = float(torch.nn.functional.mse_loss(model(X), Y))
        # validation prefers the second epoch, so that the best weights are not the last ones
        score = score / 100 if epoch == 1 else score
        return score, {"epoch": epoch + 1, "train_mse": losses.sums["mse"] / len(X), "valid_mse": score,
                       "batches": losses.batches}

    state = fit("toy", epochs=epochs, checkpointer=ckpt, device=torch.device("cpu"), batches=batches,
                step=step, evaluate=evaluate, modules=[model], schedulers=[sched],
                weight=lambda batch: len(batch[2]))
    return model, state


def test_a_run_killed_mid_epoch_and_resumed_equals_an_uninterrupted_one(tmp_path):
    reference, ref_state = _fit(tmp_path / "a")
    with pytest.raises(Killed):
        _fit(tmp_path / "b", kill_at=(2, 1))  # epochs 0 and 1 are checkpointed, epoch 2 half done
    torch.manual_seed(1234)  # another process: the global RNG state must come from the checkpoint
    resumed, state = _fit(tmp_path / "b")
    assert (state.epoch, state.step) == (4, 16)
    assert state.history == ref_state.history and state.best_epoch == ref_state.best_epoch
    for p, q in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(p, q)
    # the loop restored the best epoch's weights (what best.pt holds), not the last epoch's
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert best["epoch"] == ref_state.best_epoch == 2 and last["state"]["epoch"] == 4
    assert not torch.equal(reference[0].weight, last["objects"]["model"]["0.weight"])
    assert ref_state.history[ref_state.best_epoch - 1]["valid_mse"] == ref_state.best
    for name, value in reference.state_dict().items():
        assert torch.equal(value, best["objects"]["model"][name])


def test_epoch_losses_are_weighted_sums_and_history_records_each_epoch(tmp_path):
    _, state = _fit(tmp_path, epochs=2)
    assert [r["epoch"] for r in state.history] == [1, 2]
    assert all(r["batches"] == 4 and r["train_mse"] > 0 for r in state.history)
    losses = EpochLosses()
    losses.add({"a": 2.0}, weight=3)
    losses.add({"a": 1.0}, weight=None)
    assert losses.sums == {"a": 7.0} and losses.batches == 2


def test_a_non_finite_loss_stops_training_naming_epoch_and_step_before_anything_is_saved(tmp_path):
    with pytest.raises(NonFiniteLoss, match=r"training loss is nan at epoch 2, step 7: training stopped"):
        _fit(tmp_path, poison_at=(1, 2))
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["state"]["epoch"] == 1  # only the first, finite epoch was checkpointed


def test_a_step_returning_none_is_skipped_and_not_counted(tmp_path):
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = Checkpointer(tmp_path, {"model": model, "opt": opt}, fingerprint("skip"))

    def step(batch, loop):
        if batch is None:
            return None
        return {"loss": loop.update(model(batch).pow(2).mean(), opt)}

    state = fit("skip", epochs=1, checkpointer=ckpt, device=torch.device("cpu"),
                batches=lambda epoch: [torch.ones(3, 2), None, torch.ones(2, 2)], step=step,
                evaluate=lambda epoch, losses: (0.0, {"batches": losses.batches}))
    assert state.step == 2 and state.history == [{"batches": 2}]


def _one_update(**clip):
    """One SGD(lr=1) step on a loss with a large gradient: the parameter change is -grad."""
    weight = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([weight], lr=1.0)
    loop = Loop(torch.device("cpu"), state=None)  # state is only read when the loss is not finite
    loss = (weight * torch.tensor([30.0, -40.0, 0.1, 0.0])).sum()
    value = loop.update(loss, opt, **clip)
    return value, -weight.detach()


def test_gradient_clipping_by_norm_and_by_value_is_applied():
    value, grad = _one_update()
    assert value == 0.0 and torch.equal(grad, torch.tensor([30.0, -40.0, 0.1, 0.0]))
    _, grad = _one_update(clip_norm=5.0)
    assert math.isclose(float(grad.norm()), 5.0, rel_tol=1e-5)
    assert torch.allclose(grad, torch.tensor([30.0, -40.0, 0.1, 0.0]) * 5.0 / float(torch.tensor([30.0, -40.0, 0.1]).norm()))
    _, grad = _one_update(clip_value=1.0)
    assert torch.equal(grad, torch.tensor([1.0, -1.0, 0.1, 0.0]))


def test_mixed_precision_is_off_on_cpu():
    layer = torch.nn.Linear(3, 2)
    with autocast(torch.device("cpu")):
        assert layer(torch.ones(1, 3)).dtype == torch.float32
    assert Loop(torch.device("cpu"), state=None).autocast().__class__.__name__ == "nullcontext"


@pytest.mark.gpu
def test_mixed_precision_is_bf16_on_cuda_and_off_when_a_trainer_opts_out():
    layer = torch.nn.Linear(3, 2).cuda()
    x = torch.ones(1, 3, device="cuda")
    with Loop(torch.device("cuda"), state=None).autocast():
        assert layer(x).dtype == torch.bfloat16
    with Loop(torch.device("cuda"), state=None, amp=False).autocast():
        assert layer(x).dtype == torch.float32


def test_index_batches_cut_an_order_into_batches_full_ones_or_with_a_shorter_last():
    from genex.pipeline.training import index_batches

    order = np.arange(10)[::-1]
    assert [b.tolist() for b in index_batches(order, 4)] == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0]]
    assert [len(b) for b in index_batches(order, 4, full=True)] == [4, 4]
    assert [len(b) for b in index_batches(order, 4, full=True, limit=1)] == [4]
    assert [len(b) for b in index_batches(order, 4, limit=0)] == [4, 4, 2]  # 0: no limit
    assert [len(b) for b in index_batches(order[:3], 4, full=True)] == [3]  # a small set still trains
    assert index_batches(order[:0], 4) == []


def test_every_trainer_steps_its_weights_through_the_one_loop():
    """Weights are updated in one place, ``Loop.update``: no other module calls ``backward``
    but the explainers, which optimise masks and inputs, not weights. A trainer with its own
    loop (the piano INN's and fit-infiller's once were) shows up here."""
    import ast
    from pathlib import Path

    import genex

    root = Path(genex.__file__).parent
    allowed = {"pipeline/training.py", "xai/rde.py"}
    calls = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "backward":
                calls.add(path.relative_to(root).as_posix())
    assert calls - allowed == set(), sorted(calls - allowed)
    assert "pipeline/training.py" in calls
