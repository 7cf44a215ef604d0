#!/usr/bin/env bash
# Builds the corpus of real BPF objects used by bpfpatch's corpus tests and benchmarks.
#
# Sources (Debian bookworm packages only, fetched with `apt-get download`, never installed):
#   linux-source-6.1               tools/testing/selftests/bpf/progs/*.c, compiled with clang-19
#                                  for bpf (little-endian) and bpfeb (big-endian); the programs
#                                  that need vmlinux.h do not compile and are skipped (recorded).
#   libbpf-dev, linux-libc-dev     headers for those compiles (bpf_helpers.h, linux/*.h, asm/*.h);
#                                  the C library's come from the system's libc6-dev
#   libxdp1                        libxdp's shipped objects (/usr/lib/x86_64-linux-gnu/bpf/*.o)
#   golang-github-cilium-ebpf-dev  cilium/ebpf's little- and big-endian test objects (*.elf)
#
# Output: corpus/build/objects/{selftests,selftests-eb,libxdp,cilium}/ (the tests read this),
# downloads and extracted sources in corpus/build/cache/. Both are under the gitignored
# corpus/build. Incremental: a download, extraction or object that is up to date is skipped; a
# source that failed to compile is not retried until it changes.
#
# Environment: CORPUS_DIR (default <repo>/corpus/build), JOBS (default nproc), CLANG (clang-19).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${CORPUS_DIR:-$ROOT/corpus/build}
CACHE=$BUILD/cache
OBJ=$BUILD/objects
JOBS=${JOBS:-$(nproc)}
CLANG=${CLANG:-clang-19}
START=$(date +%s)

log() { printf '[corpus] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$CLANG" >/dev/null || die "$CLANG not found (apt-get install clang-19)"
command -v apt-get >/dev/null || die "apt-get not found (Debian packages are the only source)"
# The C library headers (stdint.h, bits/*) come from the system's libc6-dev, which any machine
# with a C toolchain (needed by cargo to link) has.
[[ -e /usr/include/x86_64-linux-gnu/bits/wordsize.h ]] || die "libc6-dev headers missing (apt-get install libc6-dev)"
mkdir -p "$CACHE/debs" "$CACHE/root" "$OBJ"

# fetch PKG: downloads the package's .deb into the cache once and extracts it into $CACHE/root.
fetch() {
    local pkg=$1 deb
    deb=$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
    if [[ -z $deb ]]; then
        log "downloading $pkg"
        if ! (cd "$CACHE/debs" && apt-get download "$pkg" >/dev/null 2>&1); then
            log "apt-get download $pkg failed; running apt-get update and retrying"
            apt-get update >/dev/null 2>&1 || die "apt-get update failed (needs root or sudo)"
            (cd "$CACHE/debs" && apt-get download "$pkg" >/dev/null 2>&1) || die "cannot download $pkg"
        fi
        deb=$(ls "$CACHE/debs/${pkg}"_*.deb | head -n1)
    fi
    local stamp=$CACHE/root/.${pkg}.extracted
    if [[ ! -e $stamp || $deb -nt $stamp ]]; then
        log "extracting $(basename "$deb")"
        dpkg-deb -x "$deb" "$CACHE/root"
        touch "$stamp"
    fi
}

for p in linux-source-6.1 libbpf-dev linux-libc-dev libxdp1 golang-github-cilium-ebpf-dev; do
    fetch "$p"
done

# Kernel sources: only what the selftests' BPF programs need.
KSRC=$CACHE/linux-source-6.1
TARBALL=$CACHE/root/usr/src/linux-source-6.1.tar.xz
if [[ ! -e $KSRC/.extracted || $TARBALL -nt $KSRC/.extracted ]]; then
    log "extracting selftests from $(basename "$TARBALL")"
    rm -rf "$KSRC"
    tar -xJf "$TARBALL" -C "$CACHE" \
        'linux-source-6.1/tools/testing/selftests/bpf' 'linux-source-6.1/tools/include' \
        'linux-source-6.1/tools/lib' 'linux-source-6.1/tools/arch'
    touch "$KSRC/.extracted"
fi
SELF=$KSRC/tools/testing/selftests/bpf
INC=$CACHE/root/usr/include

# compile TARGET OUTDIR: compiles every selftests program for TARGET (bpf or bpfeb) into OUTDIR.
compile() {
    local target=$1 out=$2
    mkdir -p "$out/.failed"
    export CLANG SELF KSRC INC target out
    # shellcheck disable=SC2016
    find "$SELF/progs" -maxdepth 1 -name '*.c' -print0 | sort -z | xargs -0 -P "$JOBS" -n 1 bash -c '
        src=$1; name=$(basename "$src" .c); o=$out/$name.o; f=$out/.failed/$name
        [[ -e $o && $o -nt $src ]] && exit 0
        [[ -e $f && $f -nt $src ]] && exit 0
        if "$CLANG" -O2 -g -target "$target" -mcpu=v3 -D__TARGET_ARCH_x86 \
            -I"$SELF" -I"$SELF/progs" -I"$KSRC/tools/include/uapi" -I"$INC" -I"$INC/x86_64-linux-gnu" \
            -I/usr/include/x86_64-linux-gnu \
            -Wno-compare-distinct-pointer-types -w -c "$src" -o "$o.tmp" 2>"$f.log"; then
            mv "$o.tmp" "$o"; rm -f "$f" "$f.log"
        else
            rm -f "$o.tmp"; touch "$f"
        fi
    ' _
}

log "compiling selftests progs (little-endian, $JOBS jobs)"
compile bpf "$OBJ/selftests"
log "compiling selftests progs (big-endian)"
compile bpfeb "$OBJ/selftests-eb"

log "copying libxdp objects"
mkdir -p "$OBJ/libxdp"
for f in "$CACHE"/root/usr/lib/x86_64-linux-gnu/bpf/*.o; do
    [[ -e $OBJ/libxdp/$(basename "$f") ]] || cp "$f" "$OBJ/libxdp/"
done

log "copying cilium/ebpf test objects"
mkdir -p "$OBJ/cilium"
CIL=$CACHE/root/usr/share/gocode/src/github.com/cilium/ebpf
# Regular files only: the package's symlinks (loader-el.elf -> loader-clang-14-el.elf) are duplicates.
find "$CIL" -name '*.elf' -type f -print0 | while IFS= read -r -d '' f; do
    rel=${f#"$CIL"/}
    dst=$OBJ/cilium/${rel//\//__}
    [[ -e $dst ]] || cp "$f" "$dst"
done

count() { find "$1" -maxdepth 1 -type f \( -name '*.o' -o -name '*.elf' \) | wc -l; }
failed() { find "$1/.failed" -maxdepth 1 -type f ! -name '*.log' | wc -l; }
TOTAL=$(find "$OBJ" -type f \( -name '*.o' -o -name '*.elf' \) | wc -l)
log "selftests:    $(count "$OBJ/selftests") objects ($(failed "$OBJ/selftests") sources do not compile without vmlinux.h)"
log "selftests-eb: $(count "$OBJ/selftests-eb") objects ($(failed "$OBJ/selftests-eb") do not compile)"
log "libxdp:       $(count "$OBJ/libxdp") objects"
log "cilium:       $(count "$OBJ/cilium") objects"
log "total:        $TOTAL objects, $(du -sh "$OBJ" | cut -f1), in $(( $(date +%s) - START ))s"
