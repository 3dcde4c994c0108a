//! The `afterburner` binary: parse the command line, run the server, report errors.

use clap::Parser;

fn main() {
    let args = afterburner::cli::Args::parse();
    if let Err(error) = afterburner::run(&args.into_config()) {
        // A `ServerError` carries its cause in its own message.
        eprintln!("afterburner: error: {error}");
        std::process::exit(2);
    }
}
