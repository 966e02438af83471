#!/bin/sh
# check-lsan.sh: compare every example's leak expectations with LeakSanitizer.
#
#   ./check-lsan.sh [-v] [NAME...]      (run `make -C examples lsan` first, or `make -C examples check-lsan`)
#
# For each example (default: all), runs bin/lsan/NAME (the same source built with
# clang -fsanitize=leak) with stdin </dev/null, so example_begin() continues at
# once, plus the variables in run.env. LSan checks for leaks when the program
# exits; its report is grouped by (kind, allocating function) and summed, where
# the allocating function is the first frame that is not an allocator
# (malloc, calloc, realloc, ..., strdup, strndup, operator new...). The groups
# must equal, exactly:
#   - "leaks"      when "lsan_parity" is true;
#   - "lsan_leaks" when "lsan_parity" is false (what LSan is known to report
#     instead; see the example's "notes"). Without "lsan_leaks" the example is
#     skipped.
# Also checked: stdout is exactly "ready\ndone\n" and the exit status is 23 when
# leaks are expected, 0 otherwise.
#
# The lsan builds default to allocator_may_return_null=1:fast_unwind_on_malloc=0
# (see common.h); this script passes the same, plus exitcode=23 and the
# symbolizer, in LSAN_OPTIONS. Exit status: 0 all match, 1 a mismatch.
set -eu
cd "$(dirname "$0")"
exec python3 - "$@" <<'PY'
import json, os, re, subprocess, sys

verbose = False
args = sys.argv[1:]
if args and args[0] == "-v":
    verbose, args = True, args[1:]
names = args or sorted(d for d in os.listdir(".") if os.path.isfile(os.path.join(d, "expected.json")))

ALLOCATORS = {
    "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
    "aligned_alloc", "memalign", "__libc_memalign", "valloc", "pvalloc",
    "strdup", "__strdup", "strndup", "__strndup",
}

def is_allocator(fn):
    fn = re.sub(r"^_*interceptor_", "", fn)
    return fn in ALLOCATORS or fn.startswith("operator new") or fn.startswith("operator delete")

HEAD = re.compile(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:")
FRAME = re.compile(r"^\s+#(\d+) 0x[0-9a-f]+ (.*)$")

def frame_function(rest):
    """'in FUNC FILE:LINE:COL' or 'in FUNC (MODULE+0xOFF) (BuildId: ..)' or '(MODULE+0xOFF)'."""
    rest = re.sub(r" \(BuildId: [0-9a-f]+\)$", "", rest)
    if not rest.startswith("in "):
        return ""
    rest = rest[3:]
    if rest.endswith(")") and " (" in rest:
        return rest.rsplit(" (", 1)[0]
    if " " in rest:
        return rest.rsplit(" ", 1)[0]
    return rest

def parse(report):
    groups = {}
    cur = None  # [kind, bytes, count, function or None]
    def flush():
        if cur is not None:
            key = (cur[0], cur[3] or "")
            b, c = groups.get(key, (0, 0))
            groups[key] = (b + cur[1], c + cur[2])
    for line in report.splitlines():
        m = HEAD.match(line)
        if m:
            flush()
            cur = [m.group(1).lower(), int(m.group(2)), int(m.group(3)), None]
            continue
        m = FRAME.match(line)
        if m and cur is not None:
            if cur[3] is None:
                fn = frame_function(m.group(2))
                if fn and not is_allocator(fn):
                    cur[3] = fn
            continue
        if cur is not None and not line.strip():
            flush()
            cur = None
    flush()
    return groups

def symbolizer():
    for p in ("/usr/lib/llvm-14/bin/llvm-symbolizer", "/usr/bin/llvm-symbolizer"):
        if os.access(p, os.X_OK):
            return p
    return None

def fmt(groups):
    return "\n".join("      %-8s %-28s %10d bytes %5d objects" % (k[0], k[1] or "?", v[0], v[1])
                     for k, v in sorted(groups.items())) or "      (none)"

failed = 0
for name in names:
    with open(os.path.join(name, "expected.json")) as f:
        exp = json.load(f)
    if exp.get("lsan_parity"):
        want_list = exp["leaks"]
        what = "leaks"
    elif "lsan_leaks" in exp:
        want_list = exp["lsan_leaks"]
        what = "lsan_leaks"
    else:
        print("SKIP %-16s (lsan_parity false, no lsan_leaks)" % name)
        continue
    want = {}
    for g in want_list:
        key = (g["kind"], g["function"])
        b, c = want.get(key, (0, 0))
        want[key] = (b + g["bytes"], c + g["count"])

    binary = os.path.join("bin", "lsan", name)
    if not os.access(binary, os.X_OK):
        print("FAIL %-16s %s missing: run make -C examples lsan" % (name, binary))
        failed += 1
        continue
    env = dict(os.environ)
    env.pop("LSAN_EXAMPLE_DAEMON", None)
    env.pop("LD_PRELOAD", None)
    env.update(exp.get("run", {}).get("env", {}))
    opts = ["allocator_may_return_null=1", "fast_unwind_on_malloc=0", "exitcode=23"]
    sym = symbolizer()
    if sym:
        opts.append("external_symbolizer_path=" + sym)
    env["LSAN_OPTIONS"] = ":".join(opts)
    try:
        p = subprocess.run([binary], stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=120, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        print("FAIL %-16s timed out" % name)
        failed += 1
        continue
    got = parse(p.stderr)
    problems = []
    if p.stdout != "ready\ndone\n":
        problems.append("stdout is %r, want 'ready\\ndone\\n'" % p.stdout)
    want_rc = 23 if want else 0
    if p.returncode != want_rc:
        problems.append("exit status %d, want %d" % (p.returncode, want_rc))
    if got != want:
        problems.append("LSan groups differ from %s:\n    want:\n%s\n    got:\n%s" % (what, fmt(want), fmt(got)))
    if problems:
        failed += 1
        print("FAIL %-16s %s" % (name, "\n     ".join(problems)))
        if verbose:
            print(p.stderr)
    else:
        print("ok   %-16s %s: %d group(s)" % (name, what, len(want)))
        if verbose:
            print(fmt(got))

if failed:
    print("%d example(s) do not match LSan" % failed)
    sys.exit(1)
PY
