fn main() -> std::process::ExitCode {
    hermes_s6::tool::svscan_perms::main(std::env::args_os())
}
