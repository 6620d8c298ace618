//! memleak: a low-overhead memory-leak alert system for Linux.
//!
//! Data flows one way: [`sample`] (eBPF or procfs) → [`record`] (the
//! recorder loop, writing a [`store`] recording) → [`analyse`] → [`report`].

// First, so `diag!` is in scope in every module below.
#[macro_use]
pub mod diag;

pub mod analyse;
mod cli;
pub mod export;
pub mod files;
pub mod load;
pub mod locate;
pub mod marker_name;
pub mod record;
pub mod report;
pub mod sample;
pub mod source;
pub mod store;
pub mod sysinfo;
pub mod watch;

pub use cli::main as cli_main;
