//! `tidegate sub create|list|describe|delete|pull|redrive`: subscriptions, queue
//! style (docs/SEMANTICS.md §5).

use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Map, Value};
use tidegate_client::{
    AckId, Client, Error, ErrorCode, ReceivedMessage, StartPosition, Subscription,
    SubscriptionConfig, SubscriptionDescription,
};
use tidegate_core::config::Duration as HumanDuration;

use super::consume::{write_json_line, Record};
use super::{auth_hint, block_on, is_broken_pipe, topic_error, ConnectArgs, Format, Position};

#[derive(Args, Debug)]
pub(crate) struct SubArgs {
    #[command(subcommand)]
    command: SubCommand,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Subcommand, Debug)]
enum SubCommand {
    Create(CreateArgs),
    /// List subscriptions (name, topic, ack deadline, dead letters,
    /// filter).
    ///
    /// Examples:
    ///   tidegate sub list
    ///   tidegate sub list --topic orders --format json
    #[command(verbatim_doc_comment)]
    List {
        /// Only the subscriptions of this topic.
        #[arg(long, short, value_name = "TOPIC")]
        topic: Option<String>,
        /// `text` (a table) or `json` (one array).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a subscription's definition and, per partition, its window,
    /// leases and backlog.
    ///
    /// Per partition: every offset below FLOOR is handled (acked, filtered
    /// out, expired or dead-lettered); CURSOR is the next offset read into
    /// the window; LATEST the partition's high watermark; OUTSTANDING the
    /// messages leased to subscribers now; UNHANDLED the offsets of the
    /// window not handled yet; BACKLOG = LATEST - CURSOR + UNHANDLED, the
    /// messages still to be handled.
    ///
    /// Examples:
    ///   tidegate sub describe billing
    ///   tidegate sub describe billing --format json | jq .backlog
    #[command(verbatim_doc_comment)]
    Describe {
        /// The subscription.
        name: String,
        /// `text` (tables) or `json` (one object).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Delete a subscription and its acknowledgement state (the topic's
    /// messages stay).
    ///
    /// Examples:
    ///   tidegate sub delete billing
    #[command(verbatim_doc_comment)]
    Delete {
        /// The subscription.
        name: String,
    },
    Pull(PullArgs),
    /// Move a subscription's dead letters back to its topic, to be
    /// delivered again (with a fresh attempt count).
    ///
    /// It takes the messages of the subscription's dead-letter topic that
    /// were dead-lettered by this subscription and not redriven before, and
    /// republishes each, durably, to the partition it came from, with its
    /// key, value and headers; its tg-dlq-* headers are replaced by
    /// `tg-redrive-for: NAME`, so the topic's other subscriptions pass over
    /// it. Progress is kept as the group `__redrive.NAME` on the
    /// dead-letter topic: a redrive cut short and run again goes on where
    /// it stopped (a message may then be republished twice, never lost).
    ///
    /// Examples:
    ///   tidegate sub redrive billing
    ///   tidegate sub redrive billing --max 100 --format json
    #[command(verbatim_doc_comment)]
    Redrive {
        /// The subscription.
        name: String,
        /// Move at most this many dead letters.
        #[arg(long, short = 'n', value_name = "N")]
        max: Option<u64>,
        /// `text` (a summary on stderr) or `json` (the summary as one
        /// object on stdout).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Create a subscription: a durable cursor over a topic with its own
/// acknowledgements; every subscription of a topic gets every message.
///
/// A message is leased to the subscriber that pulled it for the ack
/// deadline; not acked by then (or nacked), it is delivered again after
/// the backoff (--backoff MIN..MAX, doubling with each attempt). With
/// --max-deliveries and --dead-letter, a message delivered that often goes
/// to the dead-letter topic instead. --filter takes an expression on
/// headers (docs/FILTERS.md); messages it rejects are never delivered.
///
/// Examples:
///   tidegate sub create orders billing
///   tidegate sub create orders billing-eu --filter 'region = "eu"' --from earliest
///   tidegate sub create orders billing --ack-deadline 2m --max-deliveries 5 --dead-letter orders.dlq
///   tidegate sub create orders billing --ordering --backoff 500ms..30s
///   tidegate sub create orders reminders --delay 15m
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
struct CreateArgs {
    /// The topic it receives.
    topic: String,
    /// The subscription's name (the topic naming rule).
    name: String,
    /// Deliver only messages whose headers match this expression
    /// (docs/FILTERS.md), e.g. `region = "eu" AND tier IN ("gold")`.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    /// The lease of a delivery, 1s to 12h.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    ack_deadline: HumanDuration,
    /// Deliveries after which a message goes to --dead-letter (1 to 1000).
    #[arg(long, value_name = "N", requires = "dead_letter")]
    max_deliveries: Option<u32>,
    /// The dead-letter topic (not the subscription's own).
    #[arg(long, value_name = "TOPIC", requires = "max_deliveries")]
    dead_letter: Option<String>,
    /// Send messages found expired (past their --ttl) to --dead-letter
    /// too, instead of dropping them.
    #[arg(long, requires = "dead_letter")]
    dead_letter_expired: bool,
    /// Deliver every message this long after it was published (at most
    /// 7d; a later tg-deliver-after still counts).
    #[arg(long, value_name = "DURATION")]
    delay: Option<HumanDuration>,
    /// Deliver the messages of a key in order, one at a time.
    #[arg(long)]
    ordering: bool,
    /// Deliver higher `tg-priority` headers (0 to 9) first.
    #[arg(long)]
    priority: bool,
    /// Redelivery backoff: after the first failed delivery, then doubling
    /// up to the second (at most 12h).
    #[arg(long, value_name = "MIN..MAX", default_value = "1s..60s", value_parser = parse_backoff)]
    backoff: Backoff,
    /// Where it starts in each partition: `earliest`, `latest` (only new
    /// messages), an offset, or `@` and a time: ms since the Unix epoch or
    /// RFC 3339 (`@2024-05-01T12:00:00Z`).
    #[arg(long, value_name = "POSITION", default_value = "latest")]
    from: Position,
}

/// Pull messages of a subscription, print them on stdout, and ack them.
///
/// One pull: up to --max messages, waiting up to --wait for the first.
/// After printing, the messages are acked (--ack, the default: they are
/// not delivered again), nacked (--nack: delivered again after the
/// backoff, with the next attempt number) or left leased (--no-ack: they
/// come again when their ack deadline passes). A summary goes to stderr.
///
/// Text prints one line per message:
///   PARTITION@OFFSET attempt=N ack_id=HEX<TAB>VALUE
/// JSON prints one object per line, as `tidegate consume` does, with
/// "subscription" in place of "topic" and "attempt" and "ack_id" added:
///   {"subscription":..,"partition":..,"offset":..,"timestamp_ms":..,
///    "key":..,"headers":[..],"value":..,"attempt":..,"ack_id":..}
///
/// Examples:
///   tidegate sub pull billing
///   tidegate sub pull billing --max 100 --wait 10s --format json
///   tidegate sub pull billing --no-ack        # look without taking them
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
#[command(group(ArgGroup::new("settle").args(["ack", "nack", "no_ack"])))]
struct PullArgs {
    /// The subscription.
    name: String,
    /// At most this many messages (1 to 10000).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10)]
    max: u32,
    /// How long to wait for a first message (at most 60s; 0s answers at
    /// once).
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    wait: HumanDuration,
    /// Ack the messages after printing them (the default).
    #[arg(long)]
    ack: bool,
    /// Nack them: they are delivered again after the backoff.
    #[arg(long)]
    nack: bool,
    /// Leave them leased: they come again after the ack deadline.
    #[arg(long)]
    no_ack: bool,
    /// `text` (a line per message) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// `--backoff MIN..MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backoff {
    min: Duration,
    max: Duration,
}

fn parse_backoff(s: &str) -> Result<Backoff, String> {
    let (min, max) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}': expected MIN..MAX, e.g. 1s..60s"))?;
    let parse = |d: &str| {
        d.parse::<HumanDuration>()
            .map(HumanDuration::get)
            .map_err(|e| format!("'{s}': {e}"))
    };
    let backoff = Backoff {
        min: parse(min)?,
        max: parse(max)?,
    };
    if backoff.min > backoff.max {
        return Err(format!("'{s}': the minimum is over the maximum"));
    }
    Ok(backoff)
}

pub(crate) fn run(args: SubArgs) -> anyhow::Result<()> {
    let result = block_on(async move {
        let client = args.connect.connect().await?;
        let result = command(&client, args.command).await;
        client.close().await;
        result
    });
    match result {
        // The reader went away (`| head`): not an error.
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

async fn command(client: &Client, command: SubCommand) -> anyhow::Result<()> {
    match command {
        SubCommand::Create(args) => create(client, &args).await,
        SubCommand::List { topic, format } => list(client, topic.as_deref(), format).await,
        SubCommand::Describe { name, format } => describe(client, &name, format).await,
        SubCommand::Delete { name } => {
            client
                .delete_subscription(&name)
                .await
                .map_err(|e| sub_error("delete subscription", &name, e))?;
            eprintln!("deleted subscription '{name}'");
            Ok(())
        }
        SubCommand::Pull(args) => pull(client, &args).await,
        SubCommand::Redrive { name, max, format } => redrive(client, &name, max, format).await,
    }
}

async fn redrive(
    client: &Client,
    name: &str,
    max: Option<u64>,
    format: Format,
) -> anyhow::Result<()> {
    let done = client
        .redrive(name, max)
        .await
        .map_err(|e| sub_error("redrive subscription", name, e))?;
    match format {
        Format::Json => {
            let summary = json!({ "subscription": name, "moved": done.moved, "skipped": done.skipped });
            writeln!(std::io::stdout().lock(), "{summary}")?;
        }
        Format::Text => eprintln!(
            "redrove {} dead letters of subscription '{name}' back to its topic ({} other messages passed over)",
            done.moved, done.skipped
        ),
    }
    Ok(())
}

/// Whole milliseconds of `d`, saturating (the protocol's range checks
/// then refuse it with the field's name).
fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn start_position(from: Position) -> StartPosition {
    match from {
        Position::Earliest => StartPosition::Earliest,
        Position::Latest => StartPosition::Latest,
        Position::Offset(offset) => StartPosition::Offset(offset),
        Position::Time(ms) => StartPosition::Timestamp(ms),
    }
}

async fn create(client: &Client, args: &CreateArgs) -> anyhow::Result<()> {
    let filter = args.filter.as_deref().unwrap_or_default();
    let config = SubscriptionConfig {
        name: &args.name,
        topic: &args.topic,
        filter,
        ack_deadline_ms: ms(args.ack_deadline.get()),
        max_deliveries: args.max_deliveries.unwrap_or(0),
        dead_letter_topic: args.dead_letter.as_deref().unwrap_or_default(),
        ordering: args.ordering,
        priority: args.priority,
        backoff_min_ms: ms(args.backoff.min),
        backoff_max_ms: ms(args.backoff.max),
        delivery_delay_ms: args.delay.map_or(0, |d| ms(d.get())),
        dead_letter_expired: args.dead_letter_expired,
        start: start_position(args.from),
    };
    match client.create_subscription(&config).await {
        Ok(()) => {
            eprintln!(
                "created subscription '{}' on topic '{}'",
                args.name, args.topic
            );
            Ok(())
        }
        Err(e) if e.code() == Some(ErrorCode::InvalidFilter) => {
            let caret = filter_caret(filter, &e.to_string()).unwrap_or_default();
            Err(anyhow!(
                "create subscription '{}': {e}{caret}\n(the filter language: docs/FILTERS.md)",
                args.name
            ))
        }
        Err(e) if e.code() == Some(ErrorCode::UnknownTopic) => Err(topic_error(
            &format!("create subscription '{}' on topic", args.name),
            &args.topic,
            e,
        )),
        Err(e) => Err(sub_error("create subscription", &args.name, e)),
    }
}

/// The filter on a line of its own with a caret under the byte the
/// server's message points at (`at byte N`), when it names one.
fn filter_caret(filter: &str, message: &str) -> Option<String> {
    let (_, after) = message.split_once("at byte ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let position: usize = digits.parse().ok()?;
    let before = filter.get(..position)?;
    // Columns in characters; a tab would be wider than the caret's space.
    if filter.contains(['\n', '\t']) {
        return None;
    }
    let column = before.chars().count();
    Some(format!("\n  {filter}\n  {}^", " ".repeat(column)))
}

/// A client error about subscription `name`, with a hint a person can act
/// on.
fn sub_error(what: &str, name: &str, e: Error) -> anyhow::Error {
    if let Some(hint) = auth_hint(&e) {
        return anyhow!("{what} '{name}': {e}{hint}");
    }
    let hint = match e.code() {
        Some(ErrorCode::UnknownSubscription) => {
            format!("; no subscription is named '{name}' (`tidegate sub list` shows them)")
        }
        Some(ErrorCode::SubscriptionExists) => format!(
            "; a subscription named '{name}' exists (`tidegate sub describe {name}` shows it)"
        ),
        _ => String::new(),
    };
    anyhow!("{what} '{name}': {e}{hint}")
}

fn start_json(start: StartPosition) -> Value {
    match start {
        StartPosition::Earliest => "earliest".into(),
        StartPosition::Latest => "latest".into(),
        StartPosition::Offset(offset) => json!({ "offset": offset }),
        StartPosition::Timestamp(ms) => json!({ "timestamp_ms": ms }),
    }
}

/// `--from`'s spelling of a start position.
fn start_text(start: StartPosition) -> String {
    match start {
        StartPosition::Earliest => "earliest".to_owned(),
        StartPosition::Latest => "latest".to_owned(),
        StartPosition::Offset(offset) => offset.to_string(),
        StartPosition::Timestamp(ms) => format!("@{ms}"),
    }
}

fn subscription_json(s: &Subscription) -> Value {
    json!({
        "name": s.name,
        "topic": s.topic,
        "filter": s.filter,
        "ack_deadline_ms": s.ack_deadline.as_millis() as u64,
        "max_deliveries": s.max_deliveries,
        "dead_letter_topic": s.dead_letter_topic,
        "ordering": s.ordering,
        "priority": s.priority,
        "backoff_min_ms": s.backoff_min.as_millis() as u64,
        "backoff_max_ms": s.backoff_max.as_millis() as u64,
        "delivery_delay_ms": s.delivery_delay.as_millis() as u64,
        "dead_letter_expired": s.dead_letter_expired,
        "start": start_json(s.start),
    })
}

/// A duration as flags take it (`30s`, `1m 30s`).
fn human(d: Duration) -> String {
    HumanDuration::new(d).to_string()
}

async fn list(client: &Client, topic: Option<&str>, format: Format) -> anyhow::Result<()> {
    let mut subs = client
        .list_subscriptions(topic)
        .await
        .map_err(|e| match topic {
            Some(topic) => topic_error("list subscriptions of topic", topic, e),
            None => {
                let hint = auth_hint(&e).unwrap_or_default();
                anyhow!("list subscriptions: {e}{hint}")
            }
        })?;
    subs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let list: Vec<Value> = subs.iter().map(subscription_json).collect();
            writeln!(out, "{}", Value::Array(list))?;
        }
        Format::Text => print_list_text(&mut out, &subs)?,
    }
    out.flush()?;
    Ok(())
}

/// `N x -> TOPIC`, or `-` without dead letters.
fn dead_letters(s: &Subscription) -> String {
    match &s.dead_letter_topic {
        Some(topic) => format!("{}x -> {topic}", s.max_deliveries),
        None => "-".to_owned(),
    }
}

fn print_list_text(out: &mut impl Write, subs: &[Subscription]) -> anyhow::Result<()> {
    let width = |f: fn(&Subscription) -> usize, title: &str| {
        subs.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let name_width = width(|s| s.name.len(), "NAME");
    let topic_width = width(|s| s.topic.len(), "TOPIC");
    let dlq_width = width(|s| dead_letters(s).len(), "DEAD LETTERS");
    writeln!(
        out,
        "{:name_width$}  {:topic_width$}  {:>12}  {:dlq_width$}  FILTER",
        "NAME", "TOPIC", "ACK DEADLINE", "DEAD LETTERS"
    )?;
    for s in subs {
        let line = format!(
            "{:name_width$}  {:topic_width$}  {:>12}  {:dlq_width$}  {}",
            s.name,
            s.topic,
            human(s.ack_deadline),
            dead_letters(s),
            s.filter.as_deref().unwrap_or("-")
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

async fn describe(client: &Client, name: &str, format: Format) -> anyhow::Result<()> {
    let d = client
        .describe_subscription(name)
        .await
        .map_err(|e| sub_error("describe subscription", name, e))?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let partitions: Vec<Value> = d
                .partitions
                .iter()
                .map(|p| {
                    json!({
                        "partition": p.partition,
                        "floor": p.floor,
                        "cursor": p.cursor,
                        "latest": p.latest,
                        "outstanding": p.outstanding,
                        "unhandled": p.unhandled,
                        "backlog": SubscriptionDescription::backlog(p),
                    })
                })
                .collect();
            let object = json!({
                "subscription": subscription_json(&d.subscription),
                "partitions": partitions,
                "backlog": d.total_backlog(),
            });
            writeln!(out, "{object}")?;
        }
        Format::Text => print_describe_text(&mut out, &d)?,
    }
    out.flush()?;
    Ok(())
}

fn print_describe_text(out: &mut impl Write, d: &SubscriptionDescription) -> anyhow::Result<()> {
    let s = &d.subscription;
    writeln!(
        out,
        "subscription {}  topic {}  backlog {}",
        s.name,
        s.topic,
        d.total_backlog()
    )?;
    let mut settings = vec![
        format!("ack deadline {}", human(s.ack_deadline)),
        format!("backoff {}..{}", human(s.backoff_min), human(s.backoff_max)),
        format!("from {}", start_text(s.start)),
    ];
    if let Some(topic) = &s.dead_letter_topic {
        settings.push(format!(
            "dead letters to {topic} after {} deliveries",
            s.max_deliveries
        ));
    }
    if s.dead_letter_expired {
        settings.push("expired ones too".to_owned());
    }
    if !s.delivery_delay.is_zero() {
        settings.push(format!("delivery delay {}", human(s.delivery_delay)));
    }
    if s.ordering {
        settings.push("ordering by key".to_owned());
    }
    if s.priority {
        settings.push("priority".to_owned());
    }
    writeln!(out, "{}", settings.join(", "))?;
    writeln!(out, "filter {}", s.filter.as_deref().unwrap_or("-"))?;
    writeln!(
        out,
        "{:>9}  {:>20}  {:>20}  {:>20}  {:>11}  {:>9}  {:>20}",
        "PARTITION", "FLOOR", "CURSOR", "LATEST", "OUTSTANDING", "UNHANDLED", "BACKLOG"
    )?;
    for p in &d.partitions {
        writeln!(
            out,
            "{:>9}  {:>20}  {:>20}  {:>20}  {:>11}  {:>9}  {:>20}",
            p.partition,
            p.floor,
            p.cursor,
            p.latest,
            p.outstanding,
            p.unhandled,
            SubscriptionDescription::backlog(p)
        )?;
    }
    Ok(())
}

/// What `pull` does with the messages once printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Nack,
    Leave,
}

impl PullArgs {
    fn settle(&self) -> Settle {
        match (self.nack, self.no_ack) {
            (true, _) => Settle::Nack,
            (_, true) => Settle::Leave,
            _ => Settle::Ack,
        }
    }
}

async fn pull(client: &Client, args: &PullArgs) -> anyhow::Result<()> {
    let name = args.name.as_str();
    let messages = client
        .pull(name, args.max, args.wait.get())
        .await
        .map_err(|e| sub_error("pull from subscription", name, e))?;
    if messages.is_empty() {
        eprintln!(
            "no messages in subscription '{name}' (waited {})",
            args.wait
        );
        return Ok(());
    }
    let ids: Vec<AckId> = messages.iter().map(|m| m.ack_id).collect();
    let printed = print_pulled(name, &messages, args.format);
    let settle = if printed.is_err() {
        // Not shown, so not handled: deliver them again soon.
        Settle::Nack
    } else {
        args.settle()
    };
    let settled = settle_pulled(client, name, &ids, settle).await;
    printed?;
    settled
}

fn print_pulled(
    subscription: &str,
    messages: &[ReceivedMessage],
    format: Format,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for m in messages {
        match format {
            Format::Text => {
                write!(
                    out,
                    "{}@{} attempt={} ack_id={}\t",
                    m.partition, m.offset, m.attempt, m.ack_id
                )?;
                out.write_all(m.value.as_deref().unwrap_or_default())?;
                out.write_all(b"\n")?;
            }
            Format::Json => write_json_line(&mut out, pulled_json(subscription, m))?,
        }
    }
    out.flush()?;
    Ok(())
}

fn pulled_json(subscription: &str, m: &ReceivedMessage) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("subscription".into(), subscription.into());
    let record = Record {
        partition: m.partition,
        offset: m.offset,
        timestamp_ms: m.timestamp_ms,
        key: m.key.as_deref(),
        value: m.value.as_deref(),
    };
    let headers = m.headers.iter().map(|(n, v)| (n.as_str(), &v[..]));
    record.put_json(&mut object, headers);
    object.insert("attempt".into(), m.attempt.into());
    object.insert("ack_id".into(), m.ack_id.to_string().into());
    object
}

async fn settle_pulled(
    client: &Client,
    name: &str,
    ids: &[AckId],
    settle: Settle,
) -> anyhow::Result<()> {
    let results = match settle {
        Settle::Ack => client.ack(name, ids).await,
        Settle::Nack => client.nack(name, ids).await,
        Settle::Leave => {
            eprintln!(
                "pulled {} message(s) from '{name}', left leased: they are delivered again \
                 after the ack deadline",
                ids.len()
            );
            return Ok(());
        }
    };
    let verb = if settle == Settle::Ack { "ack" } else { "nack" };
    let results = results.map_err(|e| sub_error(&format!("{verb} messages of"), name, e))?;
    let refused: Vec<String> = ids
        .iter()
        .zip(&results)
        .filter_map(|(id, r)| r.err().map(|code| format!("{id}: {code}")))
        .collect();
    let done = ids.len() - refused.len();
    eprintln!(
        "pulled {} message(s) from '{name}', {verb}ed {done}",
        ids.len()
    );
    if refused.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "{verb} refused for {} message(s) of '{name}' (lease_expired: the lease was over; the \
         message is delivered again): {}",
        refused.len(),
        refused.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn backoff_takes_two_durations_with_units_in_order() {
        assert_eq!(
            parse_backoff("1s..60s"),
            Ok(Backoff {
                min: Duration::from_secs(1),
                max: Duration::from_secs(60)
            })
        );
        assert_eq!(
            parse_backoff("500ms..1m 30s").map(|b| (b.min, b.max)),
            Ok((Duration::from_millis(500), Duration::from_secs(90)))
        );
        for bad in ["1s", "1..60", "60s..1s", "..1s", "1s..", "soon..later"] {
            assert!(parse_backoff(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_invalid_filter_gets_a_caret_under_the_byte_the_server_names() {
        let filter = "région = 'eu' AND";
        let message = "server error invalid_filter: at byte 18: expected a predicate";
        let expected = format!("\n  {filter}\n  {}^", " ".repeat(17));
        assert_eq!(filter_caret(filter, message), Some(expected));
        let at_r = "at byte 4: unknown operator";
        assert_eq!(
            filter_caret("a = b", at_r),
            Some("\n  a = b\n      ^".to_owned())
        );
        assert_eq!(
            filter_caret(filter, "server error invalid_filter: empty"),
            None
        );
        assert_eq!(filter_caret(filter, "at byte 99: past the end"), None);
        assert_eq!(filter_caret(filter, "at byte 2: inside é"), None);
    }

    #[test]
    fn pulled_messages_print_as_consume_does_plus_attempt_and_ack_id() {
        let m = ReceivedMessage {
            ack_id: AckId::from([0xab; 16]),
            attempt: 3,
            partition: 1,
            offset: 7,
            timestamp_ms: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"\xff")),
            headers: vec![("region".into(), Bytes::from_static(b"eu"))],
        };
        let object = Value::Object(pulled_json("billing", &m));
        assert_eq!(
            object,
            json!({
                "subscription": "billing",
                "partition": 1,
                "offset": 7,
                "timestamp_ms": 1_700_000_000_000_i64,
                "key": "k",
                "headers": [{"name": "region", "value": "eu"}],
                "value": "\u{fffd}",
                "value_b64": "/w==",
                "attempt": 3,
                "ack_id": "ab".repeat(16),
            })
        );
    }

    #[test]
    fn pull_acks_by_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            pull: PullArgs,
        }
        let args = |flags: &[&str]| {
            let mut argv = vec!["pull", "billing"];
            argv.extend_from_slice(flags);
            let cli = <Cli as clap::Parser>::try_parse_from(argv);
            cli.map(|c| c.pull.settle()).map_err(|e| e.kind())
        };
        assert_eq!(args(&[]), Ok(Settle::Ack));
        assert_eq!(args(&["--ack"]), Ok(Settle::Ack));
        assert_eq!(args(&["--nack"]), Ok(Settle::Nack));
        assert_eq!(args(&["--no-ack"]), Ok(Settle::Leave));
        assert!(args(&["--ack", "--nack"]).is_err());
    }

    #[test]
    fn start_positions_come_from_from() {
        assert_eq!(start_position(Position::Earliest), StartPosition::Earliest);
        assert_eq!(
            start_position(Position::Offset(5)),
            StartPosition::Offset(5)
        );
        assert_eq!(
            start_position(Position::Time(1_700_000_000_000)),
            StartPosition::Timestamp(1_700_000_000_000)
        );
        assert_eq!(start_text(StartPosition::Timestamp(5)), "@5");
    }
}
