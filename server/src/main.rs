//! The `afterburner` binary: parse the command line, run the server, report errors.

fn main() {
    let config = afterburner::cli::Args::parse_config_from(std::env::args_os());
    if let Err(error) = afterburner::run(&config) {
        // A `ServerError` carries its cause in its own message.
        eprintln!("afterburner: error: {error}");
        std::process::exit(2);
    }
}
