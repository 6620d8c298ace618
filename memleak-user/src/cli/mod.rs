//! Command-line front end: one module per subcommand. Each returns the
//! process exit code; `main.rs` only parses and dispatches.

pub mod analyze;
pub mod baseline;
pub mod common;
pub mod completions;
pub mod eval;
pub mod info;
pub mod man;
pub mod record;
pub mod run;
pub mod schema;
pub mod sources;
pub mod summary;
pub mod watch;
