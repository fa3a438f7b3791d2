#!/usr/bin/env python3
"""peers.py with conv-kernel as one more peer ("ours"), timed in the same sitting.

Runs ../shared/peers/peers.py (or --peers-py) unchanged, except that its peer list gains
"ours": the benches' generated layer of each row, loaded from the conv-peer-ffi library
(`cargo build --release -p conv-peer-ffi`) through ctypes. Our layer is then built from the
same weights and input, checked against the same float64 reference, and timed call by call in
the same interleaved rounds as ONNX Runtime, OpenVINO, XNNPACK and PyTorch, through a Python
call of about the same overhead (the _api_floor row does not apply to us and is skipped). A
slow minute on a shared machine then slows every peer alike, which separate criterion and
peers.py runs cannot promise.

Every option but the three below goes to peers.py; afterwards a table of our median against the
fastest other peer's, per row and thread count, is printed, then the same by the 10th
percentile (also: --summary [--stat p10|min|median] FILE... alone).

  python benches/peers/with_ours.py --threads 1 --out benches/peers/DATE_ours_1thread.tsv
  python benches/peers/with_ours.py --summary benches/peers/DATE_ours_1thread.tsv
  python benches/peers/with_ours.py --summary --stat p10 benches/peers/DATE_ours_1thread.tsv

  --peers-py PATH   peers.py to run (default: ../shared/peers/peers.py beside the repository)
  --lib PATH        the conv-peer-ffi library (default: $CARGO_TARGET_DIR or target/,
                    release/libconv_peer_ffi.so)
  --shapes-tsv PATH a shapes file in shapes.tsv's columns to run instead of shapes.tsv, such as
                    benches/more-shapes.tsv (rows the benches' MORE_ROWS carry: build the
                    library with `cargo build --release -p conv-peer-ffi --features more-rows`)
  --lib NAME=PATH   (repeatable) several builds of the library as peers "ours_NAME": an A/B
                    of two versions in the same interleaved rounds, which a noisy shared
                    machine cannot disturb the way it disturbs two runs one after the other

Why the 10th percentile too: on the shared 2-core VMs measured, calls fall into a fast and a
slow mode (mnv2_dw384_14: 18.5 against 28-38 us, for minutes or seconds at a time), and how
many land in the slow one differs between builds of different code in the same sitting: two
builds of the streaming depthwise tiles had medians of 18.9 and 27.6 us and 10th percentiles of
18.7 and 18.6. The 10th percentile compares the fast mode, the median the mix. Two copies of
one build in one sitting agreed within 2% by median (pointwise rows, 15 rounds); by the 10th
percentile, rows of over 500 us can differ by 20% when the fast mode is rare.
"""

import ctypes
import importlib.util
import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def take_opt(argv, name, default):
    """Removes `name VALUE` (or `name=VALUE`) from argv and returns VALUE."""
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            v = argv[i + 1]
            del argv[i:i + 2]
            return v
        if a.startswith(name + "="):
            del argv[i]
            return a.split("=", 1)[1]
    return default


def load_lib(path):
    lib = ctypes.CDLL(path)
    vp, sz = ctypes.c_void_p, ctypes.c_size_t
    lib.conv_peer_new.argtypes = [ctypes.c_char_p, sz, ctypes.POINTER(vp), ctypes.POINTER(sz), sz]
    lib.conv_peer_new.restype = vp
    lib.conv_peer_run.argtypes = [vp, vp, sz, vp, sz]
    lib.conv_peer_run.restype = ctypes.c_int
    lib.conv_peer_kernel.argtypes = [vp]
    lib.conv_peer_kernel.restype = ctypes.c_char_p
    lib.conv_peer_lens.argtypes = [vp, ctypes.POINTER(sz)]
    lib.conv_peer_lens.restype = None
    lib.conv_peer_free.argtypes = [vp]
    lib.conv_peer_free.restype = None
    return lib


def aligned_empty(n):
    """n float32 starting on a 64-byte line, as the other peers' runtimes allocate."""
    import numpy as np
    raw = np.empty(n + 16, dtype=np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + n]


class Ours:
    """One row's generated layer behind the C ABI; freed with the peers' other objects."""

    def __init__(self, lib, shape, params, x, threads):
        import numpy as np
        self.lib = lib
        arrays = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
                  for (w, b) in params for a in (w, b)]
        ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        lens = (ctypes.c_size_t * len(arrays))(*[a.size for a in arrays])
        self.h = lib.conv_peer_new(shape.name.encode(), threads, ptrs, lens, len(arrays))
        if not self.h:
            raise RuntimeError("conv-peer-ffi has no row %s (or its weights differ; rows of "
                               "more-shapes.tsv need --features more-rows)" % shape.name)
        n = (ctypes.c_size_t * 2)()
        lib.conv_peer_lens(self.h, n)
        self.x = aligned_empty(n[0])
        self.x[:] = x.reshape(-1)
        self.y = aligned_empty(n[1])
        self.out_shape = shape.out_shape()
        self.kernel = lib.conv_peer_kernel(self.h).decode()
        run, h = lib.conv_peer_run, self.h
        xp, xn, yp, yn = self.x.ctypes.data, self.x.size, self.y.ctypes.data, self.y.size

        def fn():
            run(h, xp, xn, yp, yn)
        self.fn = fn

    def get(self):
        rc = self.lib.conv_peer_run(self.h, self.x.ctypes.data, self.x.size,
                                    self.y.ctypes.data, self.y.size)
        if rc != 0:
            raise RuntimeError("conv_peer_run returned %d" % rc)
        return self.y.reshape(self.out_shape).copy()

    def __del__(self):
        if getattr(self, "h", None):
            self.lib.conv_peer_free(self.h)
            self.h = None


