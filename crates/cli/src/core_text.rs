//! The text `llvm-objdump-19 -r` prints for a CO-RE relocation (`.BTF.ext` `bpf_core_relo`
//! record), after `CO-RE `: what llvm's `BTFParser::symbolize` (llvm/lib/DebugInfo/BTF) writes,
//! reproduced from its source so that `bpfpatch disasm` prints the same line.
//!
//! By kind group:
//! - field (`byte_off`, `byte_sz`, `field_exists`, `signed`, `lshift_u64`, `rshift_u64`):
//!   `<kind> [id] <type>::<path> (<access string>)`, the path naming each member
//!   (`.`-separated, `<anon N>` for the N-th member when unnamed) and array index (`[N]`) the
//!   access string selects, with a leading `[N]` when its first index is not 0:
//!   `<byte_off> [8] struct bar::[7].v (7:1)`;
//! - type (`local_type_id`, `target_type_id`, `type_exists`, `type_size`, `type_matches`):
//!   `<kind> [id] <type>`;
//! - enum value (`enumval_exists`, `enumval_value`): `<kind> [id] <type>::<name> = <value>`,
//!   the value signed when the enum's kind_flag says so.
//!
//! `<type>` is the root type: its modifiers (` const`, ` volatile`, ` restrict`,
//! ` type_tag("x")`, at most 32), then `void`, or `typedef`/`struct`/`union`/`enum`/
//! `fwd struct`/`fwd union` (nothing for other kinds) and the name, `<anon ID>` when anonymous.
//! A record llvm cannot describe prints `<kind> [id] '<access string>' <<reason>>`, with llvm's
//! reasons (unknown type id, member index out of range, ...). One reason is ours: a chain of
//! typedefs and modifiers that loops, where llvm never returns.

use bpfpatch_object::{Btf, BtfType, BtfTypes, CoreRelo, btf_kind as kind};
use std::fmt::Write as _;

/// The most modifiers llvm prints before giving up on a type.
const MAX_MODIFIERS: u32 = 32;

/// llvm's names of `enum bpf_core_relo_kind`, by kind.
const KIND_NAMES: [&str; 13] = [
    "byte_off",
    "byte_sz",
    "field_exists",
    "signed",
    "lshift_u64",
    "rshift_u64",
    "local_type_id",
    "target_type_id",
    "type_exists",
    "type_size",
    "enumval_exists",
    "enumval_value",
    "type_matches",
];

/// The group of a relocation kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Field,
    Type,
    EnumVal,
    Unknown,
}

fn group(relo_kind: u32) -> Group {
    match relo_kind {
        0..=5 => Group::Field,
        6..=9 | 12 => Group::Type,
        10 | 11 => Group::EnumVal,
        _ => Group::Unknown,
    }
}

/// `<byte_off>`, or `<reloc kind #N>` for a kind llvm does not name.
#[must_use]
pub fn kind_name(relo_kind: u32) -> String {
    match usize::try_from(relo_kind).ok().and_then(|k| KIND_NAMES.get(k)) {
        Some(n) => format!("<{n}>"),
        None => format!("<reloc kind #{relo_kind}>"),
    }
}

/// The access string split at `:` into numbers (each truncated to 32 bits, as llvm keeps them),
/// or llvm's complaint. An empty string is no number at all.
fn parse_spec(spec: &str) -> Result<Vec<u32>, String> {
    let mut raw = Vec::new();
    let mut rest = spec.as_bytes();
    while !rest.is_empty() {
        // llvm's consumeUnsignedInteger in radix 10: digits, overflow detected by dividing back.
        let mut val: u64 = 0;
        let mut used = 0;
        for &c in rest {
            if !c.is_ascii_digit() {
                break;
            }
            let prev = val;
            val = val.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            if val / 10 < prev {
                return Err("spec string is not a number".into());
            }
            used += 1;
        }
        if used == 0 {
            return Err("spec string is not a number".into());
        }
        raw.push((val & 0xffff_ffff) as u32);
        rest = &rest[used..];
        match rest.first() {
            None => break,
            Some(b':') => rest = &rest[1..],
            Some(_) => {
                let c = String::from_utf8_lossy(rest).chars().next().unwrap_or('?');
                return Err(format!("unexpected spec string delimiter: '{c}'"));
            }
        }
    }
    Ok(raw)
}

/// A 32-bit number as llvm's `formatv("{0:d}")` prints it in a reason: as a signed `int`
/// (type id 4294967295 is `-1`; the `[id]` before it prints unsigned).
fn d(v: u32) -> i32 {
    v.cast_signed()
}

/// `name`, or `<anon idx>` when it is empty.
fn str_or_anon(btf: &Btf, name_off: u32, idx: u32) -> String {
    let s = btf.string_lenient(name_off);
    if s.is_empty() { format!("<anon {idx}>") } else { s }
}

