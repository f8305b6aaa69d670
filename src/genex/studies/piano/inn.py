"""The invertible transcription network of Kelz & Widmer (2019) and its training objective.

``f: [x 144 | x-pad 112] <-> [z 9 | yz-pad 62 | y 185]`` (256 dims) is a FrEIA
``SequenceINN`` of 5 x (fixed random permutation + RealNVP affine coupling with four
subnets s1, t1, s2, t2 and the soft clamp ``exp(2 * 0.636 * atan(s))``). With hidden size
128 each subnet is Linear(128,128)-ReLU-Linear(128,128)-ReLU-Linear(128,128), 990,720
trainable parameters, the same function as the authors' ``InvBlockChain`` (ISMIR19 code).

:func:`inn_losses` is the joint objective (paper eqs. 8-13, weights from the released code);
:func:`make_optimizer` and :func:`clamp_gradients` are the released code's optimiser setup.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from genex.studies.piano.swd import sliced_wasserstein

DIM_TOTAL = 256
DIM_X = 144
DIM_X_PAD = DIM_TOTAL - DIM_X  # 112
DIM_Z = 9
DIM_Y = 185
DIM_YZ_PAD = DIM_TOTAL - DIM_Z - DIM_Y  # 62
N_BLOCKS = 5
HIDDEN = 128
CLAMP = 2.0


def _subnet_factory(hidden: int) -> Callable[[int, int], nn.Module]:
    """FrEIA subnet constructor: Linear-ReLU-Linear-ReLU-Linear with ``hidden`` units."""

    def build(dims_in: int, dims_out: int) -> nn.Module:
        net = nn.Sequential(nn.Linear(dims_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                            nn.ReLU(), nn.Linear(hidden, dims_out))
        for layer in net:
            if isinstance(layer, nn.Linear):
                # the released code passes the ReLU gain as kaiming's negative slope `a`,
                # a smaller-than-He init that keeps the untrained chain well conditioned
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(2.0))
                nn.init.zeros_(layer.bias)
        return net

    return build


def _random_permute_block(dims_in: list[tuple[int]], rng: np.random.Generator):
    """A FrEIA ``PermuteRandom`` whose permutation comes from ``rng``.

    FrEIA draws its permutation from NumPy's global generator (and reseeds it when given a
    seed); the global state is saved and restored around it so we never touch it.
    """
    from FrEIA.modules import PermuteRandom

    state = np.random.get_state()
    try:
        block = PermuteRandom(dims_in)
    finally:
        np.random.set_state(state)
    perm = rng.permutation(dims_in[0][0])
    block.perm.data = torch.as_tensor(perm, dtype=torch.long)
    block.perm_inv.data = torch.as_tensor(np.argsort(perm), dtype=torch.long)
    return block


class PianoINN(nn.Module):
    """Invertible network x (144, padded to 256) <-> [z 9 | yz-pad 62 | y 185].

    ``hidden`` sets the subnet width (128 in the paper; smaller for tiny tests), ``seed``
    the fixed permutations (weights use torch's global generator, as ``nn.Linear`` does:
    seed it before construction for reproducible weights).
    """

    def __init__(self, hidden: int = HIDDEN, n_blocks: int = N_BLOCKS, clamp: float = CLAMP,
                 seed: int = 0):
        super().__init__()
        import FrEIA.framework as Ff
        from FrEIA.modules import RNVPCouplingBlock

        self.hidden, self.n_blocks, self.clamp, self.seed = hidden, n_blocks, clamp, seed
        rng = np.random.default_rng(seed)
        self.net = Ff.SequenceINN(DIM_TOTAL)
        for _ in range(n_blocks):
            # append() calls its argument with dims_in: a closure passes our own generator
            self.net.append(lambda dims_in: _random_permute_block(dims_in, rng))
            self.net.append(RNVPCouplingBlock, subnet_constructor=_subnet_factory(hidden),
                            clamp=clamp, clamp_activation="ATAN")

    # -- the network --------------------------------------------------------------------
    def forward(self, x_padded: torch.Tensor) -> torch.Tensor:
        """f: padded spectrogram frames [n, 256] -> outputs [z | yz-pad | y] [n, 256]."""
        out, _ = self.net(x_padded)
        return out

    def inverse(self, out: torch.Tensor) -> torch.Tensor:
        """f^-1: outputs [z | yz-pad | y] [n, 256] -> padded frames [x | x-pad] [n, 256]."""
        x_padded, _ = self.net(out, rev=True)
        return x_padded

    # -- padding and splitting ------------------------------------------------------------
    def encode(self, x: torch.Tensor, pad: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z, yz_pad, y)`` of frames x [n, 144]; x-pad is ``pad`` or zeros (inference)."""
        return split_out(self(pad_x(x, pad)))

    def decode(self, z: torch.Tensor, y: torch.Tensor, pad: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, x_pad)`` generated from z [n, 9] and y [n, 185]; yz-pad is ``pad`` or zeros."""
        return split_x(self.inverse(join_out(z, y, pad)))

    def n_parameters(self) -> int:
        """Trainable parameters (FrEIA stores permutations as frozen parameters: excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def pad_x(x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
    """[x | x-pad] (256): ``pad`` [n, 112] or zeros."""
    _check_dim(x, DIM_X, "x")
    if pad is None:
        pad = x.new_zeros(x.shape[0], DIM_X_PAD)
    return torch.cat([x, pad], dim=1)


def split_x(x_padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x [n, 144], x_pad [n, 112])`` of a padded input."""
    _check_dim(x_padded, DIM_TOTAL, "padded x")
    return x_padded[:, :DIM_X], x_padded[:, DIM_X:]


def split_out(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(z [n, 9], yz_pad [n, 62], y [n, 185])`` of an output vector."""
    _check_dim(out, DIM_TOTAL, "output")
    return out[:, :DIM_Z], out[:, DIM_Z:DIM_Z + DIM_YZ_PAD], out[:, DIM_Z + DIM_YZ_PAD:]


def join_out(z: torch.Tensor, y: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
    """[z | yz-pad | y] (256): ``pad`` [n, 62] or zeros."""
    _check_dim(z, DIM_Z, "z")
    _check_dim(y, DIM_Y, "y")
    if pad is None:
        pad = z.new_zeros(z.shape[0], DIM_YZ_PAD)
    return torch.cat([z, pad, y], dim=1)


def _check_dim(t: torch.Tensor, dim: int, name: str) -> None:
    if t.ndim != 2 or t.shape[1] != dim:
        raise ValueError(f"{name} must have shape [n, {dim}], got {tuple(t.shape)}")


# ----------------------------------------------------------------------------- training

def backward_ramp(epoch: float, ramp_epochs: float = 256.0) -> float:
    """Weight ramp of the sampling loss: clip(2^(epoch / ramp_epochs) - 1, 0, 1).

    0 at the start, 1 from ``ramp_epochs`` on (256 of the paper's 512 epochs; pass a
    smaller ``ramp_epochs`` for shorter schedules).
    """
    return float(np.clip(2.0 ** (epoch / ramp_epochs) - 1.0, 0.0, 1.0))


def _normal(shape: tuple[int, ...], scale: float, like: torch.Tensor,
            generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    noise = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return (noise * scale).to(like.device)


def inn_losses(model: PianoINN, x: torch.Tensor, y: torch.Tensor, epoch: float, *,
               ramp_epochs: float = 256.0, pad_noise: float = 0.03, label_noise: float = 0.03,
               n_projections: int = 2048, lambda_backward: float = 100.0,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one training batch and their sum ``'total'``.

    One forward and two backward passes (paper section 3, released ``train_loop.py``):

    * ``fit`` (8): MSE(ŷ, y + label noise)
    * ``latent`` (10): SWD([ẑ; ŷ.detach()], [N(0, I); y + noise]) - no gradient through ŷ
    * ``yz_pad`` (13): MSE(yz-pad out, N(0, pad_noise²))
    * ``x_recon`` (9): 0.5 · MSE(x̂, x), x̂ = f⁻¹([ẑ + noise; pad noise; y + noise])
      (the released code decodes with the noisy *ground truth* y, not ŷ)
    * ``x_pad`` (12): 0.5 · MSE(x̂-pad, N(0, pad_noise²))
    * ``backward`` (11): lambda_backward · ramp · (mean(relu(-x_s)² + relu(-x)²) + SWD(x_s, x)),
      x_s = f⁻¹([z ~ N(0, I); pad noise; y + noise])

    Inputs are padded with N(0, pad_noise²) noise. Noise and SWD projections come from
    ``generator`` when given (deterministic batches). Also returns ``'ramp'`` (a tensor).
    """
    _check_dim(x, DIM_X, "x")
    _check_dim(y, DIM_Y, "y")
    n = x.shape[0]
    mse = nn.functional.mse_loss

    def noise(dim: int, scale: float) -> torch.Tensor:
        return _normal((n, dim), scale, x, generator)

    def swd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sliced_wasserstein(a, b, n_projections, generator=generator)

    # forward pass
    z_hat, yz_pad_hat, y_hat = model.encode(x, noise(DIM_X_PAD, pad_noise))
    y_noisy = y + noise(DIM_Y, label_noise)
    terms = {
        "fit": mse(y_hat, y_noisy),
        "yz_pad": mse(yz_pad_hat, noise(DIM_YZ_PAD, pad_noise)),
        "latent": swd(torch.cat([z_hat, y_hat.detach()], 1),
                      torch.cat([noise(DIM_Z, 1.0), y_noisy], 1)),
    }
    # backward pass 1: reconstruct x from the predicted nuisance and the true labels
    z_noisy = z_hat + noise(DIM_Z, label_noise)
    y_noisy = y + noise(DIM_Y, label_noise)
    x_hat, x_pad_hat = model.decode(z_noisy, y_noisy, noise(DIM_YZ_PAD, pad_noise))
    terms["x_recon"] = 0.5 * mse(x_hat, x)
    terms["x_pad"] = 0.5 * mse(x_pad_hat, noise(DIM_X_PAD, pad_noise))
    # backward pass 2: sample x from z ~ N(0, I); spectrogram features must be >= 0
    x_sam, _ = model.decode(noise(DIM_Z, 1.0), y_noisy, noise(DIM_YZ_PAD, pad_noise))
    negative = (torch.relu(-x_sam) ** 2 + torch.relu(-x) ** 2).mean()
    ramp = backward_ramp(epoch, ramp_epochs)
    terms["backward"] = lambda_backward * ramp * (negative + swd(x_sam, x))
    terms["total"] = sum(terms.values())
    terms["ramp"] = torch.tensor(ramp)
    return terms


def make_optimizer(model: nn.Module, lr: float = 1e-3, betas: tuple[float, float] = (0.8, 0.8),
                   eps: float = 1e-4, weight_decay: float = 2e-5, step_size: int = 12,
                   gamma: float = 0.96
                   ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.StepLR]:
    """Adam(1e-3, betas (0.8, 0.8), eps 1e-4, weight decay 2e-5) and StepLR(12, 0.96).

    Only trainable parameters are optimised; step the scheduler once per epoch.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
