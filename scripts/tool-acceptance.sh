#!/usr/bin/env bash
# Runs the toolchain over every object (*.o, *.elf) under DIR and prints, per tool,
# "TOOL: N passed, M failed" (and the failures):
#   llvm-objdump-19 -d -r, llvm-readelf-19 -a (no warnings), bpftool btf dump file (objects with
#   .BTF), libbpf's open via `bpftool gen skeleton` (little-endian objects only: libbpf reads the
#   host's byte order).
# With --baseline ORIG_DIR, an object whose same-named original (paths relative to the two
# directories) also fails a tool is counted as "failed in the original too" instead of failed.
# Usage: scripts/tool-acceptance.sh DIR [--baseline ORIG_DIR]
set -uo pipefail

DIR=${1:?usage: $0 DIR [--baseline ORIG_DIR]}
BASE=
[[ ${2:-} == --baseline ]] && BASE=${3:?--baseline needs a directory}
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT

mapfile -t FILES < <(find "$DIR" -type f \( -name '*.o' -o -name '*.elf' \) | sort)
is_le() { [[ $(od -An -tx1 -j5 -N1 "$1" | tr -d ' ') == 01 ]]; }
has_btf() { grep -q ' \.BTF ' <(llvm-readelf-19 -S "$1" 2>/dev/null); }

# run NAME APPLIES_FN CMD...: CMD gets the object path appended.
run() {
    local name=$1 applies=$2 pass=0 fail=0 skip=0 base_fail=0 f
    shift 2
    for f in "${FILES[@]}"; do
        if ! $applies "$f"; then skip=$((skip + 1)); continue; fi
        if "$@" "$f" >/dev/null 2>"$ERR" && ! grep -qi 'warning' "$ERR"; then
            pass=$((pass + 1))
        else
            local orig=${BASE:+$BASE/${f#"$DIR"/}}
            if [[ -n $orig && -e $orig ]] && ! { "$@" "$orig" >/dev/null 2>"$ERR.o" && ! grep -qi warning "$ERR.o"; }; then
                base_fail=$((base_fail + 1))
            else
                fail=$((fail + 1))
                echo "  $name FAILED on $f: $(head -c 300 "$ERR" | tr '\n' ' ')"
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
