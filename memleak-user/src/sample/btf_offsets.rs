//! Kernel struct field offsets, read from the running kernel's BTF.
//!
//! rustc cannot emit CO-RE relocations, so the eBPF program cannot ask the
//! loader to fix up `task->mm` for this kernel. Instead we look the offsets up
//! here, once, and pass them as load-time globals (see
//! `memleak_common::globals`).

use std::path::Path;

use btf_rs::{Btf, Type};

use super::SampleError;

/// The running kernel's BTF, the source of the struct offsets.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Offsets (bytes) the eBPF program needs. `None` = field absent on this
/// kernel (the program then does without it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_mm: u64,
    pub task_pid: u64,
    pub task_flags: u64,
    pub task_tgid: u64,
    pub task_start_boottime: u64,
    pub task_real_parent: u64,
    pub task_group_leader: u64,
    pub task_exit_code: u64,
    pub task_comm: u64,
    pub mm_total_vm: u64,
    pub mm_rss_stat: u64,
    /// `mm_struct.owner` exists only with CONFIG_MEMCG; without it, rss
    /// changes made by another task are attributed through the mm→tgid cache.
    pub mm_owner: Option<u64>,
    /// Offset of the value inside one `rss_stat` element.
    pub rss_counter_value: u64,
    /// Size of one `rss_stat` element.
    pub rss_counter_size: u64,
    /// `task_struct.cgroups`, `css_set.dfl_cgrp`, `cgroup.kn`,
    /// `kernfs_node.id`: all four or none (cgroup v2 id of any task).
    pub cgroup_id_chain: Option<[u64; 4]>,
}

impl KernelOffsets {
    /// Offsets of the running kernel, from [`VMLINUX_BTF`].
    pub fn from_sysfs() -> Result<Self, SampleError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    /// Offsets from a BTF file (another kernel's, in tests).
    pub fn from_file(path: &Path) -> Result<Self, SampleError> {
        if !path.exists() {
            return Err(SampleError::Unsupported(format!(
                "{} is missing (kernel built without CONFIG_DEBUG_INFO_BTF)",
                path.display()
            )));
        }
        let btf = Btf::from_file(path).map_err(|e| {
            SampleError::Unsupported(format!("cannot parse {}: {e}", path.display()))
        })?;
        let r = Resolver { btf: &btf };
        let field = |s: &str, f: &str| -> Result<Field, SampleError> {
            r.field(s, f)?
                .ok_or_else(|| SampleError::Unsupported(format!("kernel BTF has no field {s}.{f}")))
        };
        let rss_stat = field("mm_struct", "rss_stat")?;
        // 6.2+: struct percpu_counter rss_stat[NR_MM_COUNTERS] (read .count,
        // the same approximate value the rss_stat tracepoint reports);
        // before: struct mm_rss_stat { atomic_long_t count[..] }.
        let (rss_counter_value, rss_counter_size) = match r.array_elem(&rss_stat.ty)? {
            Some((elem, elem_size)) => match r.struct_member(&elem, "count")? {
                Some(count) => (count.offset, elem_size),
                None => (0, elem_size),
            },
            None => match r.struct_member(&rss_stat.ty, "count")? {
                Some(count) => {
                    let (_, size) = r.array_elem(&count.ty)?.ok_or_else(|| {
                        SampleError::Unsupported("unexpected mm_rss_stat layout".into())
                    })?;
                    (count.offset, size)
                }
                None => {
                    return Err(SampleError::Unsupported(
                        "unexpected mm_struct.rss_stat layout".into(),
                    ))
                }
            },
        };
        Ok(KernelOffsets {
            task_mm: field("task_struct", "mm")?.offset,
            task_pid: field("task_struct", "pid")?.offset,
            task_flags: field("task_struct", "flags")?.offset,
            task_tgid: field("task_struct", "tgid")?.offset,
            task_start_boottime: field("task_struct", "start_boottime")?.offset,
            task_real_parent: field("task_struct", "real_parent")?.offset,
            task_group_leader: field("task_struct", "group_leader")?.offset,
            task_exit_code: field("task_struct", "exit_code")?.offset,
            task_comm: field("task_struct", "comm")?.offset,
            mm_total_vm: field("mm_struct", "total_vm")?.offset,
            mm_rss_stat: rss_stat.offset,
            mm_owner: r.field("mm_struct", "owner")?.map(|f| f.offset),
            rss_counter_value,
            rss_counter_size,
            cgroup_id_chain: cgroup_id_chain(&r)?,
        })
    }
}

