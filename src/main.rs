//! The `tidegate` binary: `serve`, and later the client commands and `tune`.

mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tidegate: an edge gateway with an embedded durable message queue.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    ///
    /// Examples:
    ///   tidegate serve                                   # development: ./tidegate-data, 127.0.0.1:7441
    ///   tidegate serve --config /etc/tidegate/tidegate.toml
    ///   tidegate serve --print-config                    # the effective configuration
    #[command(verbatim_doc_comment)]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
