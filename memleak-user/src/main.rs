//! The `memleak` binary: everything is in the library's command-line front
//! end (`memleak::cli_main`), so the binary is this one call.

fn main() -> std::process::ExitCode {
    memleak::cli_main()
}
