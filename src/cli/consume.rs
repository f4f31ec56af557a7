//! `tidegate consume`: messages of a topic on stdout, one per line.

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use serde_json::{Map, Value};
use tidegate_client::{Client, Fetched, Message, OffsetSpec};
use tokio::sync::mpsc;

use super::{block_on, is_broken_pipe, topic_error, ConnectArgs, Format, Position};

/// Print the messages of a topic on stdout, one per line.
///
/// Text prints each message's value as it is stored (a tombstone prints an
/// empty line). JSON prints one object per line:
///   {"topic":..,"partition":..,"offset":..,"timestamp_ms":..,"key":..,
///    "headers":[{"name":..,"value":..}],"value":..}
/// with keys, values and header values as UTF-8 strings (null when
/// absent); one that is not valid UTF-8 is decoded lossily and also given
/// whole as base64 in "key_b64" / "value_b64".
///
/// Without --partition it reads every partition, one after the other in
/// partition order. Without --follow it stops at the end of the partitions
/// as they were when it started (or after --count messages); with
/// --follow it waits for new messages until interrupted (Ctrl-C).
///
/// Examples:
///   tidegate consume orders                          # everything stored now
///   tidegate consume orders --from latest --follow   # new messages, until Ctrl-C
///   tidegate consume orders --partition 3 --from 1200 --count 10
///   tidegate consume orders --from @1700000000000 --format json | jq .value
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub(crate) struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Read only this partition.
    #[arg(long, short, value_name = "P")]
    partition: Option<u32>,
    /// Where to start in each partition: `earliest`, `latest`, an offset,
    /// or `@` and a time: ms since the Unix epoch or RFC 3339
    /// (`@2024-05-01T12:00:00Z`).
    #[arg(long, value_name = "POSITION", default_value = "earliest")]
    from: Position,
    /// Stop after this many messages.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Keep waiting for new messages until interrupted.
    #[arg(long, short)]
    follow: bool,
    /// `text` (values) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Bytes asked for per fetch.
const FETCH_BYTES: u32 = 1 << 20;
/// How long a `--follow` fetch waits on the server for new messages.
const FOLLOW_WAIT: Duration = Duration::from_secs(10);
/// Fetches a `--follow` partition task may have ready ahead of printing.
const PREFETCH: usize = 4;

pub(crate) fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let result = block_on(async move {
        let client = args.connect.connect().await?;
        let result = consume(&client, &args).await;
        client.close().await;
        result
    });
    match result {
        // The reader went away (`| head`): not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// One partition to read: from `next` up to `end` (exclusive; none when
/// following).
struct Range {
    partition: u32,
    next: u64,
    end: Option<u64>,
}

async fn consume(client: &Client, args: &ConsumeArgs) -> anyhow::Result<()> {
    let topic = args.topic.as_str();
    let description = client
        .describe_topic(topic)
        .await
        .map_err(|e| topic_error("consume from topic", topic, e))?;
    let partitions: Vec<_> = match args.partition {
        Some(p) => {
            let info = description
                .partitions
                .iter()
                .find(|i| i.partition == p)
                .ok_or_else(|| {
                    anyhow!(
                        "consume from topic '{topic}': no partition {p} (unknown_partition); \
                         it has {} partitions",
                        description.partitions.len()
                    )
                })?;
            vec![*info]
        }
        None => description.partitions.clone(),
    };
    let mut ranges = Vec::with_capacity(partitions.len());
    for info in &partitions {
        let next = match args.from {
            Position::Earliest => info.earliest,
            Position::Latest => info.latest,
            Position::Offset(offset) => offset,
            Position::Time(ts) => client
                .list_offsets(topic, info.partition, OffsetSpec::Timestamp(ts))
                .await
                .map_err(|e| topic_error("consume from topic", topic, e))?,
        };
        ranges.push(Range {
            partition: info.partition,
            next,
            end: (!args.follow).then_some(info.latest),
        });
    }

    let mut printer = Printer {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        topic,
        format: args.format,
        remaining: args.count,
    };
    if args.follow {
        follow(client, topic, ranges, &mut printer).await
    } else {
        for range in ranges {
            read_range(client, topic, range, &mut printer).await?;
            if printer.done() {
                break;
            }
        }
        printer.out.flush()?;
        Ok(())
    }
}

/// Reads one partition up to its end (one-shot).
async fn read_range(
    client: &Client,
    topic: &str,
    mut range: Range,
    printer: &mut Printer<'_>,
) -> anyhow::Result<()> {
    let end = range.end.unwrap_or(u64::MAX);
    while range.next < end && !printer.done() {
        let fetched = client
            .fetch(
                topic,
                range.partition,
                range.next,
                FETCH_BYTES,
                Duration::ZERO,
            )
            .await
            .map_err(|e| {
                topic_error(
                    &format!(
                        "fetch partition {} at {} of topic",
                        range.partition, range.next
                    ),
                    topic,
                    e,
                )
            })?;
        printer.print(&fetched, Some(end))?;
        let next = fetched.next_offset();
        if fetched.is_empty() || next <= range.next {
            break;
        }
        range.next = next;
    }
    Ok(())
}

/// Reads every partition in its own task, long-polling, and prints what
/// comes until Ctrl-C or `--count`.
async fn follow(
    client: &Client,
    topic: &str,
    ranges: Vec<Range>,
    printer: &mut Printer<'_>,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Fetched>>(PREFETCH * ranges.len().max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for mut range in ranges {
        let client = client.clone();
        let topic = topic.to_owned();
        let tx = tx.clone();
        tasks.spawn(async move {
            loop {
                let fetched = client
                    .fetch(
                        &topic,
                        range.partition,
                        range.next,
                        FETCH_BYTES,
                        FOLLOW_WAIT,
                    )
                    .await
                    .map_err(|e| {
                        topic_error(
                            &format!(
                                "fetch partition {} at {} of topic",
                                range.partition, range.next
                            ),
                            &topic,
                            e,
                        )
                    });
                let stop = fetched.is_err();
                if let Ok(f) = &fetched {
                    range.next = f.next_offset();
                    if f.is_empty() {
                        continue;
                    }
                }
                if tx.send(fetched).await.is_err() || stop {
                    break;
                }
            }
        });
    }
    drop(tx);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let result = loop {
        tokio::select! {
            signal = &mut interrupted => {
                break signal.context("cannot wait for Ctrl-C");
            }
            fetched = rx.recv() => match fetched {
                Some(Ok(fetched)) => {
                    if let Err(e) = printer.print(&fetched, None).and_then(|()| Ok(printer.out.flush()?)) {
                        break Err(e);
                    }
                    if printer.done() {
                        break Ok(());
                    }
                }
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        }
    };
    tasks.abort_all();
    let flushed = printer.out.flush();
    result?;
    flushed?;
    Ok(())
}

struct Printer<'t> {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    topic: &'t str,
    format: Format,
    /// Messages still to print, with `--count`.
    remaining: Option<u64>,
}

