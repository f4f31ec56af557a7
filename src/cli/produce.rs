//! `tidegate produce`: one message per input line, through the batching
//! producer; a summary on stderr.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::{Args, ValueEnum};
use serde_json::json;
use tidegate_client::{Ack, Client, Producer, ProducerConfig, ProducerRecord, Receipt};
use tidegate_core::config::Duration as HumanDuration;
use tokio::sync::mpsc;

use super::{block_on, topic_error, ConnectArgs, Format};

/// Produce one message per line of stdin (or of a file) to a topic.
///
/// Each line (without its line ending) is one message's value; lines are
/// batched. A summary goes to stderr: the message count and, per
/// partition, the first and last offsets; and when the server asked the
/// producer to slow down (flow control), how often and for how long.
///
/// Examples:
///   seq 1000 | tidegate produce orders
///   tidegate produce orders --key customer-7 --ack written < events.txt
///   tidegate produce orders --partition 3 --file events.txt --format json
///   tidegate produce orders --header content-type=application/json --header schema-version=2
///   tidegate produce jobs --delay 10m --ttl 1h --priority 7 < jobs.txt
///   echo paid | tidegate produce orders --message-id order-7-paid
///
/// --delay, --ttl, --priority and --message-id set the headers
/// subscriptions act on (docs/SEMANTICS.md §5, §6): tg-deliver-after and
/// tg-expires-at (Unix ms, from the time each line is sent), tg-priority
/// and tg-msg-id.
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub(crate) struct ProduceArgs {
    /// The topic.
    topic: String,
    /// A key for every message; it picks the partition (as the server
    /// and Kafka do). Without it messages are spread over the partitions.
    #[arg(long, short, value_name = "K")]
    key: Option<String>,
    /// Send every message to this partition (wins over --key).
    #[arg(long, short, value_name = "P")]
    partition: Option<u32>,
    /// A header `NAME=VALUE` on every message (repeat for more; names may
    /// repeat, order is kept). Subscription filters match on headers.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Deliver each message to subscriptions no sooner than this after it
    /// is sent, at most 7d (header `tg-deliver-after`, Unix ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    delay: Option<HumanDuration>,
    /// Each message expires this long after it is sent: subscriptions
    /// that have not delivered it by then never do (header
    /// `tg-expires-at`, Unix ms). Above 0s.
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    ttl: Option<HumanDuration>,
    /// Priority level, 0 (lowest) to 9, for subscriptions created with
    /// --priority; without it a message counts as 4 (header
    /// `tg-priority`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=PRIORITY_MAX))]
    priority: Option<u8>,
    /// A message id, for deduplication on topics with a dedup window
    /// (header `tg-msg-id`). Every message of this run gets the same one,
    /// so it is meant for a single message.
    #[arg(long, value_name = "ID", value_parser = parse_message_id)]
    message_id: Option<String>,
    /// How far each batch must get before the server acknowledges it.
    #[arg(long, value_enum, default_value_t = AckArg::Durable)]
    ack: AckArg,
    /// Read the lines from this file instead of stdin.
    #[arg(long, short, value_name = "F")]
    file: Option<PathBuf>,
    /// The summary on stderr: `text` or `json` (one object).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum AckArg {
    /// Once the server has read the request (no offsets come back).
    None,
    /// Once the batch is written to the log.
    Written,
    /// Once the batch is fdatasynced.
    Durable,
}

impl From<AckArg> for Ack {
    fn from(ack: AckArg) -> Ack {
        match ack {
            AckArg::None => Ack::None,
            AckArg::Written => Ack::Written,
            AckArg::Durable => Ack::Durable,
        }
    }
}

/// `NAME=VALUE` (the first `=` splits; the value may hold more, or be
/// empty); the name must not be empty.
fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("'{s}': expected NAME=VALUE with a name")),
    }
}

