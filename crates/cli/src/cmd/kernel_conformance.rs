//! `bpfpatch conformance --kernel`: the conformance vectors judged by the running kernel, the
//! way bpf_conformance's libbpf plugin runs them.
//!
//! - A vector with `-- mem` is loaded as XDP behind a prolog that turns the context into what
//!   the vectors expect: r1 = the packet's start (the memory, given as the test-run packet,
//!   padded with zeros to the 14 bytes the kernel needs), r2 = the memory's length. The prolog
//!   also proves to the verifier that `[r1, r1 + len)` is inside the packet, so the vector's
//!   loads and stores are checked against the packet's bounds. The others load as
//!   SOCKET_FILTER (r1 = the skb context, r2 unset, as in the plugin).
//! - `BPF_PROG_TEST_RUN` returns 32 bits, so each vector is loaded twice: as it is (the low
//!   half of r0) and as a subprogram of `call; r0 >>= 32; exit` (the high half).
//! - A vector passes when the kernel's r0 equals its `-- result`, or when the kernel rejects a
//!   vector whose section is `-- error`; a vector in a folder named `negative` passes when it
//!   is rejected or returns something else.
//!
//! `--xlated-compare` reads back the kernel's xlated image of each accepted vector without
//! memory and compares it with our own `--passes kernel` (kernel-dce,fixups,cmpxchg-zext) rewrite of the same program,
//! ignoring the fields that hold kernel addresses: helper calls' `imm` and map references'
//! `imm` (bpf-to-bpf calls are compared by their PC-relative offset, which the kernel's dump
//! keeps in `off`).

use crate::passes_args::{PassArgs, hook};
use anyhow::{Context, Result, bail};
use bpfpatch_asm::parse_data_file;
use bpfpatch_insn::Insn;
use bpfpatch_kernel::xlated::comparable;
use bpfpatch_kernel::{KernelError, LoadOptions, ProgType, available, load};
use bpfpatch_passes::{Options, Pipeline, transform as run_passes};
use bpfpatch_vm::Summary;
use bpfpatch_vm::conformance::{Transform, collect_files, is_negative};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_ADD_K: u8 = 0x07;
const ALU64_RSH_K: u8 = 0x77;
const LDX_W: u8 = 0x61;
const JGT_X: u8 = 0x2d;
const JA: u8 = 0x05;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
const PSEUDO_CALL: u8 = 1;

/// The XDP prolog for a memory of `len` bytes: r1 = data, r2 = len, r0 = 0, after a bounds
/// check against data_end (which never fails at run time: the packet is at least `len` long).
fn xdp_prolog(len: i32) -> Vec<Insn> {
    vec![
        Insn::new(LDX_W, 2, 1, 4, 0),         // r2 = xdp_md->data_end
        Insn::new(LDX_W, 1, 1, 0, 0),         // r1 = xdp_md->data
        Insn::new(ALU64_MOV_X, 0, 1, 0, 0),   // r0 = r1
        Insn::new(ALU64_ADD_K, 0, 0, 0, len), // r0 += len
        Insn::new(JGT_X, 0, 2, 3, 0),         // if r0 > r2 goto out
        Insn::new(ALU64_MOV_K, 2, 0, 0, len), // r2 = len
        Insn::new(ALU64_MOV_K, 0, 0, 0, 0),   // r0 = 0
        Insn::new(JA, 0, 0, 2, 0),            // goto body
        Insn::new(ALU64_MOV_K, 0, 0, 0, 0),   // out: r0 = 0
        Insn::new(EXIT, 0, 0, 0, 0),          //      exit
    ]
}

/// `call body; r0 >>= 32; exit`, followed by the body as a subprogram.
fn high_half_wrapper() -> [Insn; 3] {
    [Insn::new(CALL, 0, PSEUDO_CALL, 0, 2), Insn::new(ALU64_RSH_K, 0, 0, 0, 32), Insn::new(EXIT, 0, 0, 0, 0)]
}

/// What the kernel did with one vector.
enum Observed {
    /// r0, both halves.
    Returned(u64),
    /// The verifier rejected a variant: which, and its first error line.
    Rejected(String),
    /// The file does not parse or assemble (a rejection, but not the kernel's).
    Unparsable(String),
    /// Anything else (transform error, test-run failure): not a judgement.
    Broken(String),
}

struct Vector {
    body: Vec<Insn>,
    mem: Vec<u8>,
}

fn read_vector(path: &Path, transform: Option<Transform<'_>>) -> Result<Vector, Observed> {
    let text = std::fs::read_to_string(path).map_err(|e| Observed::Broken(format!("cannot read: {e}")))?;
    let df = parse_data_file(&text).map_err(|e| Observed::Unparsable(format!("rejected by the parser: {e}")))?;
    let mut body = df.program().map_err(|e| Observed::Unparsable(format!("rejected by the parser: {e}")))?;
    if let Some(t) = transform {
        body = t(&body).map_err(|e| Observed::Broken(format!("transform failed: {e}")))?;
    }
    Ok(Vector { body, mem: df.mem })
}

