"""`genex explain` and `genex fit-infiller`: the audio front door on the command line.

Registered by :func:`register`; torch and librosa are imported when a command runs, so
`genex --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import textwrap

log = logging.getLogger("genex.audio")

# the choices of genex.audio.explain (METHODS, INFILLERS), repeated so that registering the
# commands imports no torch; a test checks that both agree
METHODS = ("rde-concrete", "rde-l1", "pursuit", "saliency", "ig", "occlusion")
INFILLERS = ("noise", "zero", "mean", "blur")

EXPLAIN_HELP = """\
Explain which parts of a clip's spectrogram your audio model's decision rests on.

The clip's spectrogram is cut into components (tiles, bands, segments or harmonics);
a method finds the components the target output needs, with removed components filled
in by an infiller. Several files are explained in batches (equal lengths together).

example:
  genex explain --model my_model.pt --audio dog.wav cat.wav \\
      --components tiles:16x8 --method rde-concrete --infiller noise --out explained/
  then open explained/index.html

  genex explain --model genex.audio.zoo:torchcrepe_pitch --audio note.wav \\
      --components harmonics:8 --span 0.2:0.8 --out crepe/

models (--model SPEC):
  a TorchScript file (torch.jit.save), package.module:factory (a Python callable that
  returns an nn.Module), or a local Hugging Face audio-classification folder (needs
  transformers: pip install 'genex[hf]'; labels from id2label). Optional module
  attributes: labels, sample_rate, input_kind, output (softmax | sigmoid | framewise),
  n_fft, hop, n_mels.

inputs (--input):
  waveform  the model takes audio: the explanation lives in the STFT magnitude and the
            model hears iSTFT(masked magnitude x original phase)
  stft      the model takes the STFT magnitude [B, F, frames]
  mel       the model takes a log-mel spectrogram log(mel filterbank @ |STFT| + 1e-5)

methods (--method) and what each trusts:
  rde-concrete  rate-distortion: the fewest components that keep the target output when
                the rest is infilled (concrete masks). Trusts the infiller: with one that
                stays in distribution (fitted), it explains the model, with noise or zeros
                partly its reaction to artefacts. The default.
  rde-l1        the same with a continuous mask and an l1 rate (use noise or fitted)
  pursuit       greedy matching pursuit on the same objective: picks components one at a
                time (no relaxation; slower), scores = order of choice
  saliency      |gradient| at the clip: trusts the model's local linearisation
  ig            integrated gradients from silence: trusts the straight path to the clip
  occlusion     target change when one component alone is silenced: assumes no interactions
  (saliency, ig, occlusion need Captum: pip install 'genex[captum]')

