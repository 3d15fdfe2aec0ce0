//! The `taskhost` command, built inside the test package so that the
//! end-to-end tests can start real host processes (`CARGO_BIN_EXE_taskhost`).

fn main() -> std::process::ExitCode {
    taskhost::cli::main()
}
