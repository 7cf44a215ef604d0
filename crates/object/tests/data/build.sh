#!/bin/sh
# Regenerates the committed test objects from prog.c, calls.c and notype.s (little- and big-endian).
set -eu
cd "$(dirname "$0")"
for src in prog calls; do
	for t in el:bpf eb:bpfeb; do
		clang-19 -O2 -g -target "${t#*:}" -mcpu=v3 -I/usr/include/x86_64-linux-gnu -c "$src.c" -o "$src-${t%%:*}.o"
	done
done
# Hand-written assembly: untyped function symbols as clang before 10 emits them.
for t in el eb; do
	llvm-mc-19 -triple "bpf$t" -filetype=obj notype.s -o "notype-$t.o"
done
