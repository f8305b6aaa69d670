"""The pipeline's shared code: what two or more studies (or the CLI core) use.

Atomic outputs, seeding and provenance (``io``, ``runtime``, re-exported here), checkpointing
(``checkpoint``), the study steps' common arguments (``steps``), downloads (``download``,
``real``), the soundfont synth (``soundfont``), audio files (``audio``) and the HTML report
(``report``). It imports the library :mod:`genex.xai`, never a study.
"""

from genex.pipeline.io import (atomic_dir, atomic_file, load_arrays, load_tensors, parse_params, read_json,
                               remove_stale, save_tensors, write_json, write_wav)
from genex.progress import progress
from genex.pipeline.runtime import provenance, seed_everything

__all__ = [
    "atomic_dir", "atomic_file", "load_arrays", "load_tensors", "save_tensors", "remove_stale", "parse_params",
    "write_json", "read_json", "write_wav", "seed_everything", "progress", "provenance",
]