/// The text llvm-objdump prints after `CO-RE ` for `relo`, given the object's `.BTF` and its
/// type table.
#[must_use]
pub fn describe(btf: &Btf, types: &BtfTypes, relo: &CoreRelo) -> String {
    describe_fields(btf, types, Relo { kind: relo.kind, type_id: relo.type_id, access_str_off: relo.access_str_off })
}

/// The fields of a `bpf_core_relo` record that [`describe`] reads.
#[derive(Clone, Copy, Debug)]
struct Relo {
    kind: u32,
    type_id: u32,
    access_str_off: u32,
}

fn describe_fields(btf: &Btf, types: &BtfTypes, relo: Relo) -> String {
    let spec = btf.string_lenient(relo.access_str_off);
    describe_spec(btf, types, relo, &spec)
        .unwrap_or_else(|why| format!("{} [{}] '{spec}' <{why}>", kind_name(relo.kind), relo.type_id))
}

/// [`describe`] on success, llvm's reason for giving up otherwise.
fn describe_spec(btf: &Btf, types: &BtfTypes, relo: Relo, spec: &str) -> Result<String, String> {
    let raw = parse_spec(spec)?;
    let mut out = kind_name(relo.kind);
    let mut cur = relo.type_id;
    let mut ty = types.get(cur).ok_or_else(|| format!("unknown type id: {}", d(cur)))?;
    let _ = write!(out, " [{cur}]");
    // Modifiers of the root type, outermost first.
    let mut chain = 0;
    while let Some(m) = modifier(btf, ty) {
        out.push_str(&m);
        if chain >= MAX_MODIFIERS {
            return Err("modifiers chain is too long".into());
        }
        cur = ty.size_or_type;
        ty = types.get(cur).ok_or_else(|| format!("unknown type id: {} in modifiers chain", d(cur)))?;
        chain += 1;
    }
    if cur == 0 {
        out.push_str(" void");
    } else {
        out.push_str(match ty.kind() {
            kind::TYPEDEF => " typedef",
            kind::STRUCT => " struct",
            kind::UNION => " union",
            kind::ENUM | kind::ENUM64 => " enum",
            kind::FWD if ty.kind_flag() => " fwd union",
            kind::FWD => " fwd struct",
            _ => "",
        });
        let _ = write!(out, " {}", str_or_anon(btf, ty.name_off, cur));
    }
    match group(relo.kind) {
        Group::Type => {
            if raw != [0] {
                return Err("unexpected type-based relocation spec: should be '0'".into());
            }
            Ok(out)
        }
        Group::EnumVal => {
            out.push_str("::");
            let ty = skip_mods_and_typedefs(types, cur)?;
            let [idx] = raw[..] else { return Err("unexpected enumval relocation spec size".into()) };
            if !matches!(ty.kind(), kind::ENUM | kind::ENUM64) {
                return Err(format!("unexpected type kind for enum relocation: {}", ty.kind()));
            }
            let values = ty.enum_values();
            let v = usize::try_from(idx)
                .ok()
                .and_then(|i| values.get(i))
                .ok_or_else(|| format!("bad value index: {}", d(idx)))?;
            out.push_str(&str_or_anon(btf, v.name_off, idx));
            if ty.kind_flag() {
                let _ = write!(out, " = {}", v.bits.cast_signed());
            } else {
                let _ = write!(out, " = {}", v.bits);
            }
            Ok(out)
        }
        Group::Field => {
            out.push_str("::");
            let Some(&first) = raw.first() else { return Err("field spec too short".into()) };
            if first != 0 {
                let _ = write!(out, "[{first}]");
            }
            for (i, &idx) in raw.iter().enumerate().skip(1) {
                let t = skip_mods_and_typedefs(types, cur)?;
                if matches!(t.kind(), kind::STRUCT | kind::UNION) {
                    let members = t.members();
                    let m = usize::try_from(idx)
                        .ok()
                        .and_then(|x| members.get(x))
                        .ok_or_else(|| format!("member index {} for spec sub-string {i} is out of range", d(idx)))?;
                    if i != 1 || first != 0 {
                        out.push('.');
                    }
                    out.push_str(&str_or_anon(btf, m.name_off, idx));
                    cur = m.type_id;
                    if types.get(cur).is_none() {
                        return Err(format!("unknown member type id {} for spec sub-string {i}", d(cur)));
                    }
                } else if let Some(a) = t.array() {
                    let _ = write!(out, "[{idx}]");
                    cur = a.elem_type;
                    if types.get(cur).is_none() {
                        return Err(format!("unknown element type id {} for spec sub-string {i}", d(cur)));
                    }
                } else {
                    return Err(format!("unexpected type kind {} for spec sub-string {i}", t.kind()));
                }
            }
            let _ = write!(out, " ({spec})");
            Ok(out)
        }
        Group::Unknown => Err(format!("unknown relocation kind: {}", d(relo.kind))),
    }
}

