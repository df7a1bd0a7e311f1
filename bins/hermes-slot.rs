fn main() -> std::process::ExitCode {
    hermes_s6::tool::slot::main(std::env::args_os())
}
