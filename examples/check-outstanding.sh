#!/bin/sh
# check-outstanding.sh: compare every example's "outstanding" expectations with
# an independent count made by bin/allocshim.so (an LD_PRELOAD wrapper of
# every allocator entry point, see tools/allocshim.c).
#
#   ./check-outstanding.sh [-v] [NAME...]     (or: make -C examples check-outstanding)
#
# Each example runs as bin/NAME with stdin </dev/null, the variables in
# run.env, and LD_PRELOAD=bin/allocshim.so followed by run.ld_preload. The
# shim tracks every block allocated between "ready" and "done" and lists the
# live ones at "done", each with the return address of the outermost allocator
# call; addr2line turns that into the allocating function. The groups
# (function, bytes, count) must equal "outstanding" exactly.
# A static_musl example cannot be preloaded: its source is built against
# glibc (gcc, same flags) into a temporary file and checked that way.
# Exit status: 0 all match, 1 a mismatch.
set -eu
cd "$(dirname "$0")"
exec python3 - "$@" <<'PY'
import json, os, subprocess, sys, tempfile

verbose = False
args = sys.argv[1:]
if args and args[0] == "-v":
    verbose, args = True, args[1:]
names = args or sorted(d for d in os.listdir(".") if os.path.isfile(os.path.join(d, "expected.json")))
shim = os.path.abspath("bin/allocshim.so")
if not os.path.exists(shim):
    sys.exit("bin/allocshim.so missing: run make -C examples tools")

def resolve(module, offsets):
    """addr2line -f for each return address (minus one: the call instruction)."""
    out = subprocess.run(["addr2line", "-f", "-e", module] + ["0x%x" % (o - 1) for o in offsets],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return {o: (out[2 * i] if out[2 * i] != "??" else "?@" + os.path.basename(module))
            for i, o in enumerate(offsets)}

def fmt(groups):
    return "\n".join("      %-28s %10d bytes %5d blocks" % (k, v[0], v[1])
                     for k, v in sorted(groups.items())) or "      (none)"

failed = 0
tmpdir = tempfile.mkdtemp(prefix="lsan-examples-")
for name in names:
    with open(os.path.join(name, "expected.json")) as f:
        exp = json.load(f)
    run = exp.get("run", {})
    binary = os.path.abspath(os.path.join("bin", name))
    if run.get("static_musl"):
        binary = os.path.join(tmpdir, name + ".glibc")
        subprocess.run(["gcc", "-O0", "-g", "-fno-omit-frame-pointer", "-pthread", "-o", binary,
                        os.path.join(name, name + ".c")], check=True)
    if not os.access(binary, os.X_OK):
        print("FAIL %-16s %s missing: run make -C examples" % (name, binary))
        failed += 1
        continue
    out = os.path.join(tmpdir, name + ".blocks")
    env = dict(os.environ)
    env.pop("LSAN_EXAMPLE_DAEMON", None)
    env.update(run.get("env", {}))
    env["LD_PRELOAD"] = " ".join([shim] + ([run["ld_preload"]] if run.get("ld_preload") else []))
    env["ALLOCSHIM_OUT"] = out
    if os.path.exists(out):
        os.unlink(out)
    try:
        p = subprocess.run([binary], stdin=subprocess.DEVNULL, capture_output=True, env=env,
                           timeout=120, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        print("FAIL %-16s timed out" % name)
        failed += 1
        continue
    problems = []
    if p.stdout != "ready\ndone\n":
        problems.append("stdout is %r, want 'ready\\ndone\\n'" % p.stdout)
    if p.returncode != 0:
        problems.append("exit status %d: %s" % (p.returncode, p.stderr.strip()))
    blocks = []
    if os.path.exists(out):
        for line in open(out):
            f = line.split()
            if f[0] == "overflow":
                problems.append("shim table overflow")
                continue
            if f[0] != "block":
                continue
            module = binary if f[2] == '""' else f[2]
            blocks.append((int(f[1]), module, int(f[3], 16)))
    else:
        problems.append("no report from the shim (no done line?)")
    by_module = {}
    for size, module, off in blocks:
        by_module.setdefault(module, set()).add(off)
    names_of = {}
    for module, offs in by_module.items():
        offs = sorted(offs)
        for o, fn in resolve(module, offs).items():
            names_of[(module, o)] = fn
    got = {}
    for size, module, off in blocks:
        fn = names_of[(module, off)]
        b, c = got.get(fn, (0, 0))
        got[fn] = (b + size, c + 1)
    want = {}
    for g in exp["outstanding"]:
        b, c = want.get(g["function"], (0, 0))
        want[g["function"]] = (b + g["bytes"], c + g["count"])
    if got != want:
        problems.append("groups differ from outstanding:\n    want:\n%s\n    got:\n%s" % (fmt(want), fmt(got)))
    if problems:
        failed += 1
        print("FAIL %-16s %s" % (name, "\n     ".join(problems)))
    else:
        print("ok   %-16s outstanding: %d group(s), %d block(s)" % (name, len(want), len(blocks)))
        if verbose:
            print(fmt(got))

if failed:
    print("%d example(s) do not match" % failed)
    sys.exit(1)
PY
