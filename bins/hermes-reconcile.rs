fn main() -> std::process::ExitCode {
    hermes_s6::tool::reconcile::main(std::env::args_os())
}
