//! One run: set up the topic, start consumers then producers, measure the
//! window after the warmup, drain, verify, report.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tidegate_client::{Client, Credentials, Error, ErrorCode, Tls};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{Mode, RunArgs};
use crate::consumer;
use crate::cpustat;
use crate::hiccup;
use crate::producer::{Outcome, Producer};
use crate::report::{
    self, Beside, Flow, Host, Latencies, Percentiles, ProducerFigures, Report, Spectra, Throughput,
    Verify,
};
use crate::schedule::Schedule;
use crate::server::{self, Spawned};
use crate::stats::Shared;
use crate::subscriber;
use crate::verify::{self, SeqSet};

/// Counters at one moment, for rates over a window.
#[derive(Debug, Clone, Copy, Default)]
struct Snapshot {
    at_ns: u64,
    acked: u64,
    acked_bytes: u64,
    consumed: u64,
    consumed_bytes: u64,
}

impl Snapshot {
    fn take(shared: &Shared, clock: &Clock) -> Snapshot {
        Snapshot {
            at_ns: clock.now_ns(),
            acked: Shared::get(&shared.acked),
            acked_bytes: Shared::get(&shared.acked_bytes),
            consumed: Shared::get(&shared.consumed),
            consumed_bytes: Shared::get(&shared.consumed_bytes),
        }
    }
}

/// Runs the benchmark the arguments describe and returns its report.
pub fn run(args: &RunArgs) -> anyhow::Result<Report> {
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let pinning = Pinning::new(args.cpus.clone().map(|c| c.0));
    let runtime = {
        let pinning = pinning.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .on_thread_start(move || pinning.pin_this_thread())
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
    };
    let spawned = if args.spawn_server {
        let bin = server::locate(args.server_bin.as_deref())?;
        let spawned = Spawned::start(&bin, args.spawn_dir.as_deref())?;
        eprintln!("loadgen: started {} on {}", bin.display(), spawned.addr);
        Some(spawned)
    } else {
        None
    };
    let (addr, tls) = match &spawned {
        Some(s) => (s.addr, Tls::ca_file(&s.ca_file)),
        None => (
            args.server,
            Tls::from_flags(args.ca.as_deref(), args.insecure),
        ),
    };
    let tls = args.client_tls(tls);
    let about = About {
        started_at,
        config: serde_json::to_value(args).context("cannot record the configuration")?,
        host: Host {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            spawned_server: args.spawn_server,
        },
    };
    // Before this thread is pinned: `all` means the CPUs the process may
    // use, not the one loadgen's main thread is given.
    let watch_cpus = args
        .hiccups
        .resolve()
        .context("cannot list the CPUs to watch for hiccups")?;
    pinning.pin_this_thread();
    let handle = runtime.handle().clone();
    let result = runtime.block_on(measure(args, about, addr, tls, handle, pinning, watch_cpus));
    if let Some(spawned) = spawned {
        if let Err(e) = spawned.stop() {
            eprintln!("loadgen: {e:#}");
        }
    }
    result
}

/// What a report says about the run besides its measurements.
struct About {
    started_at: String,
    config: serde_json::Value,
    host: Host,
}

