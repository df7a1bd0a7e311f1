fn main() -> std::process::ExitCode {
    hermes_s6::tool::seed_supervise::main(std::env::args_os())
}
