#!/bin/sh
# Regenerates the committed test objects from prog.c and calls.c (little- and big-endian).
set -eu
cd "$(dirname "$0")"
for src in prog calls; do
	for t in el:bpf eb:bpfeb; do
		clang-19 -O2 -g -target "${t#*:}" -mcpu=v3 -I/usr/include/x86_64-linux-gnu -c "$src.c" -o "$src-${t%%:*}.o"
	done
done
