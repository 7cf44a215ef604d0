#!/bin/sh
# Regenerates the committed test objects from prog.c, calls.c, dwarf.c, notype.s, ldabs.s and edges.s (little- and big-endian).
set -eu
cd "$(dirname "$0")"
for src in prog calls dwarf; do
	for t in el:bpf eb:bpfeb; do
		clang-19 -O2 -g -target "${t#*:}" -mcpu=v3 -I/usr/include/x86_64-linux-gnu -c "$src.c" -o "$src-${t%%:*}.o"
	done
done
# Hand-written assembly: untyped function symbols as clang before 10 emits them (notype.s);
# LD_ABS/LD_IND with a bpf-to-bpf call next to an empty .text (ldabs.s); relocation shapes
# clang does not emit from C (edges.s).
for src in notype ldabs edges; do
	for t in el eb; do
		llvm-mc-19 -triple "bpf$t" -filetype=obj "$src.s" -o "$src-$t.o"
	done
done
