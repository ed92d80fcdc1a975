#!/bin/sh
# The error each tiling strategy pays for the filter panel's pixels, against
# scipy.signal.convolve2d: `simulation.filter_pixels = samples` (no envelope),
# `apertures` (the pixels' sinc envelope), and `apertures` with the controller's
# envelope pre-compensation.
#
#   benches/peers/filter_panel_errors.sh                 # on lcos-pluto2
#   M="ideal --set input_slm.pixels_x=1920 --set input_slm.pixels_y=1080 \
#      --set filter_slm.fill_factor=0.93" benches/peers/filter_panel_errors.sh
#
# Needs a release build (cargo build --release) and a Python with numpy and scipy
# (PYTHON, default python3).
set -e
F=$(cd "$(dirname "$0")/../.." && pwd)/target/release/fourf
PY=${PYTHON:-python3}
M=${M:-lcos-pluto2}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
cd "$D"
$PY - <<'P'
import numpy as np
r = np.random.default_rng(2)
np.save('s_x.npy', r.standard_normal((64, 28, 28)))  # input tiling: 64 maps, one kernel
np.save('s_k.npy', r.standard_normal((5, 5)))
np.save('k_x.npy', r.standard_normal((28, 28)))      # kernel tiling: one map, 256 kernels
np.save('k_k.npy', r.standard_normal((256, 5, 5)))
np.save('c_x.npy', r.standard_normal((32, 28, 28)))  # channel tiling: 32 -> 32 channels
np.save('c_k.npy', r.standard_normal((32, 32, 5, 5)))
P
for v in samples apertures apertures_comp; do
  extra="--set simulation.filter_pixels=${v%_comp}"
  [ "$v" = apertures_comp ] && extra="$extra --set detection.filter_envelope_compensation=true"
  for s in s k c; do
    # shellcheck disable=SC2086
    $F conv --input ${s}_x.npy --kernel ${s}_k.npy --mode same --machine $M $extra --out ${s}_$v.npy --json > ${s}_$v.json
  done
done
$PY - <<'P'
import json
import numpy as np
from scipy.signal import convolve2d
def rel(y, ref): return np.linalg.norm(y - ref) / np.linalg.norm(ref)
sx, sk = np.load('s_x.npy'), np.load('s_k.npy')
kx, kk = np.load('k_x.npy'), np.load('k_k.npy')
cx, ck = np.load('c_x.npy'), np.load('c_k.npy')
ref = {
    's': np.stack([convolve2d(m, sk, mode='same') for m in sx]),
    'k': np.stack([convolve2d(kx, k, mode='same') for k in kk]),
    'c': np.stack([sum(convolve2d(cx[i], ck[o, i], mode='same') for i in range(cx.shape[0])) for o in range(ck.shape[0])]),
}
names = {'s': 'input tiling (64 maps, one 5x5 kernel)', 'k': 'kernel tiling (one map, 256 kernels)',
         'c': 'channel tiling (32 -> 32 channels)'}
for s in 'skc':
    row = []
    for v in ['samples', 'apertures', 'apertures_comp']:
        j = json.load(open(f'{s}_{v}.json'))
        row.append(f"{v} {rel(np.load(f'{s}_{v}.npy'), ref[s]):.4f}")
    print(f"{names[s]} [{j['plan']['frames']} frame(s)]: " + ", ".join(row))
P
