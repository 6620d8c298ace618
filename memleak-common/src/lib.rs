//! Types shared by memleak's eBPF program (`memleak-ebpf`) and its userspace
//! sampler (`memleak-user`).
//!
//! Everything here is `#[repr(C)]` with explicit padding so both sides agree on
//! the byte layout without relying on compiler choices. The userspace-only
//! trait impls (`aya::Pod`) live behind the `user` feature, following kunai's
//! `foo/bpf.rs` + `foo/user.rs` split.
#![no_std]

pub mod globals;
pub mod proc;
pub mod stats;
