//! The `tidegate` binary: `serve`, the client commands and `tune`.

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
    /// Run the gateway (coming with the gateway issue).
    Serve,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => {
            eprintln!(
                "tidegate serve: the gateway is not built yet; the durable log \
                 lives in the tidegate-queue crate (data dir would be {})",
                tidegate_core::DEFAULT_DATA_DIR
            );
            std::process::exit(1);
        }
    }
}
