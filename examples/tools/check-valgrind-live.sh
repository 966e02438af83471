#!/bin/sh
# tools/check-valgrind-live.sh: a third opinion on the "leaks" expectations,
# taken the way lsan takes it: on the gcc-built bin/NAME, live, while the
# example sleeps after "done" (LSAN_EXAMPLE_DAEMON=1), with valgrind's
# gdbserver command `leak_check` (vgdb). LSan (check-lsan.sh) checks a clang
# build at exit; this catches stale pointer copies (stack slots, registers)
# that only the gcc builds or only the paused state have.
#
#   examples/tools/check-valgrind-live.sh [NAME...]     (after make -C examples)
#
# valgrind and LSan do not classify everything alike, so the comparison is per
# allocating function: the number of blocks and bytes valgrind calls
# "definitely lost" or "indirectly lost" must equal the sum of the direct and
# indirect groups in "leaks". (valgrind reports one block of a leaked cycle as
# definitely lost where LSan says indirect; and it counts "possibly lost"
# (interior pointers only) as neither lost nor reachable: possibly lost blocks
# are listed but not compared.) Skipped: examples valgrind cannot run (pvalloc
# aborts under valgrind), static_musl, ld_preload, preattach_leak
# (valgrind sees the pre-attach leaks), large (random words in valgrind's own
# preloaded data point into the 64 MiB blocks: "possibly lost").
set -eu
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import json, os, re, subprocess, sys, time

SKIP = {"pvalloc": "pvalloc aborts under valgrind", "edge_sizes": "pvalloc aborts under valgrind",
        "freed": "pvalloc aborts under valgrind",
        "preattach_leak": "valgrind sees the pre-attach leaks", "large": "valgrind-only possibly-lost"}
ALLOC = {"malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign",
         "valloc", "pvalloc", "strdup", "strndup"}
names = sys.argv[1:] or sorted(d for d in os.listdir(".") if os.path.isfile(os.path.join(d, "expected.json")))
failed = 0
for name in names:
    exp = json.load(open(os.path.join(name, "expected.json")))
    run = exp["run"]
    why = SKIP.get(name) or ("static musl" if run.get("static_musl") else None) or \
        ("LD_PRELOAD allocator" if run.get("ld_preload") else None)
    if why:
        print("SKIP %-16s %s" % (name, why))
        continue
    env = dict(os.environ, LSAN_EXAMPLE_DAEMON="1")
    env.update(run.get("env", {}))
    p = subprocess.Popen(["valgrind", "-q", "--vgdb=yes", "--leak-check=no", os.path.join("bin", name)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=env, text=True)
    try:
        if p.stdout.readline() != "ready\n":
            raise RuntimeError("no ready")
        p.stdin.write("\n")
        p.stdin.flush()
        if p.stdout.readline() != "done\n":
            raise RuntimeError("no done")
        time.sleep(0.5)
        out = subprocess.run(["vgdb", "--pid=%d" % p.pid, "leak_check", "full", "reachable", "any"],
                             capture_output=True, text=True, timeout=120).stdout
    except Exception as e:
        print("FAIL %-16s %s" % (name, e))
        failed += 1
        continue
    finally:
        p.kill()
        p.wait()
    got, possibly, cur = {}, {}, None
    for l in out.splitlines():
        l = re.sub(r"^==\d+== ", "", l)
        m = re.match(r"^([\d,]+) (?:\(([\d,]+) direct, [\d,]+ indirect\) )?bytes in ([\d,]+) blocks are "
                     r"(definitely lost|indirectly lost|possibly lost|still reachable)", l)
        if m:
            cur = (m.group(4), int((m.group(2) or m.group(1)).replace(",", "")), int(m.group(3).replace(",", "")))
            continue
        m = re.match(r"^\s+(?:at|by) 0x[0-9A-F]+: (.+?) \(", l)
        if m and cur:
            fn = m.group(1)
            if fn in ALLOC or fn.startswith("operator new"):
                continue
            if cur[0] in ("definitely lost", "indirectly lost"):
                b, c = got.get(fn, (0, 0))
                got[fn] = (b + cur[1], c + cur[2])
            elif cur[0] == "possibly lost":
                possibly[fn] = cur[1:]
            cur = None
    want = {}
    for g in exp["leaks"]:
        b, c = want.get(g["function"], (0, 0))
        want[g["function"]] = (b + g["bytes"], c + g["count"])
    if got != want:
        failed += 1
        print("FAIL %-16s valgrind lost %s, want %s" % (name, sorted(got.items()), sorted(want.items())))
    else:
        print("ok   %-16s %d function(s)%s" % (name, len(want),
              ("; possibly lost (not compared): %s" % sorted(possibly.items())) if possibly else ""))
if failed:
    sys.exit(1)
PY
