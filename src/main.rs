fn main() -> std::process::ExitCode {
    tracefusion::cli::run()
}
