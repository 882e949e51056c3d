#!/usr/bin/env python3
"""Miss counts of libCacheSim (PyPI libcachesim==0.3.5) on the LIRS/CLOCK-Pro
paper traces, for tests/cache_vs_libcachesim.rs.

Usage: libcachesim_misses.py TRACE_DIR NAME:SIZE,SIZE,... [NAME:...]
(reads TRACE_DIR/trace-NAME.trc.bin.gz, or trace-NAME.trc.bin uncompressed)
Prints one JSON object {trace: {policy: {size: misses}}} on stdout.

Each trace (gzip of big-endian u32 page numbers) is written out as a
libCacheSim binary trace (little-endian u32 ids, read with format "<I"),
converted to oracleGeneral with the package's own converter (which fills in
each request's next access, what Belady needs), and every cache reads the
oracleGeneral file. (Not the plain-text reader: 0.3.5's converter, which
reads backwards, drops sprite's last request, a one-digit line.) The script
checks that the oracleGeneral file holds the trace's ids in order.
Exit 3 if libcachesim 0.3.5 cannot be imported.
"""
import gzip
import json
import os
import struct
import sys
import tempfile

try:
    import libcachesim as lcs
except ImportError as e:  # the Rust test turns this into its message
    print(f"cannot import libcachesim: {e}", file=sys.stderr)
    sys.exit(3)

# The numbers compared are this version's (docs/REPLAY.md).
if getattr(lcs, "__version__", None) != "0.3.5":
    print(f"libcachesim {getattr(lcs, '__version__', '?')} is installed, the cross-check needs 0.3.5: "
          "pip install libcachesim==0.3.5", file=sys.stderr)
    sys.exit(3)

# A hash table of 2^16 buckets, not the default 2^24 (which costs 128 MiB
# and a tenth of a second per cache): it grows as needed and the hashing
# changes no eviction decision.
HP = 16

POLICIES = {
    "lru": lambda n: lcs.LRU(n, hashpower=HP),
    "fifo": lambda n: lcs.FIFO(n, hashpower=HP),
    # init_freq=0: a new object's reference bit is clear.
    "clock": lambda n: lcs.Clock(n, hashpower=HP, init_freq=0, n_bit_counter=1),
    "arc": lambda n: lcs.ARC(n, hashpower=HP),
    "lirs": lambda n: lcs.LIRS(n, hashpower=HP),
    "opt": lambda n: lcs.Belady(n, hashpower=HP),
}


def main():
    tdir = sys.argv[1]
    out = {}
    # libCacheSim's C code logs to stdout: send fd 1 to stderr while it
    # runs, so that stdout carries only the JSON.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    with tempfile.TemporaryDirectory() as tmp:
        for arg in sys.argv[2:]:
            name, sizes = arg.split(":")
            sizes = [int(s) for s in sizes.split(",")]
            gz = os.path.join(tdir, f"trace-{name}.trc.bin.gz")
            if os.path.exists(gz):
                data = gzip.open(gz).read()
            else:
                with open(os.path.join(tdir, f"trace-{name}.trc.bin"), "rb") as f:
                    data = f.read()
            ids = struct.unpack(">%dI" % (len(data) // 4), data)
            binp = os.path.join(tmp, name + ".bin")
            with open(binp, "wb") as f:
                f.write(struct.pack("<%dI" % len(ids), *ids))
            og = os.path.join(tmp, name + ".oracleGeneral")
            params = lcs.ReaderInitParam(binary_fmt_str="<I")
            params.obj_id_field = 1
            reader = lcs.TraceReader(binp, lcs.TraceType.BIN_TRACE, params)
            lcs.Util.convert_to_oracleGeneral(reader._reader, og)
            back = [q.obj_id for q in lcs.TraceReader(og, lcs.TraceType.ORACLE_GENERAL_TRACE)]
            if back != list(ids):
                sys.exit(f"{name}: the oracleGeneral file does not hold the trace's ids in order")
            res = {}
            for pol, make in POLICIES.items():
                res[pol] = {}
                for n in sizes:
                    r = lcs.TraceReader(og, lcs.TraceType.ORACLE_GENERAL_TRACE)
                    if r.get_num_of_req() != len(ids):
                        sys.exit(f"{name}: oracleGeneral has {r.get_num_of_req()} requests, trace {len(ids)}")
                    mr, _ = make(n).process_trace(r)
                    # The miss ratio is misses / requests in a double:
                    # exact enough to give the integer back.
                    res[pol][str(n)] = round(mr * len(ids))
            out[name] = {"references": len(ids), "misses": res}
    sys.stdout.flush()
    os.dup2(saved, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