/// The text llvm prints for a modifier type, `None` for other kinds.
fn modifier(btf: &Btf, ty: &BtfType) -> Option<String> {
    Some(match ty.kind() {
        kind::CONST => " const".into(),
        kind::VOLATILE => " volatile".into(),
        kind::RESTRICT => " restrict".into(),
        kind::TYPE_TAG => format!(" type_tag(\"{}\")", btf.string_lenient(ty.name_off)),
        _ => return None,
    })
}

/// The type under `id`'s typedefs and modifiers (`id` itself must exist).
fn skip_mods_and_typedefs(types: &BtfTypes, id: u32) -> Result<&BtfType, String> {
    let id = types.skip_mods_and_typedefs(id).map_err(|_| "chain of modifiers and typedefs loops".to_string())?;
    types.get(id).ok_or_else(|| format!("unknown type id: {}", d(id)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]
    use super::*;
    use bpfpatch_insn::Endian;

    /// A `.BTF` section of `types` (each a list of words) and `strings`, in `endian` order.
    fn btf_bytes(types: &[Vec<u32>], strings: &[u8], endian: Endian) -> Vec<u8> {
        let w = |v: u32| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let tbytes: Vec<u8> = types.iter().flatten().flat_map(|&v| w(v)).collect();
        let mut b = match endian {
            Endian::Little => 0xeb9f_u16.to_le_bytes(),
            Endian::Big => 0xeb9f_u16.to_be_bytes(),
        }
        .to_vec();
        b.extend([1, 0]);
        for v in [24, 0, tbytes.len() as u32, tbytes.len() as u32, strings.len() as u32] {
            b.extend(w(v));
        }
        b.extend(tbytes);
        b.extend(strings);
        b
    }

    fn info(k: u8, vlen: u32, flag: bool) -> u32 {
        u32::from(k) << 24 | vlen | if flag { 1 << 31 } else { 0 }
    }

    /// Strings: 1 "bar", 5 "foo", 9 "a", 11 "v", 13 "int", 17 "E", 19 "U", 21 "V", 23 "0:1:2:1",
    /// 31 "0", 33 "1", 35 "x:1", 39 "tag", 43 "0:9", 47 "7:1".
    const STRS: &[u8] = b"\0bar\0foo\0a\0v\0int\0E\0U\0V\x000:1:2:1\x000\x001\0x:1\0tag\x000:9\x007:1\0";

    /// [1] int; [2] struct foo { int a; int v; }; [3] foo[7]; [4] struct bar { int a; foo v[7]; };
    /// [5] const -> 4; [6] typedef bar_t(`v`) -> 5; [7] enum E { U = 1, V = -2 } signed;
    /// [8] anonymous struct { int; }; [9] ptr -> 1 (anonymous); [10] type_tag "tag" -> 11;
    /// [11] volatile -> 4; [12] typedef -> 13, [13] typedef -> 12 (a loop); [14] fwd union foo.
    fn types() -> Vec<Vec<u32>> {
        vec![
            vec![13, info(kind::INT, 0, false), 4, 32],
            vec![5, info(kind::STRUCT, 2, false), 8, 9, 1, 0, 11, 1, 32],
            vec![0, info(kind::ARRAY, 0, false), 0, 2, 1, 7],
            vec![1, info(kind::STRUCT, 2, false), 60, 9, 1, 0, 11, 3, 32],
            vec![0, info(kind::CONST, 0, false), 4],
            vec![11, info(kind::TYPEDEF, 0, false), 5],
            vec![17, info(kind::ENUM, 2, true), 4, 19, 1, 21, (-2i32).cast_unsigned()],
            vec![0, info(kind::STRUCT, 1, false), 4, 0, 1, 0],
            vec![0, info(kind::PTR, 0, false), 1],
            vec![39, info(kind::TYPE_TAG, 0, false), 11],
            vec![0, info(kind::VOLATILE, 0, false), 4],
            vec![11, info(kind::TYPEDEF, 0, false), 13],
            vec![11, info(kind::TYPEDEF, 0, false), 12],
            vec![5, info(kind::FWD, 0, true), 0],
        ]
    }

    fn describe_all(endian: Endian, relos: &[(u32, u32, u32)]) -> Vec<String> {
        let btf = Btf::parse(&btf_bytes(&types(), STRS, endian)).unwrap();
        let t = BtfTypes::parse(&btf, endian).unwrap();
        relos
            .iter()
            .map(|&(kind, type_id, access_str_off)| describe_fields(&btf, &t, Relo { kind, type_id, access_str_off }))
            .collect()
    }

    /// llvm's own examples (BTFParser.cpp's comment and BTFParserTest.cpp's style) and every
    /// failure reason, in both byte orders.
    #[test]
    fn describes_as_llvm() {
        let cases: [((u32, u32, u32), &str); 21] = [
            ((0, 4, 23), "<byte_off> [4] struct bar::v[2].v (0:1:2:1)"),
            ((0, 4, 47), "<byte_off> [4] struct bar::[7].v (7:1)"),
            ((2, 6, 47), "<field_exists> [6] typedef v::[7].v (7:1)"),
            ((1, 5, 23), "<byte_sz> [5] const struct bar::v[2].v (0:1:2:1)"),
            ((0, 8, 31), "<byte_off> [8] struct <anon 8>:: (0)"),
            ((8, 2, 31), "<type_exists> [2] struct foo"),
            ((6, 9, 31), "<local_type_id> [9] <anon 9>"),
            ((7, 0, 31), "<target_type_id> [0] void"),
            ((9, 10, 31), "<type_size> [10] type_tag(\"tag\") volatile struct bar"),
            ((12, 14, 31), "<type_matches> [14] fwd union foo"),
            ((10, 7, 31), "<enumval_exists> [7] enum E::U = 1"),
            ((11, 7, 33), "<enumval_value> [7] enum E::V = -2"),
            ((9, 99, 31), "<type_size> [99] '0' <unknown type id: 99>"),
            ((9, u32::MAX, 31), "<type_size> [4294967295] '0' <unknown type id: -1>"),
            ((0, 4, 35), "<byte_off> [4] 'x:1' <spec string is not a number>"),
            ((0, 4, 43), "<byte_off> [4] '0:9' <member index 9 for spec sub-string 1 is out of range>"),
            ((8, 2, 33), "<type_exists> [2] '1' <unexpected type-based relocation spec: should be '0'>"),
            ((10, 4, 31), "<enumval_exists> [4] '0' <unexpected type kind for enum relocation: 4>"),
            ((11, 7, 43), "<enumval_value> [7] '0:9' <unexpected enumval relocation spec size>"),
            ((13, 2, 31), "<reloc kind #13> [2] '0' <unknown relocation kind: 13>"),
            ((0, 12, 43), "<byte_off> [12] '0:9' <chain of modifiers and typedefs loops>"),
        ];
        for endian in [Endian::Little, Endian::Big] {
            let got = describe_all(endian, &cases.map(|c| c.0));
            for (g, (_, want)) in got.iter().zip(cases) {
                assert_eq!(g, want, "{endian:?}");
            }
        }
    }

    #[test]
    fn access_strings_parse_as_llvm_reads_them() {
        assert_eq!(parse_spec("0:1:2"), Ok(vec![0, 1, 2]));
        assert_eq!(parse_spec(""), Ok(vec![]));
        // A trailing `:` ends the string (llvm reads "0:" as "0").
        assert_eq!(parse_spec("0:"), Ok(vec![0]));
        assert_eq!(parse_spec("0;1"), Err("unexpected spec string delimiter: ';'".into()));
        assert_eq!(parse_spec(":1"), Err("spec string is not a number".into()));
        // Kept to 32 bits; 2^64 overflows.
        assert_eq!(parse_spec("4294967297"), Ok(vec![1]));
        assert_eq!(parse_spec("18446744073709551616"), Err("spec string is not a number".into()));
        assert_eq!(parse_spec("18446744073709551615"), Ok(vec![u32::MAX]));
    }

    #[test]
    fn kinds_are_named_as_llvm_names_them() {
        assert_eq!(kind_name(0), "<byte_off>");
        assert_eq!(kind_name(12), "<type_matches>");
        assert_eq!(kind_name(13), "<reloc kind #13>");
        assert_eq!(kind_name(u32::MAX), format!("<reloc kind #{}>", u32::MAX));
    }

    /// A chain of 33 `const`s is too long for llvm; 32 are not.
    #[test]
    fn modifier_chains_stop_at_32() {
        for (n, ok) in [(32u32, true), (33, false)] {
            let mut t = vec![vec![13, info(kind::INT, 0, false), 4, 32]];
            for i in 0..n {
                t.push(vec![0, info(kind::CONST, 0, false), i + 1]);
            }
            let btf = Btf::parse(&btf_bytes(&t, STRS, Endian::Little)).unwrap();
            let types = BtfTypes::parse(&btf, Endian::Little).unwrap();
            let s = describe_fields(&btf, &types, Relo { kind: 9, type_id: n + 1, access_str_off: 31 });
            assert_eq!(s.ends_with(" int"), ok, "{s}");
            assert_eq!(s.ends_with("<modifiers chain is too long>"), !ok, "{s}");
        }
    }
}