fn cgroup_id_chain(r: &Resolver) -> Result<Option<[u64; 4]>, SampleError> {
    let mut chain = [0u64; 4];
    for (slot, (s, f)) in chain.iter_mut().zip([
        ("task_struct", "cgroups"),
        ("css_set", "dfl_cgrp"),
        ("cgroup", "kn"),
        ("kernfs_node", "id"),
    ]) {
        match r.field(s, f)? {
            Some(field) => *slot = field.offset,
            None => return Ok(None),
        }
    }
    Ok(Some(chain))
}

struct Field {
    offset: u64,
    ty: Type,
}

struct Resolver<'a> {
    btf: &'a Btf,
}

fn unsupported(e: impl std::fmt::Display) -> SampleError {
    SampleError::Unsupported(format!("kernel BTF: {e}"))
}

impl Resolver<'_> {
    /// Field `name` of the named struct, looking through anonymous
    /// struct/union members (mm_struct keeps most fields in one).
    fn field(&self, strukt: &str, name: &str) -> Result<Option<Field>, SampleError> {
        let types = self
            .btf
            .resolve_types_by_name(strukt)
            .map_err(unsupported)?;
        for ty in types {
            if let Type::Struct(_) = ty {
                if let Some(f) = self.struct_member(&ty, name)? {
                    return Ok(Some(f));
                }
            }
        }
        Ok(None)
    }

    fn struct_member(&self, ty: &Type, name: &str) -> Result<Option<Field>, SampleError> {
        let ty = self.skip_modifiers(ty.clone())?;
        let (Type::Struct(s) | Type::Union(s)) = &ty else {
            return Ok(None);
        };
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            let mty = self.btf.resolve_chained_type(m).map_err(unsupported)?;
            if mname == name {
                return Ok(Some(Field {
                    offset: u64::from(m.bit_offset() / 8),
                    ty: mty,
                }));
            }
            if mname.is_empty() {
                if let Some(inner) = self.struct_member(&mty, name)? {
                    return Ok(Some(Field {
                        offset: u64::from(m.bit_offset() / 8) + inner.offset,
                        ty: inner.ty,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Element type and element size when `ty` is an array.
    fn array_elem(&self, ty: &Type) -> Result<Option<(Type, u64)>, SampleError> {
        let ty = self.skip_modifiers(ty.clone())?;
        let Type::Array(a) = &ty else {
            return Ok(None);
        };
        let elem = self.btf.resolve_chained_type(a).map_err(unsupported)?;
        let size = self.size_of(&elem)?;
        Ok(Some((elem, size)))
    }

    fn size_of(&self, ty: &Type) -> Result<u64, SampleError> {
        let ty = self.skip_modifiers(ty.clone())?;
        Ok(match &ty {
            Type::Struct(s) | Type::Union(s) => s.size() as u64,
            Type::Int(i) => i.size() as u64,
            Type::Ptr(_) => 8,
            Type::Enum(e) => e.size() as u64,
            Type::Array(a) => {
                let (_, elem) = self
                    .array_elem(&ty)?
                    .ok_or_else(|| unsupported("array without element"))?;
                elem * a.len() as u64
            }
            other => return Err(unsupported(format!("cannot size a {}", other.name()))),
        })
    }

    fn skip_modifiers(&self, mut ty: Type) -> Result<Type, SampleError> {
        loop {
            match &ty {
                Type::Typedef(t) => ty = self.btf.resolve_chained_type(t).map_err(unsupported)?,
                Type::Volatile(t) | Type::Const(t) | Type::Restrict(t) => {
                    ty = self.btf.resolve_chained_type(t).map_err(unsupported)?
                }
                Type::TypeTag(t) => ty = self.btf.resolve_chained_type(t).map_err(unsupported)?,
                _ => return Ok(ty),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the machine's own kernel BTF: the offsets must be
    /// plausible (inside the structs, distinct) — wrong offsets would make
    /// the eBPF program read garbage, which the integration tests catch too.
    #[test]
    fn resolves_offsets_from_running_kernel() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipping: {VMLINUX_BTF} not present on this kernel");
            return;
        }
        let o = KernelOffsets::from_file(path).expect("offsets");
        eprintln!("{o:?}");
        assert_ne!(o.task_mm, o.task_tgid);
        assert!(o.task_start_boottime > 0);
        assert!(o.mm_total_vm > 0);
        assert!(o.rss_counter_size >= 8);
        assert!(o.rss_counter_value + 8 <= o.rss_counter_size);
    }

    #[test]
    fn missing_btf_is_unsupported_with_reason() {
        let err = KernelOffsets::from_file(Path::new("/nonexistent/vmlinux")).unwrap_err();
        assert!(err.to_string().contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
    }
}
