//! The `loadgen` command line entry point.

fn main() {
    eprintln!("loadgen: the run engine is not built yet (see issue 3)");
    std::process::exit(2);
}
