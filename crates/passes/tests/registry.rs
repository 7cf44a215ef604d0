//! The pass registry's public face: names, help, kinds, and the pipelines built from names.
//! Each expectation is the documented contract (the CLI's `--passes` grammar, the kernel's
//! pass split into loadable and xlated output), not a value read back from the code.

use bpfpatch_passes::{OutputKind, Pass, PassError, Pipeline};

#[test]
fn output_kinds_print_their_cli_names() {
    assert_eq!(OutputKind::Loadable.to_string(), "loadable");
    assert_eq!(OutputKind::Xlated.to_string(), "xlated");
}

#[test]
fn every_pass_prints_its_name_and_has_its_own_help() {
    let mut helps = std::collections::HashSet::new();
    for &p in Pass::ORDER {
        assert_eq!(p.to_string(), p.name());
        assert_eq!(Pass::from_name(p.name()), Some(p));
        let h = p.help();
        assert!(h.len() > 10 && h != p.name(), "{p}: help {h:?}");
        assert!(helps.insert(h), "{p}: help shared with another pass");
    }
}

#[test]
fn an_unknown_pass_is_refused_naming_every_known_one() {
    let e = Pipeline::parse("dce,nope").unwrap_err();
    assert!(matches!(&e, PassError::UnknownPass { name } if name == "nope"), "{e:?}");
    let msg = e.to_string();
    for &p in Pass::ORDER {
        assert!(msg.contains(p.name()), "{msg:?} lacks {p}");
    }
    assert!(msg.contains("all, kernel"), "{msg:?}");
}

#[test]
fn a_pipeline_is_xlated_as_soon_as_one_pass_is() {
    let loadable = Pipeline::parse("dce,lower-v4").unwrap();
    assert_eq!(loadable.kind(), OutputKind::Loadable);
    for xlated in ["fixups", "dce,zext", "blind"] {
        assert_eq!(Pipeline::parse(xlated).unwrap().kind(), OutputKind::Xlated, "{xlated}");
    }
    assert_eq!(Pipeline::parse("").unwrap().kind(), OutputKind::Loadable);
}

#[test]
fn the_kernel_pipeline_is_kernel_dce_then_fixups_then_cmpxchg_zext() {
    let k = Pipeline::kernel();
    let names: Vec<&str> = k.passes().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["kernel-dce", "fixups", "cmpxchg-zext"]);
    assert_eq!(k.kind(), OutputKind::Xlated);
    assert_eq!(Pipeline::for_output("kernel", false, OutputKind::Xlated).unwrap(), k);
}

#[test]
fn loadable_output_refuses_xlated_passes_and_xlated_output_takes_them() {
    for (list, blind) in [("fixups", false), ("dce,zext", false), ("dce", true), ("kernel", false)] {
        let e = Pipeline::for_output(list, blind, OutputKind::Loadable).unwrap_err();
        assert!(matches!(e, PassError::NeedsXlated { .. }), "{list} blind {blind}: {e:?}");
        assert!(Pipeline::for_output(list, blind, OutputKind::Xlated).is_ok(), "{list}");
    }
    let ok = Pipeline::for_output("dce,lower-v4", false, OutputKind::Loadable).unwrap();
    assert_eq!(ok.kind(), OutputKind::Loadable);
}
