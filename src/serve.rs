//! `tidegate serve`: configuration, logging, signals, systemd, and the
//! server itself (`tidegate_core::server`).

use std::{net::SocketAddr, path::PathBuf, thread, time::Duration};

use anyhow::Context;
use clap::Args;
use tidegate_core::{
    config::{LogFormat, Overrides, ServeConfig},
    server::{self, Shutdown, Started},
    Reload,
};

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The TOML configuration file (see docs/CONFIG.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the data lives (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// QUIC address to serve (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin HTTP address (overrides `admin_listen`).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// `text` or `json` (overrides `log_format`).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        data_dir: args.data_dir,
        listen: args.listen,
        admin_listen: args.admin_listen,
        log_format: args.log_format,
    };
    let config = ServeConfig::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    let sources = Sources {
        file: args.config.clone(),
        overrides: overrides.clone(),
    };
    if args.print_config {
        print!("{}", config.to_toml_string()?);
        return Ok(());
    }
    init_logging(config.log_format);
    raise_open_files_limit();
    // The configuration was loaded before logging started, so say here
    // whether a disk probe's results are in play (explicit settings win).
    let probed = config.data_dir.join(tidegate_core::config::DISK_FILE_NAME);
    if probed.exists() {
        tracing::info!(
            write_chunk_bytes = %config.storage.write_chunk_bytes,
            write_concurrency = config.storage.write_concurrency,
            "storage writes: {} (from `tidegate tune disk`) applies to the keys not set explicitly",
            probed.display()
        );
    }
    let shutdown = Shutdown::new();
    let reload = Reload::new();
    watch_signals(shutdown.clone(), reload.clone(), sources, config.clone())?;
    server::run_with_reload(&config, shutdown, reload, announce).context("serving")?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Raises the open-files soft limit to the hard one. Every partition keeps
/// files open (docs/STORAGE.md, "Open files"), and the soft limit a shell
/// or a container starts with (often 1024) is meant to be raised by the
/// programs that need more; the systemd unit sets both (`LimitNOFILE`).
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-files soft limit"),
            Err(e) => tracing::warn!(%e, soft, hard, "cannot raise the open-files soft limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(%e, "cannot read the open-files limit"),
    }
}

/// Says where the server listens and how to use it, and tells systemd.
fn announce(started: &Started) {
    let cores: Vec<String> = started.shard_cores.iter().map(|c| c.to_string()).collect();
    let cert = started.cert_path.display();
    eprintln!(
        "tidegate listening on quic://{} ({} shard(s) on CPU {})",
        started.listen,
        started.shard_cores.len(),
        cores.join(",")
    );
    eprintln!("  data:        {}", started.data_dir.display());
    eprintln!("  admin:       http://{}/metrics", started.admin_listen);
    if started.cert_generated {
        eprintln!("  certificate: {cert} (self-signed for development, generated now)");
    } else {
        eprintln!("  certificate: {cert}");
    }
    eprintln!(
        "  publish:     echo hello | tidegate produce TOPIC --server {} --ca {cert}",
        started.listen
    );
    eprintln!(
        "  consume:     tidegate consume TOPIC --from earliest --server {} --ca {cert}",
        started.listen
    );
    eprintln!(
        "  topics:      tidegate topic create TOPIC --partitions 4 --server {} --ca {cert}",
        started.listen
    );
    notify(&[sd_notify::NotifyState::Ready]);
    start_watchdog();
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_env("TIDEGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd's journal, logs are JSON lines whatever the flag says.
    let json = matches!(format, LogFormat::Json) || std::env::var_os("JOURNAL_STREAM").is_some();
    // Colours only on a terminal: piped into a file or another program,
    // escape codes are noise.
    use std::io::IsTerminal;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Where the configuration came from, read again on SIGHUP.
struct Sources {
    file: Option<PathBuf>,
    overrides: Overrides,
}

/// SIGTERM or SIGINT starts a graceful stop (bounded: requests in flight get
/// up to 10 s, then every log is synced and closed); later signals are
/// ignored while it runs. SIGHUP reloads the `[auth]` section and the TLS
/// files (see [`reload`]).
fn watch_signals(
    shutdown: Shutdown,
    reload: Reload,
    sources: Sources,
    running: ServeConfig,
) -> anyhow::Result<()> {
    use signal_hook::{
        consts::{SIGHUP, SIGINT, SIGTERM},
        iterator::Signals,
    };
    let mut signals =
        Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing signal handlers")?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    reload_config(&reload, &sources, &running);
                    continue;
                }
                tracing::info!(
                    signal,
                    "stopping: finishing requests in flight, then syncing"
                );
                notify(&[sd_notify::NotifyState::Stopping]);
                shutdown.trigger();
                signals.handle().close();
                break;
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Reads the configuration again from the same file, environment and
/// flags, and applies its `[auth]` section and TLS files (certificate,
/// key, client CA) without a restart: established connections stay, new
/// ones get the new certificate, and every shard checks requests against
/// the new rules from its next request. Any other change waits for a
/// restart (and is said so). A configuration that does not load or
/// compile changes nothing.
fn reload_config(reload: &Reload, sources: &Sources, running: &ServeConfig) {
    notify(&[sd_notify::NotifyState::Reloading]);
    let loaded = ServeConfig::load(
        sources.file.as_deref(),
        std::env::vars(),
        &sources.overrides,
    );
    let outcome = loaded.map_err(anyhow::Error::from).and_then(|mut config| {
        // The data directory was made absolute at start; the development
        // certificate lives there.
        config.data_dir = std::path::absolute(&config.data_dir)?;
        reload.apply(&config)?;
        Ok(config)
    });
    match outcome {
        Ok(config) => {
            let mut others = config;
            others.auth = running.auth.clone();
            others.tls = running.tls.clone();
            others.data_dir = running.data_dir.clone();
            if others != *running {
                tracing::warn!(
                    "only [auth] and [tls] apply on reload; the other changes wait for a restart"
                );
            }
            tracing::info!("configuration reloaded: [auth] rules and TLS files applied");
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reload failed: the running configuration stays")
        }
    }
    notify(&[sd_notify::NotifyState::Ready]);
}

/// Pings systemd's watchdog at half its interval while the process runs.
fn start_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(10));
    let _ = thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            notify(&[sd_notify::NotifyState::Watchdog]);
            thread::sleep(every);
        });
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "systemd notify");
        }
    }
}
