#!/bin/bash
# The optical backend against the digital one at batch 64, as README "Speed" reports:
# `fourf eval --backend optical --batch 64 --json` on ideal-128 (LIMIT images, default
# 4096) and on lcos-pluto2 at 128² with 6000 e⁻ at full scale (NOISY_LIMIT, default
# 1024), the fastest of RUNS runs (default 3) of each side; the digital time is the
# same run's batched digital reference (enough images that it takes about a second
# or more: a shorter one makes the ratio follow every pause of the machine).
# usage: benches/optical_speed.sh [models...]   (ONLY=ideal or ONLY=noisy for one machine)
set -e
cd "$(dirname "$0")/.."
cargo build --release -q
F=./target/release/fourf
models=${*:-gfnet-fmnist spectformer-fmnist convsharevit-fmnist}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for m in $models; do
  for mach in ideal noisy; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$mach" ] && continue
    if [ $mach = ideal ]; then
      args=(--machine ideal-128); lim=${LIMIT:-4096}
    else
      args=(--machine lcos-pluto2 --set input_slm.pixels_x=128 --set input_slm.pixels_y=128 --set camera.full_scale_e=6000); lim=${NOISY_LIMIT:-1024}
    fi
    pairs=()
    for _ in $(seq "${RUNS:-3}"); do
      $F eval --model "$m" --backend optical "${args[@]}" --batch 64 --limit "$lim" --json > "$tmp"
      pairs+=("$(python3 -c "import json,sys;d=json.load(open(sys.argv[1]));print(f\"{d['wall_s']}:{d['digital_wall_s']}\")" "$tmp")")
    done
    python3 - "$m" "$mach" "$lim" "${pairs[@]}" <<'PY'
import sys
m, mach, lim = sys.argv[1:4]
pairs = [tuple(map(float, p.split(':'))) for p in sys.argv[4:]]
o, d = min(p[0] for p in pairs), min(p[1] for p in pairs)
n = int(lim)
print(f"{m:20s} {mach:6s} {n} images: optical {n/o:7.1f} images/s, digital {n/d:7.1f} images/s, {o/d:5.1f}x")
PY
  done
done
