#!/bin/sh
# tools/untracked-refs.sh: where, outside the tracked blocks, does the paused
# process hold pointers into the blocks the expectations call leaked?
#
#   examples/tools/untracked-refs.sh [NAME...]   (after make -C examples all tools)
#
# Runs bin/NAME with LSAN_EXAMPLE_DAEMON=1 and bin/allocshim.so (plus
# run.ld_preload), waits for "done", then reads every writable mapping of the
# process through /proc/PID/mem and reports each aligned word that points into
# a block allocated by a function listed in "leaks", unless the word itself
# lies inside a tracked block (the shim's own table is skipped too). Registers
# are not read (tools/check-valgrind-live.sh covers them).
#
# Any such word is a root for a checker that scans memory it did not see
# allocated (libc's .data, anonymous mappings, the [heap] outside tracked
# blocks) and hides a real leak. The examples are built to have none, except
# where that is the point (arena_top: glibc's top-chunk pointers) or
# unavoidable (jemalloc: jemalloc's own metadata). Exit status 0 always; the
# output is the finding.
set -eu
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import bisect, json, os, struct, subprocess, sys, time

shim = os.path.abspath("bin/allocshim.so")
names = sys.argv[1:] or sorted(d for d in os.listdir(".") if os.path.isfile(os.path.join(d, "expected.json")))
for name in names:
    exp = json.load(open(os.path.join(name, "expected.json")))
    run = exp["run"]
    if run.get("static_musl"):
        print("skip   %s" % name)
        continue
    leaked_fns = {g["function"] for g in exp["leaks"]}
    out = "/tmp/untracked-refs.%d.%s" % (os.getpid(), name)
    env = dict(os.environ, LSAN_EXAMPLE_DAEMON="1", ALLOCSHIM_OUT=out)
    env.update(run.get("env", {}))
    env["LD_PRELOAD"] = " ".join([shim] + ([run["ld_preload"]] if run.get("ld_preload") else []))
    binary = os.path.abspath(os.path.join("bin", name))
    p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        p.stdout.readline()
        p.stdin.write("\n")
        p.stdin.flush()
        p.stdout.readline()
        time.sleep(0.3)
        blocks, table = [], None
        for line in open(out):
            f = line.split()
            if f[0] == "block":
                blocks.append((int(f[4], 16), int(f[1]), binary if f[2] == '""' else f[2], int(f[3], 16)))
            elif f[0] == "table":
                table = (int(f[1], 16), int(f[2], 16))
        os.unlink(out)
        fname = {}
        mods = {}
        for b in blocks:
            mods.setdefault(b[2], set()).add(b[3])
        for m, offs in mods.items():
            offs = sorted(offs)
            o = subprocess.run(["addr2line", "-f", "-e", m] + ["0x%x" % (x - 1) for x in offs],
                               capture_output=True, text=True).stdout.splitlines()
            for i, x in enumerate(offs):
                fname[(m, x)] = o[2 * i]
        blocks.sort()
        starts = [b[0] for b in blocks]

        def owner(v):
            i = bisect.bisect_right(starts, v) - 1
            if i >= 0 and blocks[i][0] <= v < blocks[i][0] + blocks[i][1]:
                return i
            return None

        refs = {}
        mem = open("/proc/%d/mem" % p.pid, "rb", 0)
        for line in open("/proc/%d/maps" % p.pid):
            f = line.split()
            lo, hi = [int(x, 16) for x in f[0].split("-")]
            label = f[5] if len(f) > 5 else "anon@%x" % lo
            if f[1][:2] != "rw" or label in ("[vvar]", "[vsyscall]"):
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except OSError:
                continue
            for off in range(0, len(data) - 7, 8):
                v = struct.unpack_from("<Q", data, off)[0]
                i = owner(v) if v >= 0x1000 else None
                if i is None:
                    continue
                a = lo + off
                if (table and table[0] <= a < table[1]) or owner(a) is not None:
                    continue
                fn = fname[(blocks[i][2], blocks[i][3])]
                if fn in leaked_fns:
                    refs.setdefault(fn, []).append("%s+0x%x -> block+%d" % (os.path.basename(label), a - lo, v - blocks[i][0]))
    finally:
        p.kill()
        p.wait()
    print(("REFS   " if refs else "clean  ") + name)
    for fn, r in sorted(refs.items()):
        print("    %s: %s%s" % (fn, "; ".join(r[:6]), " ..." if len(r) > 6 else ""))
PY
