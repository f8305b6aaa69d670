#!/usr/bin/env bash
# Share instead of recompute: fetch the versioned outputs from the DVC remote, then mark
# them current for Snakemake (a fresh clone has no .snakemake metadata and new mtimes, so
# without --touch Snakemake would rebuild what was just pulled).
# Usage: scripts/pull.sh [extra snakemake args, e.g. --configfile config/tiny.yaml]
set -euo pipefail
cd "$(dirname "$0")/.."
dvc pull
snakemake --profile workflow/profiles/default --cores 1 --touch --quiet "$@"
