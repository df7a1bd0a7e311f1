fn main() -> std::process::ExitCode {
    hermes_s6::tool::multicall::main()
}
