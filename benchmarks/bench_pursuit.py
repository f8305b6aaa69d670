"""Matching pursuit: candidates of all inputs batched (MatchingPursuit.pursue) against the
per-input loop it replaced (kept below as the reference), side by side in one run.

Radio-like setting: B maps [3, S, S], per-input component maps with different counts
(ComponentMap.stack pads them), a small conv net, a dense region target, zero infill.
Both paths must choose the same components (checked, recorded).

Usage: python benchmarks/bench_pursuit.py [--batch 8] [--size 32] [--components 40]
       [--k 8] [--batch-candidates 256] [--repeats 3] [--device cpu]
       [--out benchmarks/results/pursuit_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from torch import Tensor, nn

from genex.xai import ComponentMap, MatchingPursuit, Target, ZeroInfiller
from genex.xai.rde import frozen


# ---- the reference: the per-input loop of genex.xai.rde before candidates were batched ------
def _single_input_map(cmap: ComponentMap, b: int) -> ComponentMap:
    if not cmap.per_input:
        return cmap
    return ComponentMap(cmap.labels[b], cmap.n_components, cmap.uncovered)


@torch.no_grad()
def per_input_pursuit(mp: MatchingPursuit, x: Tensor, target) -> Tensor:
    """The old ``MatchingPursuit.pursue``: one input after the other; returns ``order``."""
    obj = mp.objective
    batch, device = x.shape[0], x.device
    tgt = Target(target, batch)
    cmap_all = obj.component_map.to(device)
    c = cmap_all.n_components
    sizes = cmap_all.sizes(batch, device)
    order = torch.full((batch, mp.k), -1, dtype=torch.long)
    gen = torch.Generator(device=device).manual_seed(mp.seed)
    with frozen(obj.modules()):
        ref = obj.reference(x, tgt)
        for b in range(batch):
            obj.component_map = _single_input_map(cmap_all, b)
            chosen = torch.zeros(c, dtype=torch.bool, device=device)
            empty = torch.zeros(1, c, dtype=x.dtype, device=device)
            obj.distortion(x[b: b + 1], empty, ref[b: b + 1], tgt.for_input(b, 1), gen)
            for step in range(mp.k):
                remaining = (~chosen & (sizes[b] > 0)).nonzero().squeeze(1)
                if remaining.numel() == 0:
                    break
                dists = []
                for start in range(0, remaining.numel(), mp.batch_candidates):
                    cand = remaining[start: start + mp.batch_candidates]
                    r = cand.numel()
                    masks = chosen.to(x.dtype).unsqueeze(0).repeat(r, 1)
                    masks[torch.arange(r, device=device), cand] = 1.0
                    xs = x[b: b + 1].expand(r, *x.shape[1:])
                    dists.append(obj.distortion(xs, masks, ref[b: b + 1].expand(r, -1),
                                                tgt.for_input(b, r), gen))
                best = int(remaining[int(torch.argmin(torch.cat(dists)))])
                chosen[best] = True
                order[b, step] = best
        obj.component_map = cmap_all
    return order.to(device)


# ---- the benchmark ---------------------------------------------------------------------------
def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 5, padding=2), nn.ReLU(),
                         nn.Conv2d(16, 16, 5, padding=2), nn.ReLU(), nn.Conv2d(16, 1, 5, padding=2))


def radio_like(batch: int, size: int, components: int, gen: torch.Generator):
    """Random maps whose components are square blobs (buildings) and single pixels
    (measurements); input b has about ``components * (0.5 + b / 2B)`` of them."""
    xs, maps = torch.zeros(batch, 3, size, size), []
    for b in range(batch):
        n = max(2, int(components * (0.5 + b / (2 * batch))))
        free = torch.ones(size, size, dtype=torch.bool)
        sets = []
        for _ in range(n):
            for _ in range(50):
                r, c = (int(v) for v in torch.randint(0, size - 3, (2,), generator=gen))
                w = 1 if len(sets) % 2 else 3
                if free[r: r + w, c: c + w].all():
                    free[r: r + w, c: c + w] = False
                    ch = 2 if w == 1 else 0
                    entries = torch.zeros(3, size, size, dtype=torch.bool)
                    entries[ch, r: r + w, c: c + w] = True
                    xs[b, ch, r: r + w, c: c + w] = 1.0 if ch == 0 else float(torch.rand((), generator=gen))
                    sets.append(entries)
                    break
        xs[b, 1, size // 2, size // 2] = 1.0  # the TX, in no component (always kept)
        maps.append(ComponentMap.from_sets((3, size, size), sets))
    return xs, ComponentMap.stack(maps)


def timed(fn, device: torch.device, repeats: int) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--components", type=int, default=40)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--batch-candidates", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.manual_seed(0)
    device = torch.device(args.device)
    x, cmap = radio_like(args.batch, args.size, args.components, torch.Generator().manual_seed(0))
    x, model = x.to(device), small_net().to(device)
    region = torch.full((1, args.size, args.size), 1.0 / args.size**2, device=device)  # mean of the map
    mp = MatchingPursuit(model, ZeroInfiller(), cmap, k=args.k,
                         batch_candidates=args.batch_candidates)
    # best of --repeats: the first run of each also warms up
    t_loop, loop_order = timed(lambda: per_input_pursuit(mp, x, region), device, args.repeats)
    t_batched, res = timed(lambda: mp.pursue(x, region), device, args.repeats)
    sizes = cmap.sizes(args.batch)
    results = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "batch": args.batch, "size": args.size, "k": args.k,
        "batch_candidates": args.batch_candidates,
        "components_per_input": (sizes > 0).sum(1).tolist(), "padded_to": cmap.n_components,
        "per_input_loop_s": t_loop, "batched_s": t_batched, "speedup": t_loop / t_batched,
        # the batched pursuit stops at zero distortion (order -1 after): compare up to there
        "same_orders": bool(torch.equal(torch.where(res.order >= 0, loop_order, -1).cpu(),
                                        res.order.cpu())),
        "stopped_early": int((res.order < 0).any(1).sum()),
    }
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
