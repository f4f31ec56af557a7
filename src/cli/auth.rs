//! `tidegate auth hash-token|new-token|check`: the operator's side of
//! `docs/SECURITY.md`. Tokens go into the configuration by their hash, so
//! these print the hash to paste; `check` lints the `[auth]` section.
//!
//! Exit codes: `check` gives 0 / 1 / 2 for clean / warnings / errors; the
//! others 0, or 1 on an error.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tidegate_auth::Severity;
use tidegate_core::config::{Overrides, ServeConfig};

#[derive(Args, Debug)]
pub(crate) struct AuthArgs {
    #[command(subcommand)]
    command: AuthCommand,
}

#[derive(Subcommand, Debug)]
enum AuthCommand {
    /// Print the hash of a token, for `[[auth.tokens]]` or
    /// `auth.admin_token_hash`. Without TOKEN, the first line of standard
    /// input is read (so the token stays out of shell history).
    ///
    /// Examples:
    ///   tidegate auth hash-token < token.txt
    ///   echo -n "$TOKEN" | tidegate auth hash-token
    #[command(verbatim_doc_comment)]
    HashToken {
        /// The token (better read from standard input).
        token: Option<String>,
    },
    /// Make a new random token (256 bits) and print it with its hash.
    NewToken {
        /// The principal to name in the printed configuration snippet.
        #[arg(long, default_value = "PRINCIPAL")]
        principal: String,
    },
    /// Check the `[auth]` section of a configuration: what would stop the
    /// server from starting (bad hashes, unreadable keys, bad patterns) and
    /// what is likely a mistake (unknown principals, rules that can never
    /// match). Exit code 0 / 1 / 2 for clean / warnings / errors.
    ///
    /// Example:
    ///   tidegate auth check --config /etc/tidegate/tidegate.toml
    #[command(verbatim_doc_comment)]
    Check {
        /// The server's TOML configuration.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

pub(crate) fn run(args: AuthArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuthCommand::HashToken { token } => {
            let token = match token {
                Some(t) => t,
                None => read_token()?,
            };
            if token.is_empty() {
                anyhow::bail!("the token is empty");
            }
            println!("{}", tidegate_auth::hash_token(&token));
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::NewToken { principal } => {
            let token = tidegate_auth::generate_token()
                .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
            println!("token: {token}");
            println!();
            println!("[[auth.tokens]]");
            println!("principal = {}", toml_string(&principal));
            println!("hash = \"{}\"", tidegate_auth::hash_token(&token));
            Ok(ExitCode::SUCCESS)
        }
        AuthCommand::Check { config } => check(&config),
    }
}

fn read_token() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("token (then Enter):");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the token from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let config = ServeConfig::load(Some(path), std::env::vars(), &Overrides::default())?;
    let mut findings = tidegate_auth::lint(&config.auth);
    if config.auth.mode == tidegate_auth::AuthMode::None
        && !config.listen.ip().is_loopback()
        && !config.auth.allow_anonymous_remote
    {
        findings.push(tidegate_auth::Finding {
            severity: Severity::Error,
            message: format!(
                "listen is {} (not loopback) and auth.mode is none: the server refuses to start; \
                 choose auth.mode or set auth.allow_anonymous_remote = true",
                config.listen
            ),
        });
    }
    if config.auth.mode.uses_certificates() {
        if let Some(ca) = &config.auth.client_ca {
            if let Err(e) = tidegate_net::load_client_roots(ca) {
                findings.push(tidegate_auth::Finding {
                    severity: Severity::Error,
                    message: format!("auth.client_ca: {e}"),
                });
            }
        }
    }
    findings.sort_by_key(|f| f.severity);
    for finding in &findings {
        println!("{finding}");
    }
    let worst = findings.iter().map(|f| f.severity).min();
    Ok(match worst {
        None => {
            println!(
                "ok: auth.mode {:?}, {} token(s), {} JWT key(s), {} rule(s)",
                config.auth.mode,
                config.auth.tokens.len(),
                config.auth.jwt_keys.len(),
                config.auth.acl.len()
            );
            ExitCode::SUCCESS
        }
        Some(Severity::Warning) => ExitCode::from(1),
        Some(Severity::Error) => ExitCode::from(2),
    })
}
