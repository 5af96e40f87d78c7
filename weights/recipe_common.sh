# Sourced by train_metasdnet.sh and train_metacrest.sh: the settings both recipes share and the
# synthetic splits they train and validate on (made if missing), so the two families always see
# the same data. Not meant to be run on its own.
DATA=${DATA:-benchmarks/.data}
OUT=${OUT:-weights}
SEED=${SEED:-0}
DEVICE=${DEVICE:-cpu}
VAL="$DATA/synth-val-${VAL_SEQUENCES:-20}"
# shellcheck disable=SC2086
metatrack synth "$DATA/synth-train" --sequences "${TRAIN_SEQUENCES:-60}" --split train --seed 0 --no-progress ${SYNTH_ARGS:-}
# shellcheck disable=SC2086
metatrack synth "$VAL" --sequences "${VAL_SEQUENCES:-20}" --split val --seed 0 --no-progress ${SYNTH_ARGS:-}
mkdir -p "$OUT"
# --resume when a run's checkpoint exists (every step of a recipe resumes when rerun)
resume() { [ -f "$1.ckpt" ] && echo --resume || true; }
# NAME.pt for the shipped seed 0, NAME-seedK.pt for the others
seeded() { [ "$SEED" = 0 ] && echo "$OUT/$1.pt" || echo "$OUT/$1-seed$SEED.pt"; }
# meta-train the variants of family $1 with the calling recipe's COMMON flags: VARIANTS limits them
# (base l2f dropgrad l2f-dropgrad); each one's name and L2F / DropGrad flags come from the one
# variant table, tracker/variants.py, through `metatrack variant`
train_variants() {
  local table row words file
  # shellcheck disable=SC2086
  table=$(metatrack variant "$1" ${VARIANTS:-})
  mapfile -t rows <<< "$table"
  for row in "${rows[@]}"; do
    read -ra words <<< "$row"
    file=$(seeded "${words[0]}")
    # shellcheck disable=SC2046
    metatrack meta-train "${COMMON[@]}" "${words[@]:1}" --out "$file" $(resume "$file")
  done
}
