#!/usr/bin/env bash
# Share instead of recompute: fetch the versioned outputs from the DVC remote, check their
# hashes, check them out, then mark them current for Snakemake (a fresh clone has no
# .snakemake metadata and new mtimes, so without --touch Snakemake would rebuild what was
# just pulled). Each step runs only if the one before succeeded: a failed or damaged fetch
# leaves nothing checked out or marked current, and rerunning resumes.
# Usage: scripts/pull.sh [--profile NAME [--stage STAGE]...] [extra snakemake args]
#   --profile NAME: the run of config/NAME.yaml in runs/NAME/ (runs/NAME/dvc.yaml), not the default one
#   --stage STAGE:  only that stage of it and the stages it depends on (e.g. --stage vocal)
set -euo pipefail
cd "$(dirname "$0")/.."
targets=()
touch_targets=()
profile=
if [ "${1:-}" = "--profile" ]; then
  profile=${2:?"pull.sh: error: --profile needs a name (config/NAME.yaml)"}
  shift 2
  [ -f "runs/$profile/dvc.yaml" ] || { echo "pull.sh: error: runs/$profile/dvc.yaml not found: no DVC stages for profile '$profile'" >&2; exit 1; }
  targets=("runs/$profile/dvc.yaml")
  stages=()
  while [ "${1:-}" = "--stage" ]; do
    stages+=("${2:?"pull.sh: error: --stage needs a stage name of runs/$profile/dvc.yaml"}")
    shift 2
  done
  if [ ${#stages[@]} -gt 0 ]; then
    targets=(--with-deps)
    for stage in "${stages[@]}"; do targets+=("runs/$profile/dvc.yaml:$stage"); done
    # what Snakemake marks current: the targets those stages' commands build (after " -- ")
    touch_targets=(-- $(python3 - "runs/$profile/dvc.yaml" "${stages[@]}" <<'PY'
import sys, yaml
stages = yaml.safe_load(open(sys.argv[1]))["stages"]
for name in sys.argv[2:]:
    if name not in stages:
        sys.exit(f"pull.sh: error: {sys.argv[1]} has no stage {name!r} (stages: {', '.join(stages)})")
    print(stages[name]["cmd"].split(" -- ", 1)[1])
PY
)) || exit 1
  fi
fi
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
dvc fetch "${targets[@]}" &
fetch=$!
quiet=0
while kill -0 "$fetch" 2>/dev/null; do
  sleep 1
  if [ -n "$(find "$cache" -newer "$marker" -print -quit 2>/dev/null)" ]; then
    touch "$marker"
    quiet=0
  elif (( ++quiet >= stall )); then
    kill "$fetch" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do  # up to 5 s to exit cleanly, then killed
      kill -0 "$fetch" 2>/dev/null || break
      sleep 0.5
    done
    kill -9 "$fetch" 2>/dev/null || true
    wait "$fetch" 2>/dev/null || true
    fetch_failed "stalled: no data arrived for ${stall} s (GENEX_PULL_STALL)"
  fi
done
wait "$fetch" || fetch_failed "failed (see above)"
# DVC trusts the remote's content (unless the remote sets verify): check every fetched object
python3 scripts/verify-cache.py "$cache"
if ! dvc checkout "${targets[@]}"; then
  echo "pull.sh: error: dvc checkout failed (see above); nothing was marked current" >&2
  exit 1
fi
if [ -n "$profile" ]; then
  cd "runs/$profile"
  snakemake --snakefile ../../Snakefile --profile ../../workflow/profiles/default --cores 1 --touch --quiet \
    --configfile "../../config/$profile.yaml" "$@" "${touch_targets[@]}"
else
  snakemake --profile workflow/profiles/default --cores 1 --touch --quiet "$@"
fi