/// Header names the flags above set (docs/SEMANTICS.md §5, §6).
const HEADER_DELIVER_AFTER: &str = "tg-deliver-after";
const HEADER_EXPIRES_AT: &str = "tg-expires-at";
const HEADER_PRIORITY: &str = "tg-priority";
const HEADER_MESSAGE_ID: &str = "tg-msg-id";
/// Highest `tg-priority` level.
const PRIORITY_MAX: i64 = 9;
/// Longest delay the server honours.
const DELAY_MAX: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

fn parse_delay(s: &str) -> Result<HumanDuration, String> {
    let delay: HumanDuration = s.parse().map_err(|e| format!("{e}"))?;
    if delay.get() > DELAY_MAX {
        return Err(format!("'{s}': a delay is at most 7d (the server's limit)"));
    }
    Ok(delay)
}

fn parse_ttl(s: &str) -> Result<HumanDuration, String> {
    let ttl: HumanDuration = s.parse().map_err(|e| format!("{e}"))?;
    if ttl.get().is_zero() {
        return Err(format!(
            "'{s}': a message would expire as it is sent; give more than 0s"
        ));
    }
    Ok(ttl)
}

fn parse_message_id(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a message id must not be empty".to_owned());
    }
    Ok(s.to_owned())
}

impl ProduceArgs {
    /// Refuses a flag's header also given with `--header`: which one a
    /// subscription reads would be a surprise.
    fn check_headers(&self) -> Result<(), String> {
        let flags = [
            (HEADER_DELIVER_AFTER, "--delay", self.delay.is_some()),
            (HEADER_EXPIRES_AT, "--ttl", self.ttl.is_some()),
            (HEADER_PRIORITY, "--priority", self.priority.is_some()),
            (HEADER_MESSAGE_ID, "--message-id", self.message_id.is_some()),
        ];
        for (header, flag, set) in flags {
            if set && self.headers.iter().any(|(name, _)| name == header) {
                return Err(format!(
                    "both {flag} and --header {header}=...: give one of them\n"
                ));
            }
        }
        Ok(())
    }

    /// The flags' headers for a message sent at `now_ms` (Unix ms).
    fn flag_headers(&self, now_ms: i64) -> Vec<(&'static str, String)> {
        let at = |d: HumanDuration| {
            let ms = i64::try_from(d.as_millis_u64()).unwrap_or(i64::MAX);
            now_ms.saturating_add(ms).to_string()
        };
        let mut headers = Vec::new();
        if let Some(delay) = self.delay {
            headers.push((HEADER_DELIVER_AFTER, at(delay)));
        }
        if let Some(ttl) = self.ttl {
            headers.push((HEADER_EXPIRES_AT, at(ttl)));
        }
        if let Some(priority) = self.priority {
            headers.push((HEADER_PRIORITY, priority.to_string()));
        }
        if let Some(id) = &self.message_id {
            headers.push((HEADER_MESSAGE_ID, id.clone()));
        }
        headers
    }
}

/// Now, in ms since the Unix epoch.
fn unix_now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Lines queued between the reading thread and the producer.
const LINE_QUEUE: usize = 4096;

pub(crate) fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if let Err(conflict) = args.check_headers() {
        // A usage error, as clap's own: exit code 2.
        clap::Error::raw(clap::error::ErrorKind::ArgumentConflict, conflict).exit();
    }
    let input: Box<dyn Read + Send> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    block_on(async move {
        let client = args.connect.connect().await?;
        let result = produce(&client, &args, input).await;
        client.close().await;
        result
    })
}

#[derive(Default)]
struct Summary {
    messages: u64,
    failed: u64,
    first_error: Option<tidegate_client::Error>,
    /// Per partition: messages, first and last offset.
    partitions: BTreeMap<u32, (u64, Option<u64>, Option<u64>)>,
    /// Produce answers with a throttle hint, and the hints' total (ms).
    throttle_hints: u64,
    throttled_ms: u64,
}

