//! The `tidegate` binary: `serve`, the client commands (`topic`, `produce`,
//! `consume`), and later `tune`.

mod cli;
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
    /// Create, delete, list and describe topics.
    ///
    /// Examples:
    ///   tidegate topic create orders --partitions 8
    ///   tidegate topic list --format json
    ///   tidegate topic describe orders --server 10.0.0.7:7441 --ca ca.pem
    ///   TIDEGATE_SERVER=10.0.0.7:7441 tidegate topic delete orders --insecure
    #[command(verbatim_doc_comment)]
    Topic(cli::topic::TopicArgs),
    Produce(cli::produce::ProduceArgs),
    Consume(cli::consume::ConsumeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic(args) => cli::topic::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
