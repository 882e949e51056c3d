"""Writes the libCacheSim test traces from the first 3000 references of the
cpp paper trace (../../../../../../shared/traces/trace-cpp.trc.bin.gz, or a
path given as the first argument), with the PyPI package libcachesim 0.3.5:

  cpp3000.csv.gz              time,page,size (header); read with
                              obj-id-col=2,delimiter=,,has-header=true
  cpp3000.oracleGeneral.gz    Util.convert_to_oracleGeneral of that csv
  cpp3000.v1.lcs.gz, .v2, .v3 Util.convert_to_lcs(lcs_ver=1, 2, 3)
  cpp3000.expect.txt.gz       what libCacheSim's own readers give:
                              "<obj_id> <next_access_vtime>" a line; the
                              script checks that the csv reader gives the
                              same ids and every binary file the same ids
                              and next-access times

Run from this directory: python3 make_libcachesim.py
"""
import gzip, os, struct, sys, tempfile
import libcachesim as l

N = 3000
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), *[".."] * 6, "shared", "traces", "trace-cpp.trc.bin.gz")
raw = gzip.open(src).read()
pages = struct.unpack(">%dI" % (len(raw) // 4), raw)[:N]

tmp = tempfile.mkdtemp()
csv = os.path.join(tmp, "cpp3000.csv")
with open(csv, "w") as f:
    f.write("time,page,size\n")
    for i, p in enumerate(pages):
        f.write("%d,%d,4096\n" % (i + 1, p))


def csv_reader():
    p = l.ReaderInitParam()
    p.time_field, p.obj_id_field, p.obj_size_field = 1, 2, 3
    p.has_header, p.delimiter, p.obj_id_is_num = True, ",", True
    return l.TraceReader(csv, l.TraceType.CSV_TRACE, p)


outs = {"cpp3000.csv": (csv, None)}
og = os.path.join(tmp, "cpp3000.oracleGeneral")
l.Util.convert_to_oracleGeneral(csv_reader()._reader, og)
outs["cpp3000.oracleGeneral"] = (og, l.TraceType.ORACLE_GENERAL_TRACE)
for v in (1, 2, 3):
    path = os.path.join(tmp, "cpp3000.v%d.lcs" % v)
    l.Util.convert_to_lcs(csv_reader()._reader, path, lcs_ver=v)
    outs["cpp3000.v%d.lcs" % v] = (path, l.TraceType.LCS_TRACE)

seen = {}
for name, (path, ty) in outs.items():
    r = csv_reader() if ty is None else l.TraceReader(path, ty)
    got = [(req.obj_id, req.next_access_vtime) for req in r]
    assert len(got) == N, (name, len(got))
    seen[name] = got
    with open(path, "rb") as f, gzip.GzipFile(name + ".gz", "wb", 9, mtime=0) as g:
        g.write(f.read())
want = seen["cpp3000.oracleGeneral"]
assert [i for i, _ in seen["cpp3000.csv"]] == [i for i, _ in want] == list(pages)
for name, got in seen.items():
    assert name == "cpp3000.csv" or got == want, name
with gzip.GzipFile("cpp3000.expect.txt.gz", "wb", 9, mtime=0) as g:
    g.write("".join("%d %d\n" % r for r in want).encode())
