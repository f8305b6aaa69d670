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
cache=$(dvc cache dir)
# A server that goes away mid-transfer can leave the S3 client retrying for many minutes
# without a word: give up once no byte has reached the cache for this many seconds.
stall=${GENEX_PULL_STALL:-600}

fetch_failed() {
  echo "pull.sh: error: dvc fetch from remote '${remote:-(none)}' $1; nothing was checked out or marked current; rerun 'make pull' once the remote is reachable" >&2
  exit 1
}

marker=$(mktemp)
trap 'rm -f "$marker"' EXIT
dvc fetch &
fetch=$!
quiet=0
while kill -0 "$fetch" 2>/dev/null; do
  sleep 1
  if [ -n "$(find "$cache" -newer "$marker" -print -quit 2>/dev/null)" ]; then
    touch "$marker"
    quiet=0
  elif (( ++quiet >= stall )); then
    kill "$fetch" 2>/dev/null || true
    sleep 5
    kill -9 "$fetch" 2>/dev/null || true
    wait "$fetch" 2>/dev/null || true
    fetch_failed "stalled: no data arrived for ${stall} s (GENEX_PULL_STALL)"
  fi
done
wait "$fetch" || fetch_failed "failed (see above)"
# DVC trusts the remote's content (unless the remote sets verify): check every fetched object
python3 scripts/verify-cache.py "$cache"
if ! dvc checkout; then
  echo "pull.sh: error: dvc checkout failed (see above); nothing was marked current" >&2
  exit 1
fi
snakemake --profile workflow/profiles/default --cores 1 --touch --quiet "$@"