/// Loads and runs both variants of one vector.
fn run_vector(v: &Vector, name: &str) -> Result<(Observed, Option<bpfpatch_kernel::Loaded>), KernelError> {
    let (prog_type, prolog, packet) = if v.mem.is_empty() {
        (ProgType::SocketFilter, Vec::new(), vec![0u8; 64])
    } else {
        let Ok(len) = i32::try_from(v.mem.len()) else {
            return Ok((Observed::Broken(format!("memory of {} bytes", v.mem.len())), None));
        };
        let mut packet = v.mem.clone();
        packet.resize(packet.len().max(14), 0);
        (ProgType::Xdp, xdp_prolog(len), packet)
    };
    let opts = LoadOptions::default().with_name(name);
    let low_prog: Vec<Insn> = prolog.iter().chain(&v.body).copied().collect();
    let high_prog: Vec<Insn> = prolog.iter().chain(&high_half_wrapper()).chain(&v.body).copied().collect();
    let reject = |variant: &str, e: KernelError| -> Result<Observed, KernelError> {
        match e {
            KernelError::Rejected { error_line, errno, .. } => {
                Ok(Observed::Rejected(format!("{variant}rejected by the kernel ({errno}): {error_line}")))
            }
            e if e.is_not_permitted() => Err(e),
            e => Ok(Observed::Broken(format!("{variant}{e}"))),
        }
    };
    let low = match load(prog_type, &low_prog, &opts) {
        Ok(l) => l,
        Err(e) => return Ok((reject("", e)?, None)),
    };
    let lo = match low.test_run(&packet) {
        Ok(r) => r,
        Err(e) => return Ok((Observed::Broken(e.to_string()), None)),
    };
    let high = match load(prog_type, &high_prog, &opts) {
        Ok(h) => h,
        Err(e) => return Ok((reject("its r0 >> 32 variant: ", e)?, Some(low))),
    };
    let observed = match high.test_run(&packet) {
        Ok(hi) => Observed::Returned(u64::from(hi) << 32 | u64::from(lo)),
        Err(e) => Observed::Broken(format!("its r0 >> 32 variant: {e}")),
    };
    Ok((observed, Some(low)))
}

fn judge(negative: bool, expected_result: Option<u64>, expects_error: bool, observed: &Observed) -> Result<(), String> {
    match observed {
        Observed::Broken(why) => Err(why.clone()),
        Observed::Rejected(_) | Observed::Unparsable(_) if negative || expects_error => Ok(()),
        Observed::Rejected(why) | Observed::Unparsable(why) => Err(why.clone()),
        Observed::Returned(r0) => match (negative, expects_error, expected_result) {
            (_, true, _) => Err(format!("expected rejection, but the program returned {r0:#x}")),
            (false, false, Some(want)) if *r0 == want => Ok(()),
            (false, false, Some(want)) => Err(format!("expected r0 = {want:#x}, got {r0:#x}")),
            (true, false, Some(want)) if *r0 != want => Ok(()),
            (true, false, Some(_)) => Err(format!("negative vector returned its `-- result` {r0:#x}")),
            (_, false, None) => Err(format!("no `-- result` or `-- error` to check against (returned {r0:#x})")),
        },
    }
}

fn host_endian() -> bpfpatch_insn::Endian {
    if cfg!(target_endian = "big") { bpfpatch_insn::Endian::Big } else { bpfpatch_insn::Endian::Little }
}

/// The first difference of two images, as text.
fn first_difference(kernel: &[Insn], ours: &[Insn]) -> String {
    let at = kernel.iter().zip(ours).position(|(a, b)| a != b).unwrap_or(kernel.len().min(ours.len()));
    let show = |s: Option<&Insn>| s.map_or_else(|| "(end)".to_string(), |i| format!("{i:?}"));
    format!(
        "{} kernel slots vs {} ours; slot {at}: kernel {} vs ours {}",
        kernel.len(),
        ours.len(),
        show(kernel.get(at)),
        show(ours.get(at))
    )
}

/// The kernel runner's own flags.
#[derive(Debug, Default)]
pub struct KernelOptions {
    /// Compare the xlated images with our `--passes kernel` (kernel-dce,fixups,cmpxchg-zext).
    pub xlated_compare: bool,
    /// Write each accepted vector's xlated image here.
    pub dump_xlated: Option<PathBuf>,
    /// Print JSON.
    pub json: bool,
}

