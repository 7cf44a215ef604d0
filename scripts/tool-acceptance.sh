#!/usr/bin/env bash
# Runs the toolchain over every object (*.o, *.elf) under DIR and prints, per tool,
# "TOOL: N passed, M failed" (and the failures):
#   llvm-objdump-19 -d -r, llvm-readelf-19 -a (no warnings), bpftool btf dump file (objects with
#   .BTF), libbpf's open via `bpftool gen skeleton` (little-endian objects only: libbpf reads the
#   host's byte order), and `bpfpatch check` (when a bpfpatch binary is found).
# With --baseline ORIG_DIR, an object whose same-named original (paths relative to the two
# directories) also fails a tool with the same messages (file names aside) is counted as
# "failed in the original too" instead of failed; a different failure still counts as failed.
#
# With --rewrite PASSES, first rewrites every object of SRC_DIR into OUT_DIR (same relative
# paths) with `bpfpatch rewrite --passes PASSES` (plus --blind), counting
# "bpfpatch rewrite: N passed, M failed" over the objects with an executable section (an object
# without one has no program: its successful rewrite is counted as not applicable, a failed one
# as failed),
# then runs the tools on OUT_DIR with SRC_DIR as the baseline. With `--passes none` it also
# counts outputs identical to their input ("identity: ...").
#
# Usage: scripts/tool-acceptance.sh DIR [--baseline ORIG_DIR]
#        scripts/tool-acceptance.sh --rewrite PASSES [--blind] SRC_DIR OUT_DIR
# CHECK_INTERNAL=1 runs `bpfpatch check --internal` (kernel-internal forms that passes emit).
# The bpfpatch binary: $BPFPATCH, else `bpfpatch` on PATH, else target/{release,debug}/bpfpatch
# (or $CARGO_TARGET_DIR/...) of this repository.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
find_bpfpatch() {
    if [[ -n ${BPFPATCH:-} ]]; then echo "$BPFPATCH"; return; fi
    if command -v bpfpatch >/dev/null; then command -v bpfpatch; return; fi
    local t
    for t in "${CARGO_TARGET_DIR:-$ROOT/target}"/{release,debug}/bpfpatch; do
        [[ -x $t ]] && { echo "$t"; return; }
    done
}
BPFPATCH_BIN=$(find_bpfpatch)

PASSES= BLIND=
if [[ ${1:-} == --rewrite ]]; then
    PASSES=${2:?--rewrite needs a pass list}
    shift 2
    [[ ${1:-} == --blind ]] && { BLIND=--blind; shift; }
    SRC=${1:?usage: $0 --rewrite PASSES [--blind] SRC_DIR OUT_DIR}
    DIR=${2:?usage: $0 --rewrite PASSES [--blind] SRC_DIR OUT_DIR}
    BASE=$SRC
    [[ -n $BPFPATCH_BIN ]] || { echo "no bpfpatch binary: set BPFPATCH or build it" >&2; exit 2; }
else
    DIR=${1:?usage: $0 DIR [--baseline ORIG_DIR] | --rewrite PASSES [--blind] SRC_DIR OUT_DIR}
    BASE=
    [[ ${2:-} == --baseline ]] && BASE=${3:?--baseline needs a directory}
fi
ERR=$(mktemp)
trap 'rm -f "$ERR" "$ERR.o"' EXIT

is_le() { [[ $(od -An -tx1 -j5 -N1 "$1" | tr -d ' ') == 01 ]]; }
has_btf() { grep -q ' \.BTF ' <(llvm-readelf-19 -S "$1" 2>/dev/null); }
# Not `llvm-readelf | grep -q`: under pipefail, grep's early exit makes llvm-readelf die of
# SIGPIPE and the pipeline fail although the flag was found.
has_code() { grep -q ' AX ' < <(llvm-readelf-19 -S "$1" 2>/dev/null); }

