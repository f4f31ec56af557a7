//! `tidegate topic create|delete|list|describe`.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use tidegate_client::TopicSettings;
use tidegate_core::config::{Duration as HumanDuration, Size};

use super::{block_on, topic_error, ConnectArgs, Format};

#[derive(Args, Debug)]
pub(crate) struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic. Settings not given take the server's (storage.* in
    /// docs/CONFIG.md).
    ///
    /// Examples:
    ///   tidegate topic create orders --partitions 8
    ///   tidegate topic create orders --partitions 8 --retention 7d --retention-bytes 50GiB
    ///   tidegate topic create jobs --partitions 4 --message-ttl 1h
    ///   tidegate topic create payments --partitions 4 --dedup-window 2m
    ///   tidegate topic create orders --partitions 8 --server 10.0.0.7:7441 --ca ca.pem
    #[command(verbatim_doc_comment)]
    Create {
        /// The topic name.
        name: String,
        /// How many partitions it has.
        #[arg(long, short, value_name = "N")]
        partitions: u32,
        /// Keep messages at least this long (whole segments go once their
        /// newest message is older).
        #[arg(long, value_name = "DURATION")]
        retention: Option<HumanDuration>,
        /// Keep at most about this much per partition.
        #[arg(long, value_name = "SIZE")]
        retention_bytes: Option<Size>,
        /// Roll segment files at this size (1MiB to 4GiB).
        #[arg(long, value_name = "SIZE")]
        segment_bytes: Option<Size>,
        /// Subscriptions do not deliver a message older than this (by its
        /// timestamp), as if its tg-expires-at had passed.
        #[arg(long, value_name = "DURATION")]
        message_ttl: Option<HumanDuration>,
        /// Store a message once when its tg-msg-id (produce --message-id)
        /// comes again within this long; up to 7d.
        #[arg(long, value_name = "DURATION")]
        dedup_window: Option<HumanDuration>,
    },
    /// Delete a topic and all its data.
    ///
    /// Examples:
    ///   tidegate topic delete orders
    #[command(verbatim_doc_comment)]
    Delete {
        /// The topic name.
        name: String,
    },
    /// List the topics and their partition counts.
    ///
    /// Examples:
    ///   tidegate topic list
    ///   tidegate topic list --format json      # [{"name":"orders","partitions":8}]
    #[command(verbatim_doc_comment)]
    List {
        /// `text` (a table) or `json` (one array).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a topic's partitions with their earliest, latest (high
    /// watermark) and durable offsets.
    ///
    /// Examples:
    ///   tidegate topic describe orders
    ///   tidegate topic describe orders --format json
    #[command(verbatim_doc_comment)]
    Describe {
        /// The topic name.
        name: String,
        /// `text` (a table) or `json` (one object).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub(crate) fn run(args: TopicArgs) -> anyhow::Result<()> {
    block_on(async move {
        let client = args.connect.connect().await?;
        let result = command(&client, args.command).await;
        client.close().await;
        result
    })
}

async fn command(client: &tidegate_client::Client, command: TopicCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention,
            retention_bytes,
            segment_bytes,
            message_ttl,
            dedup_window,
        } => {
            let settings = TopicSettings {
                retention: retention.map(HumanDuration::get),
                retention_bytes: retention_bytes.map(Size::bytes),
                segment_bytes: segment_bytes.map(Size::bytes),
                message_ttl: message_ttl.map(HumanDuration::get),
                dedup_window: dedup_window.map(HumanDuration::get),
            };
            client
                .create_topic_with(&name, partitions, &settings)
                .await
                .map_err(|e| topic_error("create topic", &name, e))?;
            eprintln!("created topic '{name}' with {partitions} partitions");
        }
        TopicCommand::Delete { name } => {
            client
                .delete_topic(&name)
                .await
                .map_err(|e| topic_error("delete topic", &name, e))?;
            eprintln!("deleted topic '{name}'");
        }
        TopicCommand::List { format } => {
            let mut topics = client.list_topics().await.map_err(|e| {
                let hint = super::auth_hint(&e).unwrap_or_default();
                anyhow::anyhow!("list topics: {e}{hint}")
            })?;
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            match format {
                Format::Json => {
                    let list: Vec<_> = topics
                        .iter()
                        .map(|t| json!({"name": t.name, "partitions": t.partitions}))
                        .collect();
                    writeln!(out, "{}", serde_json::Value::Array(list))?;
                }
                Format::Text => {
                    let width = topics.iter().map(|t| t.name.len()).max().unwrap_or(0);
                    let width = width.max("TOPIC".len());
                    writeln!(out, "{:width$}  PARTITIONS", "TOPIC")?;
                    for t in &topics {
                        writeln!(out, "{:width$}  {}", t.name, t.partitions)?;
                    }
                }
            }
        }
        TopicCommand::Describe { name, format } => {
            let d = client
                .describe_topic(&name)
                .await
                .map_err(|e| topic_error("describe topic", &name, e))?;
            match format {
                Format::Json => {
                    let partitions: Vec<_> = d
                        .partitions
                        .iter()
                        .map(|p| {
                            json!({
                                "partition": p.partition,
                                "earliest": p.earliest,
                                "latest": p.latest,
                                "durable": p.durable,
                            })
                        })
                        .collect();
                    let ms = |d: Option<std::time::Duration>| {
                        d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    };
                    let s = &d.settings;
                    let settings = json!({
                        "retention_ms": ms(s.retention),
                        "retention_bytes": s.retention_bytes,
                        "segment_bytes": s.segment_bytes,
                        "message_ttl_ms": ms(s.message_ttl),
                        "dedup_window_ms": ms(s.dedup_window),
                    });
                    let topic =
                        json!({"name": d.name, "partitions": partitions, "settings": settings});
                    writeln!(out, "{topic}")?;
                }
                Format::Text => {
                    writeln!(out, "topic {} ({} partitions)", d.name, d.partitions.len())?;
                    writeln!(out, "settings: {}", settings_line(&d.settings))?;
                    writeln!(
                        out,
                        "{:>9}  {:>20}  {:>20}  {:>20}",
                        "PARTITION", "EARLIEST", "LATEST", "DURABLE"
                    )?;
                    for p in &d.partitions {
                        writeln!(
                            out,
                            "{:>9}  {:>20}  {:>20}  {:>20}",
                            p.partition, p.earliest, p.latest, p.durable
                        )?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A topic's own settings in `topic create`'s terms; what it does not set
/// is the server's.
fn settings_line(s: &TopicSettings) -> String {
    let duration = |d: std::time::Duration| HumanDuration::new(d).to_string();
    let size = |n: u64| Size::from_bytes(n).to_string();
    let set: Vec<String> = [
        s.retention.map(|d| format!("retention {}", duration(d))),
        s.retention_bytes
            .map(|n| format!("retention-bytes {}", size(n))),
        s.segment_bytes
            .map(|n| format!("segment-bytes {}", size(n))),
        s.message_ttl
            .map(|d| format!("message-ttl {}", duration(d))),
        s.dedup_window
            .map(|d| format!("dedup-window {}", duration(d))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if set.is_empty() {
        "the server's".to_owned()
    } else {
        format!("{} (the rest the server's)", set.join(", "))
    }
}