/// Runs `paths` on the kernel.
pub fn main(paths: &[PathBuf], passes: &PassArgs, kopts: &KernelOptions) -> Result<ExitCode> {
    let (xlated_compare, json) = (kopts.xlated_compare, kopts.json);
    if let Some(dir) = &kopts.dump_xlated {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if let Err(reason) = available() {
        bail!("conformance --kernel: {reason}");
    }
    // What the kernel loads must be loadable: `all` is the loadable pipeline, and the kernel's
    // own passes are a usage error.
    let pipeline = passes.pipeline_for(bpfpatch_passes::OutputKind::Loadable)?;
    let pass_opts = passes.options()?;
    let hooked = pipeline.as_ref().map(|p| hook(p, &pass_opts));
    let transform: Option<Transform<'_>> = hooked.as_ref().map(|h| h as Transform<'_>);
    let ours_pipeline = Pipeline::kernel();
    let ours_opts = Options { may_goto: pass_opts.may_goto, ..Options::default() };

    let mut out = std::io::stdout().lock();
    let mut summary = Summary::default();
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let (mut equal, mut differ, mut compared_errors) = (0usize, Vec::new(), Vec::new());
    let mut files_json = Vec::new();
    for path in collect_files(paths) {
        let negative = is_negative(&path);
        let (expected_result, expects_error) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse_data_file(&t).ok())
            .map_or((None, false), |df| (df.result, df.error.is_some()));
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (observed, low, vector) = match read_vector(&path, transform) {
            Err(o) => (o, None, None),
            Ok(v) => {
                let (o, low) = run_vector(&v, &name)?;
                (o, low, Some(v))
            }
        };
        let verdict = judge(negative, expected_result, expects_error, &observed);
        match &observed {
            Observed::Returned(_) => accepted += 1,
            Observed::Rejected(_) => rejected += 1,
            Observed::Broken(_) | Observed::Unparsable(_) => {}
        }
        match (&verdict, &observed) {
            (Ok(()), Observed::Rejected(why)) if !json => {
                writeln!(out, "REJECT {} (expected): {why}", path.display()).map_err(crate::out::stdout_error)?
            }
            (Err(why), _) if !json => {
                writeln!(out, "FAIL {}: {why}", path.display()).map_err(crate::out::stdout_error)?
            }
            _ => {}
        }
        if verdict.is_ok() {
            summary.passed += 1;
        } else {
            summary.failed += 1;
        }
        if let (Some(dir), Some(low)) = (&kopts.dump_xlated, &low) {
            let image = low.xlated()?;
            let file = dir.join(format!("{name}.xlated"));
            std::fs::write(&file, bpfpatch_insn::slots_to_bytes(&image, host_endian()))
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        if xlated_compare
            && let (Some(low), Some(v)) = (&low, &vector)
            && v.mem.is_empty()
        {
            match (low.xlated(), run_passes(&v.body, &ours_pipeline, &ours_opts)) {
                (Ok(kernel), Ok(ours)) => {
                    let (k, o) = (comparable(&kernel, true), comparable(&ours, false));
                    if k == o {
                        equal += 1;
                    } else {
                        differ.push((path.clone(), first_difference(&k, &o)));
                    }
                }
                (Err(e), _) => compared_errors.push((path.clone(), format!("xlated: {e}"))),
                (_, Err(e)) => compared_errors.push((path.clone(), format!("our kernel-dce,fixups,cmpxchg-zext: {e}"))),
            }
        }
        if json {
            files_json.push(serde_json::json!({
                "file": path,
                "passed": verdict.is_ok(),
                "negative": negative,
                "observed": match &observed {
                    Observed::Returned(r0) => format!("{r0:#x}"),
                    Observed::Rejected(w) | Observed::Broken(w) | Observed::Unparsable(w) => w.clone(),
                },
                "rejected": matches!(observed, Observed::Rejected(_)),
                "status": verdict.err().unwrap_or_else(|| "PASS".into()),
            }));
        }
    }
    if json {
        let mut report = serde_json::json!({
            "kernel": true,
            "accepted": accepted,
            "rejected": rejected,
            "passed": summary.passed,
            "failed": summary.failed,
            "files": files_json,
        });
        if xlated_compare {
            report["xlated_compare"] = serde_json::json!({
                "equal": equal,
                "differ": differ.iter().map(|(p, d)| serde_json::json!({"file": p, "difference": d})).collect::<Vec<_>>(),
                "errors": compared_errors.iter().map(|(p, d)| serde_json::json!({"file": p, "error": d})).collect::<Vec<_>>(),
            });
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?).map_err(crate::out::stdout_error)?;
    } else {
        if xlated_compare {
            for (p, d) in &differ {
                writeln!(out, "XLATED-DIFF {}: {d}", p.display()).map_err(crate::out::stdout_error)?;
            }
            for (p, d) in &compared_errors {
                writeln!(out, "XLATED-ERROR {}: {d}", p.display()).map_err(crate::out::stdout_error)?;
            }
            writeln!(
                out,
                "xlated vs our kernel-dce,fixups,cmpxchg-zext: {equal} equal, {} differ, {} not compared",
                differ.len(),
                compared_errors.len()
            )?;
        }
        writeln!(out, "kernel: {accepted} accepted, {rejected} rejected").map_err(crate::out::stdout_error)?;
        writeln!(out, "{summary}").map_err(crate::out::stdout_error)?;
    }
    Ok(if summary.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
