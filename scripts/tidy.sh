#!/usr/bin/env bash
# clang-tidy over podfence's own code: every plugin/**/*.cpp (not test/, not
# bench/), with the checks in .clang-tidy, in parallel. Prints each finding
# once and exits 1 if there is any (or if a file does not compile).
#
#   scripts/tidy.sh [BUILD_DIR [FILE.cpp ...]]
#
# BUILD_DIR (default build/tidy) supplies compile_commands.json and the
# generated BPF skeleton headers; it is configured (Debug: assert()s guide the
# analyzer) and the skeletons generated if missing. A tree that scripts/test.sh
# has already configured (build/asan) can be passed to reuse both.
# FILEs restrict the run (default: all of plugin/).
#
# Environment:
#   TIDY_MODE=unity (default) | file
#     unity: one translation unit per module, a generated UnifiedSource-<module>.cpp
#       that #includes the module's .cpp files, so nlohmann/json.hpp and the
#       C++20 standard headers are parsed and walked once per module instead of
#       once per file: about 3x cheaper, same findings. clang's analyzer treats
#       .cpp files included from a file named UnifiedSource* as main-file code
#       (WebKit's scheme), so it analyzes them as in file mode. A module that
#       does not compile as one unit (two of its .cpp files define the same
#       internal name) is split and the offending files run alone: still
#       complete, a little slower; the run names them.
#     file: one translation unit per .cpp, as the compiler sees them.
#   TIDY_JOBS (default nproc), CLANG_TIDY (default clang-tidy-14, else clang-tidy).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build=${1:-build/tidy}
(($#)) && shift
mode=${TIDY_MODE:-unity}
jobs=${TIDY_JOBS:-$(nproc)}
tidy=${CLANG_TIDY:-$(command -v clang-tidy-14 || command -v clang-tidy || true)}
[[ -n $tidy ]] || { echo "tidy.sh: clang-tidy not found (apt-get install clang-tidy)" >&2; exit 2; }
[[ $mode == unity || $mode == file ]] || { echo "tidy.sh: TIDY_MODE must be unity or file" >&2; exit 2; }

if [[ ! -f $build/compile_commands.json ]]; then
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
fi
build=$(cd "$build" && pwd)
# plugin/bpf includes the bpftool skeleton (<name>.skel.h), generated at build
# time: make every skeleton target the tree defines (a few seconds, once).
targets=$(cmake --build "$build" --target help 2>&1) || { echo "$targets" >&2; exit 2; }
mapfile -t skels < <(sed -n 's/^\.\.\. \(.*_skel_gen\)$/\1/p' <<<"$targets")
if ((${#skels[@]})); then
    cmake --build "$build" --target "${skels[@]}" >/dev/null
fi

if (($#)); then
    files=()
    for f in "$@"; do files+=("$(realpath "$f")"); done
else
    mapfile -t files < <(find "$root/plugin" -name '*.cpp' | sort)
fi

work=$(mktemp -d /tmp/podfence-tidy.XXXXXX)
trap 'rm -rf "$work"' EXIT
export TIDY_ROOT=$root TIDY_BUILD=$build TIDY_WORK=$work

# plan.py writes $work/compile_commands.json for the translation units to run
# and prints them, largest first, one per line: "<tu.cpp> <member.cpp>...".
#   plan.py initial MODE FILE...   unity: one TU per module; file: one per file
#   plan.py split "TU MEMBER..." LOG
#       a unity TU that did not compile: the members that LOG's compile errors
#       name run alone and the rest together again; if none is named, all alone.
cat >"$work/plan.py" <<'PLAN'
import json, os, re, shlex, sys
root, build, work = os.environ["TIDY_ROOT"], os.environ["TIDY_BUILD"], os.environ["TIDY_WORK"]
db_path = os.path.join(work, "compile_commands.json")
orig = {os.path.realpath(os.path.join(e["directory"], e["file"])): e
        for e in json.load(open(os.path.join(build, "compile_commands.json")))}
db = json.load(open(db_path)) if os.path.exists(db_path) else []

def argv(e):
    return shlex.split(e["command"]) if "command" in e else list(e["arguments"])

def flags(e):  # the command without input and output: files with equal flags can share a TU
    out, skip = [], False
    for x in argv(e)[1:]:
        if skip:
            skip = False
        elif x in ("-o", "-c"):
            skip = True
        else:
            out.append(x)
    return e["directory"], tuple(out)

def emit(groups):
    lines = []
    for ms in groups:
        if len(ms) == 1:
            db.append(orig[ms[0]])
            tu = ms[0]
        else:
            name = re.sub(r"[^A-Za-z0-9]+", "_", os.path.relpath(os.path.dirname(ms[0]), root))
            tu = os.path.join(work, "UnifiedSource-%s-%d.cpp" % (name, len(db)))
            with open(tu, "w") as f:
                f.write("// scripts/tidy.sh: one clang-tidy translation unit for these files\n")
                f.writelines('#include "%s"\n' % m for m in ms)
            d, fl = flags(orig[ms[0]])
            db.append({"directory": d, "file": tu, "arguments": argv(orig[ms[0]])[:1] + list(fl) + ["-c", tu]})
        lines.append((sum(os.path.getsize(m) for m in ms), tu, ms))
    json.dump(db, open(db_path, "w"), indent=1)
    for _, tu, ms in sorted(lines, key=lambda l: -l[0]):
        print(tu, *ms)

if sys.argv[1] == "initial":
    mode, files = sys.argv[2], sys.argv[3:]
    missing = [f for f in files if f not in orig]
    if missing:
        sys.exit("tidy.sh: not in %s/compile_commands.json: %s" % (build, " ".join(missing)))
    if mode == "file":
        emit([[f] for f in files])
    else:
        groups = {}
        for f in files:  # a module: one directory, one set of flags (one pf_<module> library)
            groups.setdefault((os.path.dirname(f), flags(orig[f])), []).append(f)
        emit(list(groups.values()))
else:
    tu, *ms = sys.argv[2].split()
    bad = set()
    for line in open(sys.argv[3], errors="replace"):
        m = re.match(r"(/[^:]+):\d+:\d+: (?:fatal )?error: .*\[clang-diagnostic-error\]$", line.rstrip("\n"))
        if m and os.path.realpath(m.group(1)) in ms:
            bad.add(os.path.realpath(m.group(1)))
    rest = [m for m in ms if m not in bad]
    if not bad or not rest:
        emit([[m] for m in ms])
    else:
        print("tidy.sh: %s cannot share a translation unit with the rest of the module (errors above);"
              " checking it on its own" % " ".join(os.path.relpath(b, root) for b in sorted(bad)), file=sys.stderr)
        emit([[b] for b in sorted(bad)] + [rest])
PLAN

# report.py prints every finding once (a header's is reported by each TU that
# includes it), with its notes, then a one-line-per-finding summary.
cat >"$work/report.py" <<'REPORT'
import glob, os, re, sys
root, work, n, mode = os.environ["TIDY_ROOT"], os.environ["TIDY_WORK"], sys.argv[1], sys.argv[2]
head = re.compile(r"^(/[^:]+):(\d+):(\d+): ((?:fatal error|error|warning): .*)$")
chatter = re.compile(r"^\d+ (warnings?|errors?)( and \d+ errors?)? generated\.$|^Error while processing ")
blocks = {}
for log in sorted(glob.glob(os.path.join(work, "log.*"))):
    if log.endswith((".tu", ".failed")):
        continue
    cur = None
    for line in open(log, errors="replace"):
        line = line.rstrip("\n")
        if chatter.match(line):
            continue
        m = head.match(line)
        if m:
            key = (os.path.relpath(os.path.normpath(m.group(1)), root), int(m.group(2)), int(m.group(3)),
                   m.group(4))
            cur = None if key in blocks else key
            if cur:
                blocks[cur] = []
        elif cur:
            blocks[cur].append(line)
for (f, l, c, msg), notes in sorted(blocks.items()):
    print("%s:%d:%d: %s" % (f, l, c, msg))
    for x in notes:
        m = head.match(x) or re.match(r"^(/[^:]+):(\d+):(\d+): note: ", x)
        print(x.replace(m.group(1), os.path.relpath(os.path.normpath(m.group(1)), root), 1) if m else x)
if blocks:
    print("\nclang-tidy: %d finding(s) in %s file(s):" % (len(blocks), n))
    for f, l, c, msg in sorted(blocks):
        print("%s:%d:%d: %s" % (f, l, c, msg))
    sys.exit(1)
failed = glob.glob(os.path.join(work, "log.*.failed"))
if failed:
    print("clang-tidy failed without a diagnostic:")
    for x in failed:
        print(open(x[: -len(".failed")], errors="replace").read())
    sys.exit(1)
print("clang-tidy: no findings in %s file(s) (%s mode)" % (n, mode))
REPORT

# Runs the TUs listed on stdin ("<tu> <member>..."), $jobs at a time, each into
# its own log; a non-zero exit of clang-tidy (a finding, WarningsAsErrors being
# '*', or a compile error) leaves <log>.failed.
run() {
    xargs -r -P "$jobs" -L1 sh -c '
        tidy=$0 work=$1 config=$2 tu=$3
        log="$work/log.$(printf %s "$tu" | tr / _)"
        shift 2; echo "$*" >"$log.tu"
        # --config-file: a unified TU lives in $work, outside the tree.
        if ! "$tidy" -p "$work" --config-file="$config" --extra-arg=-Wfatal-errors --quiet "$tu" >"$log" 2>&1; then
            touch "$log.failed"
        fi
    ' "$tidy" "$work" "$root/.clang-tidy"
}

python3 "$work/plan.py" initial "$mode" "${files[@]}" | run
if [[ $mode == unity ]]; then
    # A unified TU that does not compile is replaced by its parts: the files its
    # compile error names run alone, the rest together again (-Wfatal-errors keeps a
    # failed attempt short; it names one file, so repeat); after 4 rounds, or if no
    # file is named, what still fails runs file by file.
    for round in 1 2 3 4 5; do
        : >"$work/next"
        for failed in "$work"/log.*UnifiedSource-*.failed; do
            [[ -e $failed ]] || continue
            log=${failed%.failed}
            grep -q '\[clang-diagnostic-error\]$' "$log" || continue
            grep -E ' error: .*\[clang-diagnostic-error\]$' "$log" | sort -u >&2 || true
            python3 "$work/plan.py" split "$(cat "$log.tu")" "$( ((round < 5)) && echo "$log" || echo /dev/null)" \
                >>"$work/next"
            rm -f "$log" "$log.tu" "$failed"
        done
        [[ -s $work/next ]] || break
        run <"$work/next"
    done
fi

python3 "$work/report.py" "${#files[@]}" "$mode"
