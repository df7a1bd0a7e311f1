fn main() -> std::process::ExitCode {
    hermes_s6::tool::dashboard_run::main(std::env::args_os())
}
