//! Command-line front end: one module per subcommand. Each returns the
//! process exit code; `main.rs` only parses and dispatches.

pub mod analyze;
