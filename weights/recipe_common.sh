# Sourced by train_metasdnet.sh and train_metacrest.sh: the settings both recipes share and the
# synthetic splits they train and validate on (made if missing), so the two families always see
# the same data. Not meant to be run on its own.
DATA=${DATA:-benchmarks/.data}
OUT=${OUT:-weights}
SEED=${SEED:-0}
DEVICE=${DEVICE:-cpu}
# IMAGERY=packages: real photographs from Debian packages (Tux Paint's photo cut-outs as targets,
# mate-backgrounds' nature photographs as backgrounds; installed with apt-get when missing) and
# the footage profile (docs/synthetic.md), in splits of their own; the package versions go into
# the weights' metadata (data.sources). mate's photographs give no val image, so the val split
# keeps the default backgrounds.
TRAIN="$DATA/synth-train"
VAL="$DATA/synth-val-${VAL_SEQUENCES:-20}"
FEATURES="$DATA/features"
TRAIN_ARGS=() VAL_ARGS=()
case "${IMAGERY:-default}" in
  default) ;;
  packages)
    STAMPS=${STAMPS:-/usr/share/tuxpaint/stamps} BACKGROUNDS=${BACKGROUNDS:-/usr/share/backgrounds/mate/nature}
    if [ ! -d "$STAMPS" ] || [ ! -d "$BACKGROUNDS" ]; then
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tuxpaint-stamps-default \
          mate-backgrounds >/dev/null; } || { echo "IMAGERY=packages: cannot install tuxpaint-stamps-default" \
          "and mate-backgrounds (apt-get as root)" >&2; exit 2; }
    fi
    TRAIN="$DATA/synth-train-packages" VAL="$DATA/synth-val-${VAL_SEQUENCES:-20}-packages"
    FEATURES="$DATA/features-packages"
    VAL_ARGS=(--profile footage --objects "$STAMPS")
    TRAIN_ARGS=("${VAL_ARGS[@]}" --backgrounds "$BACKGROUNDS");;
  *) echo "IMAGERY must be default or packages, got '$IMAGERY'" >&2; exit 2;;
esac
# shellcheck disable=SC2086
metatrack synth "$TRAIN" --sequences "${TRAIN_SEQUENCES:-60}" --split train --seed 0 --no-progress "${TRAIN_ARGS[@]}" ${SYNTH_ARGS:-}
# shellcheck disable=SC2086
metatrack synth "$VAL" --sequences "${VAL_SEQUENCES:-20}" --split val --seed 0 --no-progress "${VAL_ARGS[@]}" ${SYNTH_ARGS:-}
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
