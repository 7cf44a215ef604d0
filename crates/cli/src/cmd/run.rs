//! `bpfpatch run`: run one program and print r0.
//!
//! A conformance `.data` file runs with its memory; a bare image and an object's program
//! section run with none (r1 = r2 = 0). An object's section runs in the kernel's view of it
//! (calls and function addresses inside the section resolved as a loader would); a section
//! that needs a loader (maps, globals, kfuncs, code in other sections) is refused, naming the
//! first such relocation.

use crate::input::{self, Kind, ProgramArgs};
use crate::passes_args::{PassArgs, hook, vm_config};
use anyhow::{Context, Result, anyhow, bail};
use bpfpatch_insn::{Endian, Insn};
use bpfpatch_object::{BpfObject, ProgramSection, RelocRole, reloc_type};
use bpfpatch_passes::Options;
use bpfpatch_vm::helpers::UNWIND_HELPER_ID;
use bpfpatch_vm::{ConformanceOptions, Input, LoadOptions, LoadedProgram, Unwind, Vm, VmConfig, run_data_file};
use std::process::ExitCode;

/// Arguments of `bpfpatch run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A conformance `.data` file (`-- asm` or `-- raw`, with its `-- mem`), an ELF object (one
    /// self-contained program section), or with `--raw` a bare image (objects and images run
    /// with no memory area: r1 = r2 = 0).
    #[command(flatten)]
    pub program: ProgramArgs,
    /// ELF objects: the program section to run (default: the only one with instructions).
    /// Only self-contained programs run: no relocations but calls inside the section.
    #[arg(long, value_name = "S", conflicts_with = "raw")]
    pub section: Option<String>,
    /// Print a JSON object instead of the bare value.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub passes: PassArgs,
}

/// Runs the program; prints r0 as `0x...`.
pub fn main(args: &Args) -> Result<ExitCode> {
    let path = &args.program.file;
    let bytes = input::read(path)?;
    let name = || path.display().to_string();
    let kind = args.program.kind(&bytes);
    if args.section.is_some() && kind != Kind::Elf {
        bail!("{}: --section applies to ELF objects only", path.display());
    }
    let obj = if kind == Kind::Elf { Some(input::object(&bytes, path)?) } else { None };
    // The program's byte order is the machine's: a bpfeb object or a --big-endian image runs
    // big-endian, and the passes rewrite for that machine.
    let endian = match (kind, &obj) {
        (Kind::Raw(e), _) => e,
        (_, Some(o)) => o.endian(),
        _ => Endian::Little,
    };
    let pipeline = args.passes.pipeline()?;
    let pass_opts = Options { host: endian, ..args.passes.options()? };
    let transform = pipeline.as_ref().map(|p| hook(p, &pass_opts));
    // With `zext` in the pipeline, the rewritten program runs with random upper halves.
    let vm = vm_config(pipeline.as_ref(), &pass_opts).with_endian(endian);
    let mut opts = ConformanceOptions::default().with_vm(vm);
    if let Some(t) = &transform {
        opts = opts.with_transform(t);
    }
    // An input marked xlated (`rewrite --xlated`) may hold kernel-internal forms.
    let xlated = obj.as_ref().is_some_and(BpfObject::is_xlated) || input::raw_xlated(kind, &bytes);
    let load = if xlated { LoadOptions::INTERNAL } else { LoadOptions::default() };
    let r0 = match kind {
        Kind::DataFile => run_data_file(path, &opts).with_context(name)?,
        Kind::Elf => {
            let Some(obj) = &obj else { bail!("{}: not an ELF object", path.display()) };
            let slots = object_program(obj, args.section.as_deref()).with_context(name)?;
            run_slots(&slots, load, transform.as_ref(), vm).with_context(name)?
        }
        kind @ Kind::Raw(_) => {
            run_slots(&input::program_slots(kind, &bytes, path)?, load, transform.as_ref(), vm).with_context(name)?
        }
    };
    if args.json {
        outln!("{}", serde_json::json!({ "file": path, "r0": format!("{r0:#x}") }))?;
    } else {
        outln!("{r0:#x}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads `slots` with `load` (rewritten by `transform` first, when given) and runs it with no
/// memory area (r1 = r2 = 0) on a VM configured as `vm` with the conformance helpers; returns r0.
fn run_slots<F: Fn(&[Insn]) -> Result<Vec<Insn>, String>>(
    slots: &[Insn],
    load: LoadOptions,
    transform: Option<&F>,
    vm: VmConfig,
) -> Result<u64> {
    let prog = match transform {
        None => LoadedProgram::load(slots, &load)?,
        Some(t) => {
            // The original must load (it is the input); the rewritten one may use internal forms.
            LoadedProgram::load(slots, &load)?;
            let rewritten = t(slots).map_err(|e| anyhow!(e))?;
            LoadedProgram::load(&rewritten, &LoadOptions::INTERNAL)?
        }
    };
    let mut machine = Vm::new(vm)?;
    machine.register_helper(UNWIND_HELPER_ID, Unwind);
    Ok(machine.run(&prog, Input::default())?.r0)
}

/// The instructions of the program section `section` of `obj` (default: the only program
/// section with instructions) in the kernel's view (calls and function addresses inside the
/// section resolved), refusing programs a loader would have to relocate further.
fn object_program(obj: &BpfObject, section: Option<&str>) -> Result<Vec<Insn>> {
    let progs: Vec<(usize, &ProgramSection)> =
        obj.programs().iter().enumerate().filter(|(_, p)| !p.insns().is_empty()).collect();
    let (index, p) = match section {
        Some(s) => obj
            .program_by_name(s)
            .ok_or_else(|| anyhow!("no program section `{s}` (program sections: {})", names(&progs)))?,
        None => match progs.as_slice() {
            [one] => *one,
            [] => bail!("no program section with instructions"),
            _ => bail!("{} program sections ({}); choose one with --section", progs.len(), names(&progs)),
        },
    };
    let view = obj.engine_view(index)?;
    let local = |role: RelocRole| matches!(role, RelocRole::LocalCall { .. } | RelocRole::LocalFuncAddr { .. });
    if let Some((slot, _)) = view.roles().iter().copied().find(|&(_, role)| !local(role)) {
        let r = p.relocs().iter().find(|r| r.slot == slot);
        let sym = r.and_then(|r| obj.symbols().get(r.symbol as usize)).map_or("?", |s| s.name.as_str());
        let ty = r.map_or("?", |r| reloc_type::name(r.r_type));
        bail!(
            "section `{}`: slot {slot} has relocation {ty} against `{sym}`: only self-contained programs \
             run (maps, globals, kfuncs and code in other sections need a loader)",
            p.name()
        );
    }
    Ok(view.program().insns.clone())
}

fn names(progs: &[(usize, &ProgramSection)]) -> String {
    progs.iter().map(|(_, p)| p.name()).collect::<Vec<_>>().join(", ")
}