def install(peers, libs):
    """Adds our peers (`libs`: peer name -> library) to peers.py's peer list and builder."""
    peers.PEER_ORDER.extend(libs)
    orig_avail, orig_build = peers.available_peers, peers.build_all

    def available_peers():
        names, avail = orig_avail()
        avail["conv-kernel"] = "conv-peer-ffi"
        return names + list(libs), avail

    def build_all(shape, params, x, threads, names):
        built = orig_build(shape, params, x, threads, [p for p in names if p not in libs])
        for name, lib in libs.items():
            if name not in names or shape.name == "_api_floor":
                continue
            try:
                o = Ours(lib, shape, params, x, threads)
                # `o.get` keeps `o` (and its buffers) alive as long as peers.py keeps the
                # built peers of this block.
                built[name] = (o.fn, o.get, "conv-kernel %s" % o.kernel, None)
            except Exception as e:  # noqa: BLE001
                print("#   %s: build failed: %s" % (name, e), file=sys.stderr)
        return built

    peers.available_peers = available_peers
    peers.build_all = build_all


def read_sitting(path, stat="median"):
    """(shape, threads) -> {peer: `stat` us} of one peers file (`stat`: median, p10, min)."""
    rows = {}
    with open(path) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            value = r.get(stat + "_us", "")
            if value:
                rows.setdefault((r["shape"], int(r["threads"])), {})[r["peer"]] = float(value)
    return rows


def summary(paths, stat="median"):
    """Per file (one sitting each): our `stat` (median, p10 or min) against the fastest other
    peer's, per row and thread count; ratios only compare figures of the same sitting."""
    print("By %s:" % stat)
    sittings = [read_sitting(p, stat) for p in paths]
    keys = []
    for s in sittings:
        keys += [k for k in s if k not in keys]
    ours_names = sorted({p for s in sittings for by in s.values() for p in by if p.startswith("ours")})
    cols = ["%s %s" % (os.path.basename(p), o) for p in paths for o in ours_names]
    print("| row | threads | " + " | ".join(cols) + " |")
    print("|---|---:|" + "---|" * len(cols))
    logs = {}
    for key in keys:
        cells = []
        for i, s in enumerate(sittings):
            by = s.get(key, {})
            others = {p: t for p, t in by.items() if not p.startswith("ours")}
            for o in ours_names:
                if o not in by or not others:
                    cells.append("")
                    continue
                best = min(others, key=others.get)
                ratio = others[best] / by[o]
                logs.setdefault((i, o, key[1]), []).append(math.log(ratio))
                cells.append("%.1f vs %.1f %s: %.2fx" % (by[o], others[best], best, ratio))
        if any(cells):
            print("| %s | %d | %s |" % (key[0], key[1], " | ".join(cells)))
    print()
    for (i, o, thr), v in sorted(logs.items()):
        behind = sum(1 for x in v if x < 0)
        print("%s, %s, %d thread(s): geometric mean %.2fx over %d rows, %d behind"
              % (os.path.basename(paths[i]), o, thr, math.exp(sum(v) / len(v)), len(v), behind))


def main():
    argv = sys.argv[1:]
    if argv and argv[0] == "--summary":
        rest = argv[1:]
        stat = take_opt(rest, "--stat", "median")
        return summary(rest, stat)
    peers_py = take_opt(argv, "--peers-py",
                        os.path.join(os.path.dirname(REPO), "shared", "peers", "peers.py"))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    libs = {}
    while True:
        lib = take_opt(argv, "--lib", None)
        if lib is None:
            break
        name, path = lib.split("=", 1) if "=" in lib else ("", lib)
        libs["ours_" + name if name else "ours"] = path
    if not libs:
        libs["ours"] = os.path.join(target, "release", "libconv_peer_ffi.so")
    # Each build is its own file: ctypes loads a path once per process.
    loaded = {name: load_lib(path) for name, path in libs.items()}
    spec = importlib.util.spec_from_file_location("peers", peers_py)
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    shapes_tsv = take_opt(argv, "--shapes-tsv", None)
    if shapes_tsv is not None:
        peers.SHAPES_TSV = os.path.abspath(shapes_tsv)
    install(peers, loaded)
    if "--peers" in argv or any(a.startswith("--peers=") for a in argv):
        i = next(i for i, a in enumerate(argv) if a == "--peers" or a.startswith("--peers="))
        if argv[i] == "--peers":
            argv[i + 1] += "," + ",".join(libs)
        else:
            argv[i] += "," + ",".join(libs)
    sys.argv = [peers_py] + argv
    peers.main()
    out = take_opt(list(argv), "--out", os.path.join(os.getcwd(), "peers_py.tsv"))
    print()
    summary([out])
    print()
    summary([out], "p10")


if __name__ == "__main__":
    main()
