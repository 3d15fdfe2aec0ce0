//! The `taskhost` command: a thin shell over the library's CLI.

fn main() -> std::process::ExitCode {
    taskhost::cli::main()
}
