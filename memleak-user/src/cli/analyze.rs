//! `memleak analyze`.