/// `--cpus`: each new thread takes the next CPU of the list in turn.
#[derive(Debug, Clone, Default)]
struct Pinning {
    cpus: Option<Arc<Vec<usize>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl Pinning {
    fn new(cpus: Option<Vec<usize>>) -> Pinning {
        Pinning {
            cpus: cpus.filter(|c| !c.is_empty()).map(Arc::new),
            next: Arc::default(),
        }
    }

    fn pin_this_thread(&self) {
        let Some(cpus) = &self.cpus else { return };
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cpu = cpus[i % cpus.len()];
        if let Err(e) = tidegate_affinity::pin_current_thread(cpu) {
            tracing::warn!("cannot pin a loadgen thread to CPU {cpu}: {e}");
        }
    }
}

async fn connect(
    addr: std::net::SocketAddr,
    tls: &Tls,
    credentials: Option<Credentials>,
) -> anyhow::Result<Client> {
    let connected = match credentials {
        Some(credentials) => Client::connect_with(addr, tls.clone(), credentials).await,
        None => Client::connect(addr, tls.clone()).await,
    };
    connected.with_context(|| format!("cannot connect to {addr}"))
}

/// Makes the topic, or checks the one there has the partitions asked for.
async fn ensure_topic(client: &Client, args: &RunArgs) -> anyhow::Result<()> {
    match client.describe_topic(&args.topic).await {
        Ok(topic) if topic.partitions.len() == args.partitions as usize => Ok(()),
        Ok(topic) => bail!(
            "topic {:?} exists with {} partitions, not {}; pass --partitions {} or another --topic",
            args.topic,
            topic.partitions.len(),
            args.partitions,
            topic.partitions.len()
        ),
        Err(Error::Server {
            code: ErrorCode::UnknownTopic,
            ..
        }) => client
            .create_topic(&args.topic, args.partitions)
            .await
            .map(|_| ())
            .with_context(|| format!("cannot create topic {:?}", args.topic)),
        Err(e) => Err(e).context("cannot look up the topic"),
    }
}

/// A fresh subscription of `topic` for the run, starting at its end.
async fn create_subscription(client: &Client, topic: &str) -> anyhow::Result<String> {
    let name = subscriber::subscription_name(topic);
    // One left by an interrupted run would start where that run stopped.
    match client.delete_subscription(&name).await {
        Ok(())
        | Err(Error::Server {
            code: ErrorCode::UnknownSubscription,
            ..
        }) => {}
        Err(e) => return Err(e).context("cannot remove an old loadgen subscription"),
    }
    let config = tidegate_client::SubscriptionConfig {
        // Leases far longer than a pull-check-ack round: none runs out.
        ack_deadline_ms: 60_000,
        ..tidegate_client::SubscriptionConfig::new(&name, topic)
    };
    client
        .create_subscription(&config)
        .await
        .with_context(|| format!("cannot create subscription {name:?}"))?;
    Ok(name)
}

async fn measure(
    args: &RunArgs,
    about: About,
    addr: std::net::SocketAddr,
    tls: Tls,
    runtime: tokio::runtime::Handle,
    pinning: Pinning,
    watch_cpus: Vec<usize>,
) -> anyhow::Result<Report> {
    let mut producer_clients = Vec::new();
    for _ in 0..args.connections() {
        producer_clients.push(connect(addr, &tls, args.credentials()).await?);
    }
    ensure_topic(&producer_clients[0], args).await?;
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    // Identities before the clock starts: one InitProducer per producer.
    let mut identities = Vec::new();
    for id in 0..args.producers {
        let client = &producer_clients[args.connection_of(id) as usize];
        identities.push(match args.idempotent {
            true => Some(
                client
                    .init_producer(None)
                    .await
                    .context("cannot get an idempotent producer identity")?,
            ),
            false => None,
        });
    }

    // Consumers first, positioned at the end, so they see every message.
    let subscription = match args.mode {
        Mode::Subscription | Mode::Push if args.consumers > 0 => {
            Some(create_subscription(&producer_clients[0], &topic).await?)
        }
        _ => None,
    };
    let consumer_count = match args.mode {
        Mode::Stream => args.consumers.min(args.partitions),
        Mode::Subscription | Mode::Push => args.consumers,
    };
    let mut consumers = Vec::new();
    let mut subscribers = Vec::new();
    for c in 0..consumer_count {
        let partitions = (0..args.partitions)
            .filter(|p| p % consumer_count == c)
            .collect();
        let client = connect(addr, &tls, args.credentials()).await?;
        match args.mode {
            Mode::Stream => {
                consumers.push(consumer::open(client, &topic, partitions, args.fetch_bytes).await?)
            }
            Mode::Subscription | Mode::Push => subscribers.push(client),
        }
    }

    // A stream consumer of the whole topic beside the subscribers.
    let beside = match args.mode {
        Mode::Subscription | Mode::Push if args.with_stream && args.consumers > 0 => {
            let client = connect(addr, &tls, args.credentials()).await?;
            let all = (0..args.partitions).collect();
            Some(consumer::open(client, &topic, all, args.fetch_bytes).await?)
        }
        _ => None,
    };

    let clock = Clock::start(args.warmup, args.duration);
    let hiccups = match watch_cpus.is_empty() {
        true => None,
        false => Some(
            hiccup::Meter::start(&watch_cpus, clock).context("cannot start a hiccup watcher")?,
        ),
    };
    let shared = Arc::new(Shared::new(args.producers, clock.end_ns()));
    let beside_shared = Arc::new(Shared::new(args.producers, clock.end_ns()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut consumer_tasks: Vec<_> = consumers
        .into_iter()
        .map(|c| tokio::spawn(consumer::run(c, clock, shared.clone(), stop_rx.clone())))
        .collect();
    if let Some(name) = &subscription {
        consumer_tasks.extend(subscribers.into_iter().map(|client| {
            let source = match args.mode {
                Mode::Push => subscriber::SourceKind::Push(args.push_credits),
                _ => subscriber::SourceKind::Pull(args.pulls),
            };
            let run = subscriber::run(
                client,
                name.clone(),
                source,
                clock,
                shared.clone(),
                stop_rx.clone(),
            );
            tokio::spawn(run)
        }));
    }

    let beside_task = beside.map(|c| {
        let run = consumer::run(c, clock, beside_shared.clone(), stop_rx.clone());
        tokio::spawn(run)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let mut producer_threads = Vec::new();
    for id in 0..args.producers {
        // Producer p starts at partition p and cycles through all of them.
        let partitions = (0..args.partitions)
            .map(|i| (id + i) % args.partitions)
            .collect();
        let schedule = args
            .rate
            .map(|rate| Schedule::new(0, rate / f64::from(args.producers)));
        let identity = identities.get(id as usize).copied().flatten();
        let producer = Producer {
            id,
            client: producer_clients[args.connection_of(id) as usize].clone(),
            runtime: runtime.clone(),
            topic: topic.clone(),
            partitions,
            ack: args.ack.into(),
            identity,
            msg_size: args.msg_size,
            batch: args.batch,
            linger: args.linger,
            in_flight: args.in_flight,
            schedule,
            clock,
            shared: shared.clone(),
            stop: stop.clone(),
        };
        let pinning = pinning.clone();
        let thread = std::thread::Builder::new()
            .name(format!("producer-{id}"))
            .spawn(move || {
                pinning.pin_this_thread();
                producer.run()
            })
            .context("cannot start a producer thread")?;
        producer_threads.push(thread);
    }

    let progress = tokio::spawn(progress(clock, shared.clone()));
    tokio::time::sleep_until(clock.instant(clock.warm_ns()).into()).await;
    let (warm, warm_beside) = (
        Snapshot::take(&shared, &clock),
        Snapshot::take(&beside_shared, &clock),
    );
    let ticks_warm = cpustat::read();
    tokio::time::sleep_until(clock.instant(clock.end_ns()).into()).await;
    let (end, end_beside) = (
        Snapshot::take(&shared, &clock),
        Snapshot::take(&beside_shared, &clock),
    );
    let cpu_busy = cpustat::busy(&ticks_warm, &cpustat::read());
    progress.abort();
    // Producers finish what is in flight; one that lags (open loop over
    // capacity, a stalled server) is stopped after the drain timeout, and
    // what it never sent is reported as unsent.
    {
        let stop = stop.clone();
        let grace = args.drain_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    let outcomes: Vec<Outcome> = tokio::task::spawn_blocking(move || {
        producer_threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .collect()
    })
    .await
    .context("producer threads")?;
    if outcomes.len() != args.producers as usize {
        bail!("a producer thread panicked");
    }
    // The window is over: the watchers have stopped or are about to.
    let hiccups = match hiccups {
        Some(meter) => tokio::task::spawn_blocking(move || meter.finish())
            .await
            .context("hiccup watchers")?,
        None => Vec::new(),
    };
    let acked: HashMap<u32, SeqSet> = outcomes.iter().map(|o| (o.id, o.acked.clone())).collect();
    let acked_total: u64 = acked.values().map(SeqSet::len).sum();
    let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
    let unsent: u64 = outcomes.iter().map(|o| o.unsent).sum();
    if unsent > 0 {
        eprintln!(
            "loadgen: {unsent} messages fell due but were never sent: the server (or loadgen) \
             could not keep up with --rate"
        );
    }

    if consumer_count > 0 {
        // Everything sent, not only what was acknowledged: a batch stored
        // whose answer was lost still arrives, and an acknowledged one may
        // still be on its way when the counts first match.
        drain(&shared, Shared::get(&shared.sent), args.drain_timeout).await;
        if beside_task.is_some() {
            drain(
                &beside_shared,
                Shared::get(&shared.sent),
                args.drain_timeout,
            )
            .await;
        }
    }
    let _ = stop_tx.send(true);
    let mut tallies = Vec::new();
    for task in consumer_tasks {
        tallies.push(task.await.context("consumer task")??);
    }
    let verdict = verify::verdict(&acked, &tallies);
    let beside_verdict = match beside_task {
        Some(task) => {
            let tally = task.await.context("stream consumer task")??;
            Some(verify::verdict(&acked, &[tally]))
        }
        None => None,
    };
    if let Some(name) = &subscription {
        if let Err(e) = producer_clients[0].delete_subscription(name).await {
            eprintln!("loadgen: could not delete subscription {name:?}: {e}");
        }
    }
    for client in &producer_clients {
        client.close().await;
    }

    let window_s = (end.at_ns.saturating_sub(warm.at_ns)) as f64 / 1e9;
    let per_s = |n: u64| {
        if window_s > 0.0 {
            n as f64 / window_s
        } else {
            0.0
        }
    };
    let produce_ack = shared.produce_ack();
    let end_to_end = Shared::snapshot(&shared.end_to_end);
    let (throttle_hints, throttled_ms_total) = shared.throttled();
    let timeline = match shared.timeline.lock() {
        Ok(timeline) => timeline.samples(),
        Err(_) => Vec::new(),
    };
    // What the producers did, against what a consumer saw.
    let sent = Shared::get(&shared.sent);
    let verify = |v: &crate::verify::Verdict| Verify {
        sent,
        acked: acked_total,
        failed,
        unsent,
        consumed: v.consumed,
        lost: v.lost,
        duplicated: v.duplicated,
        out_of_order: v.out_of_order,
        foreign: v.foreign,
    };
    Ok(Report {
        version: report::REPORT_VERSION,
        started_at: about.started_at,
        config: about.config,
        host: about.host,
        measured_s: window_s,
        throughput: Throughput {
            produce_msgs_per_s: per_s(end.acked - warm.acked),
            produce_mb_per_s: per_s(end.acked_bytes - warm.acked_bytes) / 1e6,
            consume_msgs_per_s: per_s(end.consumed - warm.consumed),
            consume_mb_per_s: per_s(end.consumed_bytes - warm.consumed_bytes) / 1e6,
            target_msgs_per_s: args.rate,
        },
        latency_us: Latencies {
            produce_ack: Percentiles::of(&produce_ack),
            end_to_end: Percentiles::of(&end_to_end),
        },
        spectrum: Spectra {
            produce_ack: report::spectrum(&produce_ack),
            end_to_end: report::spectrum(&end_to_end),
        },
        verify: Verify {
            // Without consumers nothing was checked, so nothing is lost.
            lost: if consumer_count > 0 { verdict.lost } else { 0 },
            ..verify(&verdict)
        },
        flow: Flow {
            throttle_hints,
            throttled_ms_total,
        },
        producers: producer_figures(args, &shared, window_s),
        timeline,
        stream_beside: beside_verdict.map(|v| Beside {
            consume_msgs_per_s: per_s(end_beside.consumed - warm_beside.consumed),
            consume_mb_per_s: per_s(end_beside.consumed_bytes - warm_beside.consumed_bytes) / 1e6,
            end_to_end: Percentiles::of(&Shared::snapshot(&beside_shared.end_to_end)),
            verify: verify(&v),
        }),
        hiccups,
        cpu_busy,
    })
}

/// Each producer's acknowledged rate and latency over the measured window.
fn producer_figures(args: &RunArgs, shared: &Shared, window_s: f64) -> Vec<ProducerFigures> {
    (0u32..)
        .zip(&shared.producers)
        .map(|(id, stats)| {
            let acked = Shared::get(&stats.acked_measured);
            let latency = Percentiles::of(&Shared::snapshot(&stats.produce_ack));
            ProducerFigures {
                id,
                connection: args.connection_of(id),
                acked,
                acked_msgs_per_s: if window_s > 0.0 {
                    acked as f64 / window_s
                } else {
                    0.0
                },
                produce_ack_p50_us: latency.p50,
                produce_ack_p99_us: latency.p99,
                throttle_hints: Shared::get(&stats.throttle_hints),
                throttled_ms_total: Shared::get(&stats.throttled_ms),
            }
        })
        .collect()
}

/// Waits until the consumers have read as many distinct messages as were
/// sent, or until they make no progress for `timeout`.
async fn drain(shared: &Shared, sent: u64, timeout: Duration) {
    let mut last = Shared::get(&shared.consumed);
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let consumed = Shared::get(&shared.consumed);
        if consumed >= sent {
            return;
        }
        if consumed != last {
            last = consumed;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= timeout {
            eprintln!(
                "loadgen: consumers stalled at {consumed} of {sent} sent messages for {timeout:?}"
            );
            return;
        }
    }
}

/// Once a second on a terminal: rates over the last second and the p99s
/// of the measured window so far.
async fn progress(clock: Clock, shared: Arc<Shared>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = Snapshot::take(&shared, &clock);
    let mut last_hints = 0;
    loop {
        tick.tick().await;
        let now = Snapshot::take(&shared, &clock);
        let (hints, throttled_ms) = shared.throttled();
        let secs = (now.at_ns - last.at_ns) as f64 / 1e9;
        let phase = if now.at_ns < clock.warm_ns() {
            "warmup"
        } else {
            "measure"
        };
        let p99 = |h: crate::stats::Latency| {
            if h.count() == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{:.2} ms",
                    h.histogram().value_at_quantile(0.99) as f64 / 1e6
                )
            }
        };
        eprintln!(
            "[{:>4.0}s {phase}] produce {:>10.0} msg/s {:>7.1} MB/s p99 ack {} | consume {:>10.0} msg/s p99 e2e {} | throttled {} (+{}) {} ms",
            now.at_ns as f64 / 1e9,
            (now.acked - last.acked) as f64 / secs,
            (now.acked_bytes - last.acked_bytes) as f64 / secs / 1e6,
            p99(shared.produce_ack()),
            (now.consumed - last.consumed) as f64 / secs,
            p99(Shared::snapshot(&shared.end_to_end)),
            hints,
            hints - last_hints,
            throttled_ms,
        );
        last = now;
        last_hints = hints;
    }
}
