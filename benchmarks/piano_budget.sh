#!/bin/bash
# The piano study's budget, step by step: render piano-sf, then every step of
# workflow/rules/piano.smk on CPU, each timed with /usr/bin/time (wall, user, sys seconds).
# Used to compare the default profile before and after a change of the dataset or models
# (e.g. the RAND/UCHO chord sets: benchmarks/results/piano_chord_sets.json). On a loaded
# machine compare the CPU seconds (user + sys), not the wall clock.
#
# usage: benchmarks/piano_budget.sh OUT_DIR [SRC_DIR]
#   OUT_DIR  gets data/ (the rendered dataset), run/ (the steps' outputs) and times.txt
#   SRC_DIR  the genex sources to time (default: this checkout's src); its config/ beside it
set -euo pipefail
OUT=$(realpath -m "$1"); SRC=$(realpath "${2:-$(dirname "$0")/../src}"); ROOT=$(dirname "$SRC")
VENV=$(realpath "$(dirname "$0")/../.venv/bin"); PY=$VENV/python; GENEX=$VENV/genex
export PYTHONPATH=$SRC TQDM_DISABLE=1
mkdir -p "$OUT/run/models" "$OUT/params"
SEED=$($PY - "$ROOT" "$OUT/params" <<'PY'
import json, sys, yaml
root, out = sys.argv[1:]
config = yaml.safe_load(open(f"{root}/config/config.yaml"))
json.dump(config["datasets"]["piano_sf"], open(f"{out}/piano_sf.json", "w"))
for name, section in config["piano"].items():
    for key, value in (section.items() if name == "smoothers" else [(name, section)]):
        json.dump(value, open(f"{out}/{key}.json", "w"))
print(config["seed"])
PY
)
P=$OUT/params R=$OUT/run
t() { local name=$1; shift; /usr/bin/time -f "$name %e wall %U user %S sys" -a -o "$OUT/times.txt" "$@" > "$R/$name.log" 2>&1; }
t render $PY -c "import json, sys; from pathlib import Path; from genex.studies.piano.render import render; \
Path(sys.argv[1]).mkdir(parents=True, exist_ok=True); print(render(Path(sys.argv[1]), json.load(open(sys.argv[2])), int(sys.argv[3])))" \
  "$OUT/data" "$P/piano_sf.json" "$SEED"
common="--seed $SEED --threads 2 --device cpu"
t features $GENEX piano features --root "$OUT/data" --params @$P/features.json --seed $SEED --out $R/features
t train_inn $GENEX piano train-inn --features $R/features --params @$P/inn.json $common --checkpoints $R/ckpt/inn --out $R/models/inn.pt
t predict $GENEX piano predict --features $R/features --inn $R/models/inn.pt $common --out $R/predictions
for m in gru lstm bigru; do
  t train_$m $GENEX piano train-smoother --model $m --features $R/features --predictions $R/predictions --params @$P/$m.json $common --checkpoints $R/ckpt/$m --out $R/models/$m.pt
done
t train_cnn $GENEX piano train-cnn --features $R/features --params @$P/cnn.json $common --checkpoints $R/ckpt/cnn --out $R/models/cnn.pt
t evaluate $GENEX piano evaluate --features $R/features --predictions $R/predictions --models $R/models --params @$P/evaluation.json $common --out $R/evaluation
t inspect $GENEX piano inspect --features $R/features --predictions $R/predictions --inn $R/models/inn.pt --params @$P/explanation.json $common --out $R/inspection
t report $GENEX piano report --features $R/features --predictions $R/predictions --evaluation $R/evaluation --inspection $R/inspection --params @$P/report.json --seed $SEED --metrics $R/metrics.json --section $R/section
cat "$OUT/times.txt"