# The kernel's own passes (and blinding) make the xlated form: they need --xlated, and `all`
# then means the kernel's pipeline (dce,fixups,zext,rnd-hi32) rather than the loadable one (dce).
XLATED=
if [[ -n $BLIND || ,$PASSES, =~ ,(ctx|fixups|zext|rnd-hi32|blind|all), ]]; then XLATED=--xlated; fi

if [[ -n $PASSES ]]; then
    mapfile -t SOURCES < <(find "$SRC" -type f \( -name '*.o' -o -name '*.elf' \) | sort)
    pass=0 fail=0 nocode=0 same=0 differ=0
    for s in "${SOURCES[@]}"; do
        rel=${s#"$SRC"/}
        out=$DIR/$rel
        mkdir -p "$(dirname "$out")"
        rm -f "$out"
        note=
        has_code "$s" || note=" (no executable section)"
        if "$BPFPATCH_BIN" rewrite "$s" -o "$out" --passes "$PASSES" $BLIND $XLATED >/dev/null 2>"$ERR"; then
            if [[ -z $note ]]; then pass=$((pass + 1)); else nocode=$((nocode + 1)); fi
            if [[ $PASSES == none && -z $BLIND ]]; then
                if cmp -s "$s" "$out"; then same=$((same + 1)); else differ=$((differ + 1)); echo "  identity FAILED on $rel"; fi
            fi
        else
            fail=$((fail + 1))
            echo "  bpfpatch rewrite FAILED on $rel$note: $(head -c 300 "$ERR" | tr '\n' ' ')"
        fi
    done
    echo "bpfpatch rewrite --passes $PASSES${BLIND:+ --blind}${XLATED:+ --xlated}: $pass passed, $fail failed (not applicable, no executable section: $nocode)"
    [[ $PASSES == none && -z $BLIND ]] && echo "identity (output == input, byte for byte): $same passed, $differ failed"
fi

mapfile -t FILES < <(find "$DIR" -type f \( -name '*.o' -o -name '*.elf' \) | sort)

# run NAME APPLIES_FN CMD...: CMD gets the object path appended.
run() {
    local name=$1 applies=$2 pass=0 fail=0 skip=0 base_fail=0 f
    shift 2
    for f in "${FILES[@]}"; do
        if ! $applies "$f"; then skip=$((skip + 1)); continue; fi
        if "$@" "$f" >/dev/null 2>"$ERR" && ! grep -qi 'warning' "$ERR"; then
            pass=$((pass + 1))
        else
            local orig=${BASE:+$BASE/${f#"$DIR"/}} same= note=
            if [[ -n $orig && -e $orig ]] && ! { "$@" "$orig" >/dev/null 2>"$ERR.o" && ! grep -qi warning "$ERR.o"; }; then
                # The same failure (messages equal, file names aside) or a different one.
                local got want
                got=$(<"$ERR") want=$(<"$ERR.o")
                if [[ ${got//"$f"/FILE} == "${want//"$orig"/FILE}" ]]; then
                    same=1
                else
                    note=" (the original fails differently: $(head -c 200 "$ERR.o" | tr '\n' ' '))"
                fi
            fi
            if [[ -n $same ]]; then
                base_fail=$((base_fail + 1))
            else
                fail=$((fail + 1))
                echo "  $name FAILED on $f: $(head -c 300 "$ERR" | tr '\n' ' ')$note"
            fi
            rm -f "$ERR.o"
        fi
    done
    echo "$name: $pass passed, $fail failed (not applicable: $skip${BASE:+, failed in the original too: $base_fail})"
}

always() { true; }
le_btf() { is_le "$1" && has_btf "$1"; }
run llvm-objdump-19 always llvm-objdump-19 -d -r
run llvm-readelf-19 always llvm-readelf-19 -a
run "bpftool btf dump" le_btf bpftool btf dump file
run "libbpf open (bpftool gen skeleton)" is_le bpftool gen skeleton
if [[ -n $BPFPATCH_BIN ]]; then
    run "bpfpatch check${CHECK_INTERNAL:+ --internal}" always "$BPFPATCH_BIN" check ${CHECK_INTERNAL:+--internal}
fi