infillers (--infiller):
  noise (Gaussian at the clips' overall level), zero (silence), mean (each frequency's
  mean over time), blur (Gaussian along time, 0.1 s), or a folder DIR written by
  `genex fit-infiller` (an inpainting GAN trained on your audio: the in-distribution
  choice). Every run also reports the in-distribution check (Fréchet distance of the
  model's outputs and prediction agreement, clean vs infilled) for noise, zero, mean,
  blur and a fitted DIR, so you see which infillers your model takes in its stride.

outputs (--out DIR: new, empty or an earlier output; written atomically, so nothing
is left there after a failure):
  masks.npz, explanation.json, mask.png, original.wav, kept.wav, removed.wav, index.html
  (one sub-folder per clip, and one index.html over all, when several files are given).
"""


def _span(text: str) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--span {text!r}: use START:END in seconds, e.g. 0.5:1.5") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"--span {text!r}: need 0 <= START < END")
    return start, end


def _cmd_explain(args: argparse.Namespace) -> None:
    from genex.audio.explain import explain_many
    from genex.audio.page import check_out_dir, write_outputs

    check_out_dir(args.out)  # before the work, not after it
    explanations = explain_many(
        args.model, list(args.audio), input=args.input, components=args.components,
        method=args.method, infiller=args.infiller, target=args.target, span=args.span,
        n_samples=args.n_samples, steps=args.steps, lam=args.lam, seed=args.seed,
        device=args.device, batch_size=args.batch_size, n_fft=args.n_fft, hop=args.hop,
        n_mels=args.n_mels, f0=args.f0, in_distribution=not args.no_in_distribution,
        prune=args.prune)
    write_outputs(args.out, explanations)
    for e in explanations:
        label = e.target.get("label") or e.target["index"]
        log.info("%s: explained %s (%s, %d components) -> %s", e.source, label, e.method,
                 len(e.scores), args.out)


def _cmd_fit_infiller(args: argparse.Namespace) -> None:
    from pathlib import Path

    from genex.audio.infiller import fit_infiller
    from genex.audio.representations import make_representation

    folder = Path(args.audio_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"))
    if not files:
        raise ValueError(f"{folder}: no audio files (.wav, .flac, .ogg, .mp3, .aiff)")
    kw = {"n_fft": args.n_fft, "hop": args.hop}
    if args.input == "mel":
        kw["n_mels"] = args.n_mels
    representation = make_representation(args.input, args.sample_rate, **kw)
    fit_infiller(files, representation, args.out, steps=args.steps, batch_size=args.batch_size,
                 crop_frames=args.crop_frames, seed=args.seed, device=args.device,
                 resume=not args.restart)


def register(subparsers) -> None:
    """Add `genex explain` and `genex fit-infiller` to the `genex` command line."""
    p = subparsers.add_parser(
        "explain", help="explain your audio model's decision on audio files",
        description=EXPLAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="TorchScript file, package.module:factory, or a Hugging Face folder")
    p.add_argument("--audio", required=True, nargs="+", metavar="FILE",
                   help="audio files (wav, flac, ogg, ...); mixed to mono, resampled to the "
                        "model's sample_rate when it declares one")
    p.add_argument("--input", choices=("waveform", "stft", "mel"), default=None,
                   help="what the model takes (default: what it declares, else waveform)")
    p.add_argument("--components", default="tiles:16x8",
                   help="tiles:FxT (F bands x T segments), bands:N, segments:N or harmonics:N "
                        "(of the pYIN f0, or --f0) (default: tiles:16x8)")
    p.add_argument("--method", choices=METHODS, default="rde-concrete",
                   help="explainer (default: rde-concrete; see above)")
    p.add_argument("--infiller", default="noise", metavar="|".join(INFILLERS) + "|DIR",
                   help="what fills removed components (default: noise; DIR from `genex fit-infiller`)")
    p.add_argument("--target", default="auto",
                   help="auto (the predicted class; framewise: highest mean logit over --span; "
                        "multi-label: the highest score), a class INDEX or a label NAME")
    p.add_argument("--span", type=_span, default=None, metavar="START:END",
                   help="seconds of a framewise model's output to explain (default: the whole clip)")
    p.add_argument("--steps", type=int, default=None, help="RDE optimiser steps (default: 150)")
    p.add_argument("--lam", type=float, default=None, help="RDE sparsity weight lambda (default: 5)")
    p.add_argument("--prune", action="store_true",
                   help="RDE: then drop kept components the binary objective does not need, one "
                        "forward each (sparser masks; e.g. pitch models' rows between harmonics)")
    p.add_argument("--n-samples", type=int, default=8,
                   help="infill draws per RDE step / pursuit candidate (default: 8)")
    p.add_argument("--batch-size", type=int, default=16, help="clips per batch (default: 16)")
    p.add_argument("--n-fft", type=int, default=None, help="STFT size (default: the model's, else 512)")
    p.add_argument("--hop", type=int, default=None, help="STFT hop (default: the model's, else 128)")
    p.add_argument("--n-mels", type=int, default=None, help="mel bands for --input mel (default: 64)")
    p.add_argument("--f0", type=float, default=None, help="f0 in Hz for harmonics (default: pYIN)")
    p.add_argument("--no-in-distribution", action="store_true",
                   help="skip the in-distribution table (Fréchet distance, agreement per infiller)")
    p.add_argument("--seed", type=int, default=0, help="seeds every random draw (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: new, empty, or an earlier genex explain output (replaced atomically)")
    p.set_defaults(func=_cmd_explain)

    p = subparsers.add_parser(
        "fit-infiller", help="train an in-distribution infiller (inpainting GAN) on your audio",
        description=textwrap.dedent("""\
            Train the time-frequency inpainting GAN on your own audio, for
            `genex explain --infiller DIR`. Checkpointed and resumable: run it again to go on.

            example:
              genex fit-infiller --audio-dir my_clips/ --input waveform --sample-rate 16000 \\
                  --steps 2000 --out my_infiller/
              genex explain --model my_model.pt --audio clip.wav --infiller my_infiller/ --out ex/

            The representation (input, sample rate, n_fft, hop, n_mels) must be the one
            `genex explain` uses for your model; a mismatch is refused when the infiller loads."""),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--audio-dir", required=True, metavar="DIR", help="folder of audio files (searched recursively)")
    p.add_argument("--input", choices=("waveform", "stft", "mel"), default="waveform",
                   help="the representation of the model it serves (default: waveform = STFT magnitude)")
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz (default: 16000)")
    p.add_argument("--n-fft", type=int, default=512, help="STFT size (default: 512)")
    p.add_argument("--hop", type=int, default=128, help="STFT hop (default: 128)")
    p.add_argument("--n-mels", type=int, default=64, help="mel bands for --input mel (default: 64)")
    p.add_argument("--steps", type=int, default=2000, help="training steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=16, help="crops per step (default: 16)")
    p.add_argument("--crop-frames", type=int, default=64, help="frames per training crop (default: 64)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--out", required=True, metavar="DIR", help="infiller folder")
    p.set_defaults(func=_cmd_fit_infiller)
