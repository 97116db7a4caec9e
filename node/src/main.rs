//! The `yichuang` binary: parse the command line, set up logging, run, report errors.

use clap::Parser;
use yichuang_node::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    yichuang_node::logging::init(cli.log_json);
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
