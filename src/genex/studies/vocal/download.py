"""Download of the Jamendo dataset (``genex download``); the shared machinery is
:mod:`genex.pipeline.real` (see its docstring for the config keys)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from genex.pipeline.download import Limits
from genex.pipeline.real import file_entries, extract_root, install, move_children, select


JAMENDO_AUDIO = re.compile(r"^jam_(train|valid|test)_audio\.tar\.gz$")
JAMENDO_LIST = re.compile(r"^jam_(train|valid|test)_list\.txt$")
JAMENDO_LABELS = re.compile(r"^(jam_annote)\.tar\.gz$")
AUDIO_SUFFIXES = (".ogg", ".mp3", ".wav", ".flac")


def _has_audio(folder: Path) -> bool:
    return any(p.suffix.lower() in AUDIO_SUFFIXES for p in folder.iterdir() if p.is_file())


def _write_filelist(listing: Path, audio: Path, dest: Path) -> int:
    """Turn a ``jam_<split>_list.txt`` (names ending .trs) into the audio file names."""
    names = []
    for line in listing.read_text().splitlines():
        stem = line.strip().removesuffix(".trs")
        if not stem:
            continue
        found = [stem + s for s in AUDIO_SUFFIXES if (audio / (stem + s)).is_file()]
        if not found:
            raise ValueError(f"{listing.name}: no audio file for {stem!r} in the audio archives")
        names.append(found[0])
    dest.write_text("".join(n + "\n" for n in names))
    return len(names)


def download_jamendo(out_dir: Path, params: dict) -> None:
    """Jamendo corpus (Ramona et al. 2008) -> ``audio/``, ``labels/*.lab``, ``filelists/<split>``."""
    entries = file_entries(params, "jamendo")
    audio_files, lists = select(entries, JAMENDO_AUDIO), select(entries, JAMENDO_LIST)
    labels = select(entries, JAMENDO_LABELS)
    splits = ["train", "valid", "test"]
    missing = ([f"jam_{s}_audio.tar.gz" for s in splits if s not in audio_files]
               + [f"jam_{s}_list.txt" for s in splits if s not in lists]
               + ([] if labels else ["jam_annote.tar.gz"]))
    if missing:
        raise ValueError(f"datasets.jamendo.files lacks {missing}")
    wanted = [audio_files[s] for s in splits] + [labels["jam_annote"]] + [lists[s] for s in splits]

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        audio = staging / "audio"
        audio.mkdir()
        counts = {}
        for split in splits:
            tmp = staging / f".x-{split}"
            root = extract_root(archives[audio_files[split]["name"]], tmp, _has_audio, "audio files",
                                 Limits.of(params))
            before = sum(1 for _ in audio.iterdir())
            move_children(root, audio)
            shutil.rmtree(tmp, ignore_errors=True)
            counts[f"{split}_audio"] = sum(1 for _ in audio.iterdir()) - before
        root = extract_root(archives[labels["jam_annote"]["name"]], staging / ".x-labels",
                             lambda p: any(p.glob("*.lab")), ".lab files", Limits.of(params))
        os.replace(root, staging / "labels")
        shutil.rmtree(staging / ".x-labels", ignore_errors=True)
        (staging / "filelists").mkdir()
        for split in splits:
            counts[f"{split}_list"] = _write_filelist(archives[lists[split]["name"]], audio,
                                                      staging / "filelists" / split)
        counts["labels"] = sum(1 for _ in (staging / "labels").glob("*.lab"))
        return counts

    install("jamendo", Path(out_dir), params, wanted, build)
