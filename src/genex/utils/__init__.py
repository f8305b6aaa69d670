"""Small shared helpers: atomic outputs, seeding, progress, provenance."""

from genex.utils.io import atomic_dir, atomic_file, write_json, read_json, write_wav
from genex.utils.runtime import seed_everything, progress, provenance

__all__ = [
    "atomic_dir", "atomic_file", "write_json", "read_json", "write_wav",
    "seed_everything", "progress", "provenance",
]
