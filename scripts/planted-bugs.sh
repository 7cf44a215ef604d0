#!/usr/bin/env bash
# Plants, one at a time, each bug of the table in issue #17 ("Tests that catch bugs") in a
# scratch copy of HEAD and runs the tests of the crate the bug lives in: every bug must make at
# least one test fail, once with every optional input present (BPFPATCH_REQUIRE_INPUTS=1: an
# absent input fails instead of skipping) and once with the llvm-19 tools and clang hidden from
# PATH (the tests that need them report counted skips; the others must still catch the bug).
# Each crate's tests first run on the unchanged copy and must pass, so a failure is the bug's.
#
#   scripts/planted-bugs.sh            # all five bugs, both environments
#   BUGS="zext-shift disasm-jmp32" scripts/planted-bugs.sh
#
# Not run by CI (it rebuilds a crate per bug: about 10 to 20 minutes on the 2-core machine);
# the result of the last run is in doc/MUTANTS.md ("Planted bugs"). Needs ../shared beside the
# checkout and the corpus (scripts/corpus.sh) for the all-inputs run.
set -euo pipefail

ROOT=$(git rev-parse --show-toplevel)
WORK=${PLANTED_DIR:-/tmp/bpfpatch-planted}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$WORK/target}
PROFILE=${PROFILE:-mutants}
BUGS=${BUGS:-"zext-shift line-info-first linearize-reg-jump disasm-jmp32 eval-sge32"}

rm -rf "$WORK/main" "$WORK/nollvm"
mkdir -p "$WORK/main" "$WORK/nollvm"
git -C "$ROOT" archive HEAD | tar -x -C "$WORK/main"
# git archive stamps files with the commit's time; a target directory built from an earlier
# (planted) copy would look newer and be reused, so every file is stamped now.
find "$WORK/main" -type f -exec touch {} +
[ -e "$WORK/shared" ] || ln -s "$(cd "$ROOT/.." && pwd)/shared" "$WORK/shared"
export BPFPATCH_CORPUS=${BPFPATCH_CORPUS:-$ROOT/corpus/build/objects}
cd "$WORK/main"

# A PATH without llvm-*, clang* and bpftool (what a machine without llvm-19 has).
for f in /usr/bin/* /usr/local/bin/*; do
  case "$(basename "$f")" in llvm-* | clang* | bpftool) ;; *) ln -sf "$f" "$WORK/nollvm/" ;; esac
done
NOLLVM_PATH="$HOME/.cargo/bin:$WORK/nollvm"

# bug -> crate, file, the exact text replaced, and its replacement.
plant() {
  python3 - "$@" <<'EOF'
import sys
bug = sys.argv[1]
bugs = {
  # zext forgets 32-bit shifts.
  "zext-shift": ("crates/passes/src/pass/zext/mod.rs",
    "        if matches!(item.op, Op::Zext { .. }) || def32_reg(&item.op).is_none() {",
    "        if matches!(item.op, Op::Alu { op: bpfpatch_insn::AluOp::Lsh | bpfpatch_insn::AluOp::Rsh"
    " | bpfpatch_insn::AluOp::Arsh, .. }) { continue; }\n"
    "        if matches!(item.op, Op::Zext { .. }) || def32_reg(&item.op).is_none() {"),
  # Collapsed line_info keeps the first record instead of the last.
  "line-info-first": ("crates/patch/src/tables.rs",
    "            if let Some((j, t)) = pending.replace((i, s))\n                && t != s\n            {\n                keep(j, Slot(t as usize));\n            }",
    "            match pending { Some((_, t)) if t == s => continue, Some((j, t)) => keep(j, Slot(t as usize)), None => {} }\n"
    "            pending = Some((i, s));"),
  # Off by one on register-source forward conditional jumps in the list's linearization.
  "linearize-reg-jump": ("crates/patch/src/linearize.rs",
    "            let delta = i64::from(t) - i64::from(at) - 1;",
    "            let delta = i64::from(t) - i64::from(at) - 1\n"
    "                + i64::from(insn.is_cond_jump() && insn.code & 0x08 != 0 && t > at);"),
  # 32-bit jump immediates printed unsigned.
  "disasm-jmp32": ("crates/asm/src/disasm.rs",
    "                Operand::Imm(i) => write!(f, \"{}\", Hex(i.into()))?,",
    "                Operand::Imm(i) if width == Width::W32 => write!(f, \"{}\", Hex(i64::from(i.cast_unsigned())))?,\n"
    "                Operand::Imm(i) => write!(f, \"{}\", Hex(i.into()))?,"),
  # 32-bit signed >= evaluated unsigned.
  "eval-sge32": ("crates/insn/src/eval.rs",
    "pub fn cond32(cond: Cond, a: u32, b: u32) -> bool {\n",
    "pub fn cond32(cond: Cond, a: u32, b: u32) -> bool {\n    if cond == Cond::Sge {\n        return a >= b;\n    }\n"),
}
path, old, new = bugs[bug]
s = open(path).read()
if s.count(old) != 1:
    sys.exit(f"{bug}: the text to replace is not in {path} exactly once; update scripts/planted-bugs.sh")
open(path, "w").write(s.replace(old, new))
print(path)
EOF
}

crate_of() {
  case "$1" in
    zext-shift) echo bpfpatch-passes ;;
    line-info-first | linearize-reg-jump) echo bpfpatch-patch ;;
    disasm-jmp32) echo bpfpatch-asm ;;
    eval-sge32) echo bpfpatch-insn ;;
    *) echo "unknown bug $1" >&2; exit 2 ;;
  esac
}

# run_tests CRATE ENV LOG: the crate's tests in one environment; returns cargo test's status.
run_tests() {
  local crate=$1 env=$2 log=$3
  if [ "$env" = all ]; then
    BPFPATCH_REQUIRE_INPUTS=1 cargo test --profile "$PROFILE" -p "$crate" --no-fail-fast >"$log" 2>&1
  else
    PATH=$NOLLVM_PATH cargo test --profile "$PROFILE" -p "$crate" --no-fail-fast >"$log" 2>&1
  fi
}

summary() { # failed tests and the skip count of a log
  local failed skipped
  failed=$(grep -E '^test .* FAILED$' "$1" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | sort -u | paste -sd, - || true)
  skipped=$(grep -c 'SKIPPED' "$1" || true)
  echo "failed: ${failed:-none}; SKIPPED lines: $skipped"
}

declare -A baseline_done
status=0
printf '| bug | crate | environment | result |\n|---|---|---|---|\n' >"$WORK/result.md"
for bug in $BUGS; do
  crate=$(crate_of "$bug")
  for env in all nollvm; do
    if [ -z "${baseline_done[$crate-$env]:-}" ]; then
      if ! run_tests "$crate" "$env" "$WORK/base-$crate-$env.log"; then
        echo "baseline: $crate fails its tests unchanged ($env): $(summary "$WORK/base-$crate-$env.log")" >&2
        exit 1
      fi
      baseline_done[$crate-$env]=1
    fi
    file=$(plant "$bug")
    if run_tests "$crate" "$env" "$WORK/$bug-$env.log"; then
      result="**not caught**"
      status=1
    elif grep -qE '^error: could not compile' "$WORK/$bug-$env.log"; then
      echo "$bug: the planted code does not compile; see $WORK/$bug-$env.log" >&2
      exit 1
    else
      result="caught: $(summary "$WORK/$bug-$env.log")"
    fi
    git -C "$ROOT" show "HEAD:$file" >"$file"
    echo "| $bug | $crate | $env | $result |" | tee -a "$WORK/result.md"
  done
done
echo "table: $WORK/result.md"
exit $status