impl Printer<'_> {
    fn done(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Prints the messages of `fetched` below `end`, up to the count.
    fn print(&mut self, fetched: &Fetched, end: Option<u64>) -> anyhow::Result<()> {
        for message in fetched.messages() {
            let message = message.map_err(|e| {
                anyhow!(
                    "reading partition {} of topic '{}': {e}",
                    fetched.partition,
                    self.topic
                )
            })?;
            if self.done() || end.is_some_and(|end| message.offset() >= end) {
                break;
            }
            self.print_one(&message)?;
            if let Some(n) = &mut self.remaining {
                *n -= 1;
            }
        }
        Ok(())
    }

    fn print_one(&mut self, message: &Message<'_>) -> anyhow::Result<()> {
        match self.format {
            Format::Text => {
                self.out.write_all(message.value().unwrap_or_default())?;
                self.out.write_all(b"\n")?;
            }
            Format::Json => {
                let mut object = Map::new();
                object.insert("topic".into(), self.topic.into());
                let record = Record {
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp_ms: message.timestamp_ms(),
                    key: message.key(),
                    value: message.value(),
                };
                record.put_json(&mut object, message.headers());
                write_json_line(&mut self.out, object)?;
            }
        }
        Ok(())
    }
}

/// A message's fields as `consume --format json` prints them, whatever
/// the message was read from (`sub pull` prints the same).
pub(super) struct Record<'a> {
    pub(super) partition: u32,
    pub(super) offset: u64,
    pub(super) timestamp_ms: i64,
    pub(super) key: Option<&'a [u8]>,
    pub(super) value: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// Adds `partition`, `offset`, `timestamp_ms`, `key`, `headers` and
    /// `value` to `object` (bytes as by [`put_bytes`]).
    pub(super) fn put_json(
        &self,
        object: &mut Map<String, Value>,
        headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) {
        object.insert("partition".into(), self.partition.into());
        object.insert("offset".into(), self.offset.into());
        object.insert("timestamp_ms".into(), self.timestamp_ms.into());
        put_bytes(object, "key", self.key);
        let headers: Vec<Value> = headers
            .map(|(name, value)| {
                let mut h = Map::new();
                h.insert("name".into(), name.into());
                put_bytes(&mut h, "value", Some(value));
                Value::Object(h)
            })
            .collect();
        object.insert("headers".into(), headers.into());
        put_bytes(object, "value", self.value);
    }
}

/// `object` as one line of JSON.
pub(super) fn write_json_line(
    out: &mut impl Write,
    object: Map<String, Value>,
) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, &Value::Object(object)).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// `name`: the bytes as a UTF-8 string (lossy), or null; plus `name_b64`
/// when they are not valid UTF-8.
fn put_bytes(object: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    let Some(bytes) = bytes else {
        object.insert(name.into(), Value::Null);
        return;
    };
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            object.insert(name.into(), s.into());
        }
        Err(_) => {
            object.insert(name.into(), String::from_utf8_lossy(bytes).into());
            object.insert(format!("{name}_b64"), base64(bytes).into());
        }
    }
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
