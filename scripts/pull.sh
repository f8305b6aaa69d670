#!/usr/bin/env bash
# Share instead of recompute: fetch the versioned outputs from the DVC remote, check their
# hashes, check them out, then mark them current for Snakemake (a fresh clone has no
# .snakemake metadata and new mtimes, so without --touch Snakemake would rebuild what was
# just pulled). Each step runs only if the one before succeeded: a failed or damaged fetch
# leaves nothing checked out or marked current, and rerunning resumes.
# Usage: scripts/pull.sh [extra snakemake args, e.g. --configfile config/tiny.yaml]
set -euo pipefail
cd "$(dirname "$0")/.."
remote=$(dvc remote default 2>/dev/null || true)
if ! dvc fetch; then
  echo "pull.sh: error: dvc fetch from remote '${remote:-(none)}' failed (see above); nothing was checked out or marked current; rerun 'make pull' once the remote is reachable" >&2
  exit 1
fi
# DVC trusts the remote's content (unless the remote sets verify): check every fetched object
python3 scripts/verify-cache.py "$(dvc cache dir)"
if ! dvc checkout; then
  echo "pull.sh: error: dvc checkout failed (see above); nothing was marked current" >&2
  exit 1
fi
snakemake --profile workflow/profiles/default --cores 1 --touch --quiet "$@"
