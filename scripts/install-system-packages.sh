#!/usr/bin/env bash
# Install the Debian packages genex needs (FluidSynth and the GM soundfonts), only those
# missing. Uses sudo when not root; says what to do where neither works.
set -euo pipefail

packages=(fluidsynth libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont
          openssh-server   # sshd: the SSH remote test (tests/pipeline/test_remotes.py) starts its own
          chromium)        # headless: the test that `genex explain`'s index.html loads every image and audio
packages+=("$@")   # extra packages, e.g. slurm-wlm munge for the SLURM test

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${packages[*]})"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing system packages: ${missing[*]}; this is not a Debian/Ubuntu system" >&2
  echo "       (no apt-get). Install FluidSynth and the soundfonts with your package manager" >&2
  echo "       and point GENEX_SOUNDFONT_DIRS at the folder holding the .sf2/.sf3 files." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
elif command -v sudo >/dev/null 2>&1 && [ -t 0 ]; then
  sudo=(sudo)
else
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "       and this user is not root and cannot use sudo. Ask an administrator to run:" >&2
  echo "       apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
