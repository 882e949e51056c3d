#!/usr/bin/env bash
# vmlab beside libCacheSim (PyPI libcachesim 0.3.5), in one run, as ratios:
#  1. cache mode: lru and clock over a 10 M-reference zipf(1.0) trace of 1 M
#     pages, written once as uncompressed oracleGeneral with object size 1
#     (libCacheSim's cache size then counts objects), at 100,000 frames;
#  2. full mode: two_list on a recorded `sort -n` (hit-heavy), against
#     libCacheSim's cache-only LRU on the same references.
# Needs: a release build (cargo build --release), python3 with numpy and
# libcachesim, valgrind. Usage: [BEST=3] bash benches-peer/vs_libcachesim.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
VMLAB=${VMLAB:-target/release/vmlab}
RUNS=${1:-3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

python3 - "$W" <<'PY'
import numpy as np, sys
n_pages, n_refs = 1_000_000, 10_000_000
rng = np.random.default_rng(42)
cdf = np.cumsum(1.0 / np.arange(1, n_pages + 1)); cdf /= cdf[-1]
perm = rng.permutation(n_pages)
perm[np.searchsorted(cdf, rng.random(n_refs))].astype('>u4').tofile(sys.argv[1] + '/zipf.trc')
PY
"$VMLAB" trace convert "$W/zipf.trc" -o "$W/zipf.og" --to oracle_general --format trc --obj-size 1

seq 1 3000 | shuf --random-source=<(yes) > "$W/in.txt"
"$VMLAB" trace record -o "$W/sort.trace" --quiet -- sort -n "$W/in.txt" -o "$W/out.txt"
"$VMLAB" trace convert "$W/sort.trace" -o "$W/sort.og" --to oracle_general --obj-size 1 2>/dev/null

lcs() { # trace frames policy -> references per second
    python3 - "$@" <<'PY'
import libcachesim as lcs, sys, time
path, n, pol = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = lcs.TraceReader(path, lcs.TraceType.ORACLE_GENERAL_TRACE)
total = r.get_num_of_req()
c = lcs.LRU(n) if pol == "lru" else lcs.Clock(n, init_freq=0, n_bit_counter=1)
t = time.perf_counter(); c.process_trace(r); dt = time.perf_counter() - t
print(total / dt)
PY
}
ours() { # trace mode policy frames -> references per second
    "$VMLAB" replay "$1" --mode "$2" --set reclaim="$3" --frames "$4" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"][0]["refs_per_s"])'
}
# Each figure is the best of $BEST tries, the two tools' tries alternating:
# a shared machine's noise only ever slows a try, and a try of the sort
# trace lasts a third of a second, short enough for one burst on the other
# core to land on one tool and not the other.
BEST=${BEST:-3}
pair() { # label, our command..., --, their command... -> the ratio of bests
    local label=$1 a=0 b=0 v; shift
    local ours_cmd=() theirs=()
    while [ "$1" != -- ]; do ours_cmd+=("$1"); shift; done; shift; theirs=("$@")
    for _ in $(seq "$BEST"); do
        v=$("${ours_cmd[@]}"); a=$(python3 -c "print(max($a, $v))")
        v=$("${theirs[@]}" 2>/dev/null | tail -n 1); b=$(python3 -c "print(max($b, $v))")
    done
    python3 -c "print('$label = %.2f' % ($a / $b))"
}
for i in $(seq "$RUNS"); do
    for p in lru clock; do
        pair "run $i cache $p: vmlab/libCacheSim" ours "$W/zipf.og" cache $p 100000 -- lcs "$W/zipf.og" 100000 $p
    done
    pair "run $i full two_list / libCacheSim cache lru" ours "$W/sort.trace" full two_list 200 -- lcs "$W/sort.og" 200 lru
done
