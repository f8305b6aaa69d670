"""Small shared helpers: atomic outputs, seeding, progress, provenance."""

from genex.utils.io import (atomic_dir, atomic_file, load_arrays, load_tensors, parse_params, read_json,
                            remove_stale, save_tensors, write_json, write_wav)
from genex.progress import progress
from genex.utils.runtime import provenance, seed_everything

__all__ = [
    "atomic_dir", "atomic_file", "load_arrays", "load_tensors", "save_tensors", "remove_stale", "parse_params", "write_json", "read_json", "write_wav",
    "seed_everything", "progress", "provenance",
]
