//! The `tidegate` binary: `serve`, the client commands (`topic`, `produce`,
//! `consume`, `group`, `sub`), `tune` and `auth`.

mod cli;
mod serve;

/// jemalloc instead of glibc's malloc: the shard's request path allocates
/// small buffers per datagram and per request, and glibc's `_int_malloc`
/// was 5% of a busy shard's core. mimalloc was as fast but held 1.7 times
/// the memory (docs/BENCHMARKS.md, "The server's allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Consumer groups: list them, show their offsets, lag and members,
    /// reset their committed offsets.
    ///
    /// Examples:
    ///   tidegate group list
    ///   tidegate group describe billing --format json
    ///   tidegate group reset-offsets billing --topic orders --to earliest --dry-run
    #[command(verbatim_doc_comment)]
    Group(cli::group::GroupArgs),
    /// Subscriptions, queue style: create, list, describe and delete them;
    /// pull messages and ack or nack them; redrive their dead letters.
    ///
    /// Examples:
    ///   tidegate sub create orders billing --filter 'region = "eu"' --from earliest
    ///   tidegate sub pull billing --max 10
    ///   tidegate sub describe billing            # backlog per partition
    ///   tidegate sub redrive billing             # dead letters back to the topic
    #[command(verbatim_doc_comment)]
    Sub(cli::sub::SubArgs),
    /// Check the host for tidegate (CPU, IRQs, UDP buffers, disks, limits,
    /// io_uring) and apply the safe fixes.
    ///
    /// Examples:
    ///   tidegate tune check                  # exit code 0 ok, 1 warnings, 2 critical
    ///   tidegate tune check --json
    ///   sudo tidegate tune apply --dry-run
    #[command(verbatim_doc_comment)]
    Tune(cli::tune::TuneArgs),
    /// Tokens and access rules: hash a token for the configuration, make a
    /// new one, check the `[auth]` section (docs/SECURITY.md).
    ///
    /// Examples:
    ///   tidegate auth new-token --principal svc-orders
    ///   echo -n "$TOKEN" | tidegate auth hash-token
    ///   tidegate auth check --config /etc/tidegate/tidegate.toml
    #[command(verbatim_doc_comment)]
    Auth(cli::auth::AuthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Topic(args) => cli::topic::run(args).map(|()| ExitCode::SUCCESS),
        Command::Produce(args) => cli::produce::run(args).map(|()| ExitCode::SUCCESS),
        Command::Consume(args) => cli::consume::run(args).map(|()| ExitCode::SUCCESS),
        Command::Group(args) => cli::group::run(args).map(|()| ExitCode::SUCCESS),
        Command::Sub(args) => cli::sub::run(args).map(|()| ExitCode::SUCCESS),
        Command::Tune(args) => cli::tune::run(args),
        Command::Auth(args) => cli::auth::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tidegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