async fn produce(
    client: &Client,
    args: &ProduceArgs,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<()> {
    let topic = args.topic.as_str();
    // Fails fast, with a clear message, on an unknown topic or partition.
    let description = client
        .describe_topic(topic)
        .await
        .map_err(|e| topic_error("produce to topic", topic, e))?;
    if let Some(p) = args.partition {
        let count = description.partitions.len();
        if p as usize >= count {
            return Err(anyhow!(
                "produce to topic '{topic}': no partition {p} (unknown_partition); \
                 it has {count} partitions, 0 to {}",
                count.saturating_sub(1)
            ));
        }
    }

    let (line_tx, mut line_rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(LINE_QUEUE);
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = stop.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(input);
        loop {
            let mut line = Vec::new();
            let sent = match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    line_tx.blocking_send(Ok(line))
                }
                Err(e) => {
                    let _ = line_tx.blocking_send(Err(e));
                    break;
                }
            };
            if sent.is_err() || reader_stop.load(Ordering::Relaxed) {
                break;
            }
        }
    });

    let producer = Producer::new(
        client.clone(),
        ProducerConfig {
            ack: args.ack.into(),
            ..ProducerConfig::default()
        },
    );
    let (receipt_tx, mut receipt_rx) = mpsc::unbounded_channel::<Receipt>();
    let collector_stop = stop.clone();
    let collector = tokio::spawn(async move {
        let mut summary = Summary::default();
        while let Some(receipt) = receipt_rx.recv().await {
            match receipt.await {
                Ok(delivered) => {
                    summary.messages += 1;
                    let entry = summary
                        .partitions
                        .entry(delivered.partition)
                        .or_insert((0, None, None));
                    entry.0 += 1;
                    if let Some(offset) = delivered.offset {
                        entry.1 = Some(entry.1.map_or(offset, |o: u64| o.min(offset)));
                        entry.2 = Some(entry.2.map_or(offset, |o: u64| o.max(offset)));
                    }
                }
                Err(e) => {
                    summary.failed += 1;
                    collector_stop.store(true, Ordering::Relaxed);
                    summary.first_error.get_or_insert(e);
                }
            }
        }
        summary
    });

    let mut read_error = None;
    let mut send_error = None;
    while let Some(line) = line_rx.recv().await {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        let mut record = ProducerRecord::new(line);
        if let Some(key) = &args.key {
            record = record.with_key(key.clone().into_bytes());
        }
        if let Some(p) = args.partition {
            record = record.with_partition(p);
        }
        for (name, value) in &args.headers {
            record = record.with_header(name.clone(), value.clone().into_bytes());
        }
        for (name, value) in args.flag_headers(unix_now_ms()) {
            record = record.with_header(name, value.into_bytes());
        }
        match producer.send(topic, record).await {
            Ok(receipt) => {
                let _ = receipt_tx.send(receipt);
            }
            Err(e) => {
                send_error = Some(e);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(line_rx);
    // Every answer is in after the flush, so the throttle counts are final.
    producer.flush().await;
    let throttle_hints = producer.throttle_hints();
    let throttled = producer.throttled();
    producer.close().await;
    drop(receipt_tx);
    let mut summary = collector.await.context("the receipt task failed")?;
    summary.throttle_hints = throttle_hints;
    summary.throttled_ms = u64::try_from(throttled.as_millis()).unwrap_or(u64::MAX);
    if let Some(e) = send_error {
        summary.failed += 1;
        summary.first_error.get_or_insert(e);
    }
    print_summary(topic, &summary, args.format);

    if let Some(e) = summary.first_error {
        return Err(topic_error(
            &format!("{} message(s) not stored; produce to topic", summary.failed),
            topic,
            e,
        ));
    }
    if let Some(e) = read_error {
        return Err(anyhow!(
            "reading {}: {e}",
            args.file
                .as_ref()
                .map_or_else(|| "stdin".to_owned(), |f| f.display().to_string())
        ));
    }
    Ok(())
}

fn print_summary(topic: &str, summary: &Summary, format: Format) {
    match format {
        Format::Json => {
            let partitions: Vec<_> = summary
                .partitions
                .iter()
                .map(|(p, (messages, first, last))| {
                    json!({
                        "partition": p,
                        "messages": messages,
                        "first_offset": first,
                        "last_offset": last,
                    })
                })
                .collect();
            let mut object = json!({
                "topic": topic,
                "messages": summary.messages,
                "failed": summary.failed,
                "partitions": partitions,
            });
            if summary.throttle_hints > 0 {
                object["throttle_hints"] = json!(summary.throttle_hints);
                object["throttled_ms"] = json!(summary.throttled_ms);
            }
            eprintln!("{object}");
        }
        Format::Text => {
            let mut line = format!(
                "produced {} message(s) to '{topic}', {} partition(s)",
                summary.messages,
                summary.partitions.len()
            );
            if summary.failed > 0 {
                line.push_str(&format!(", {} failed", summary.failed));
            }
            eprintln!("{line}");
            if let Some(throttled) = throttle_line(summary) {
                eprintln!("{throttled}");
            }
            for (p, (messages, first, last)) in &summary.partitions {
                match (first, last) {
                    (Some(first), Some(last)) => {
                        eprintln!("  partition {p}: {messages} message(s), offsets {first}..{last}")
                    }
                    _ => eprintln!("  partition {p}: {messages} message(s) (ack none: no offsets)"),
                }
            }
        }
    }
}

/// What the summary says about the server's throttle hints; nothing when
/// there were none.
fn throttle_line(summary: &Summary) -> Option<String> {
    (summary.throttle_hints > 0).then(|| {
        format!(
            "  throttled by the server {} time(s), {} ms in total (flow control: \
             the server asked to slow down)",
            summary.throttle_hints, summary.throttled_ms
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_mentions_throttling_only_when_there_was_some() {
        let mut summary = Summary::default();
        assert_eq!(throttle_line(&summary), None);
        summary.throttle_hints = 3;
        summary.throttled_ms = 1_020;
        let line = throttle_line(&summary).unwrap_or_default();
        assert!(line.contains("3 time(s)"), "{line}");
        assert!(line.contains("1020 ms"), "{line}");
    }

    fn parse(flags: &[&str]) -> Result<ProduceArgs, clap::error::ErrorKind> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            produce: ProduceArgs,
        }
        let mut argv = vec!["produce", "orders"];
        argv.extend_from_slice(flags);
        <Cli as clap::Parser>::try_parse_from(argv)
            .map(|c| c.produce)
            .map_err(|e| e.kind())
    }

    #[test]
    fn delivery_flags_become_headers_relative_to_the_send_time() {
        let Ok(args) = parse(&[
            "--delay",
            "1m",
            "--ttl",
            "1h",
            "--priority",
            "9",
            "--message-id",
            "m-1",
        ]) else {
            panic!("the flags parse")
        };
        assert_eq!(args.check_headers(), Ok(()));
        assert_eq!(
            args.flag_headers(1_000),
            vec![
                (HEADER_DELIVER_AFTER, "61000".to_owned()),
                (HEADER_EXPIRES_AT, "3601000".to_owned()),
                (HEADER_PRIORITY, "9".to_owned()),
                (HEADER_MESSAGE_ID, "m-1".to_owned()),
            ]
        );
        assert_eq!(parse(&[]).map(|a| a.flag_headers(1_000)), Ok(vec![]));
    }

    #[test]
    fn delivery_flags_out_of_range_are_usage_errors() {
        use clap::error::ErrorKind::ValueValidation;
        assert!(parse(&["--priority", "0"]).is_ok());
        assert_eq!(parse(&["--priority", "10"]).err(), Some(ValueValidation));
        assert!(parse(&["--delay", "7d"]).is_ok());
        assert_eq!(parse(&["--delay", "7d 1s"]).err(), Some(ValueValidation));
        assert_eq!(parse(&["--ttl", "0s"]).err(), Some(ValueValidation));
        assert_eq!(parse(&["--message-id", ""]).err(), Some(ValueValidation));
        let twice = parse(&["--priority", "1", "-H", "tg-priority=2"]);
        assert!(twice.is_ok_and(|a| a.check_headers().is_err()));
    }
}
