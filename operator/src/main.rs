//! `watchpool-operator`: parses the command line and hands over to [`watchpool_operator::run`].

use std::process::ExitCode;

fn main() -> ExitCode {
    watchpool_operator::main_with_args(std::env::args_os())
}
