//! `tidegate group list|describe|reset-offsets`: consumer groups, their
//! committed offsets and lag (docs/SEMANTICS.md §4).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tidegate_client::{Client, Error, ErrorCode, GroupInfo, OffsetSpec, PartitionInfo};

use super::{auth_hint, block_on, topic_error, ConnectArgs, Format, Position};

#[derive(Args, Debug)]
pub(crate) struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
    #[command(flatten)]
    connect: ConnectArgs,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List the groups that have members now (group, topic, members).
    ///
    /// A group without members is not listed; its committed offsets stay
    /// (`tidegate group describe GROUP --topic TOPIC` shows them).
    ///
    /// Examples:
    ///   tidegate group list
    ///   tidegate group list --format json    # [{"group":"billing","topic":"orders","members":2}]
    #[command(verbatim_doc_comment)]
    List {
        /// `text` (a table) or `json` (one array).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show a group's committed offsets, lag and members.
    ///
    /// A table of the partitions, then the members and what they hold.
    /// Per partition: COMMITTED is the next offset the group will consume
    /// (`-` if it never committed), LATEST the high watermark, LAG is
    /// LATEST - COMMITTED (`-` without a commit: where the group starts
    /// then depends on its members' reset policy), MEMBER the member
    /// holding it (`-` for none).
    ///
    /// The topic is the one the group's members consume; a group without
    /// members needs --topic.
    ///
    /// Examples:
    ///   tidegate group describe billing
    ///   tidegate group describe billing --topic orders --format json
    #[command(verbatim_doc_comment)]
    Describe {
        /// The group.
        group: String,
        /// The topic whose offsets to show; needed when the group has no
        /// members (otherwise it must be the members' topic).
        #[arg(long, short, value_name = "TOPIC")]
        topic: Option<String>,
        /// `text` (tables) or `json` (one object).
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    ResetOffsets(ResetArgs),
}

/// Move a group's committed offsets of a topic (the group must have no
/// members).
///
/// Every partition of the topic, or those of --partition. Only a group
/// without members can be reset: stop its consumers first
/// (`tidegate group describe GROUP` shows them). Prints the plan on
/// stdout (partition, old committed offset, new one) and then commits it,
/// unless --dry-run. An explicit offset is clamped to each partition's
/// earliest..latest, and the plan says where it was.
///
/// Examples:
///   tidegate group reset-offsets billing --topic orders --to earliest --dry-run
///   tidegate group reset-offsets billing --topic orders --to latest
///   tidegate group reset-offsets billing --topic orders --to 1200 --partition 3
///   tidegate group reset-offsets billing --topic orders --to @2024-05-01T12:00:00Z
///   tidegate group reset-offsets billing --topic orders --to @1714564800000 --format json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
struct ResetArgs {
    /// The group.
    group: String,
    /// The topic whose offsets to reset.
    #[arg(long, short, value_name = "TOPIC")]
    topic: String,
    /// The new position: `earliest`, `latest`, an offset, or `@` and a
    /// time, RFC 3339 (`@2024-05-01T12:00:00Z`) or ms since the Unix epoch
    /// (`@1714564800000`), meaning the first message at or after it
    /// (latest when there is none).
    #[arg(long, value_name = "POSITION")]
    to: Position,
    /// Reset only these partitions (repeat the flag, or `-p 0,3`).
    #[arg(long, short, value_name = "P", value_delimiter = ',')]
    partition: Vec<u32>,
    /// Print the plan and commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// The plan as `text` (a table) or `json` (one object).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Offsets per CommitOffsets request (the protocol's bound).
const COMMIT_ENTRIES_MAX: usize = 4096;

pub(crate) fn run(args: GroupArgs) -> anyhow::Result<()> {
    block_on(async move {
        let client = args.connect.connect().await?;
        let result = command(&client, args.command).await;
        client.close().await;
        result
    })
}

async fn command(client: &Client, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::List { format } => list(client, format).await,
        GroupCommand::Describe {
            group,
            topic,
            format,
        } => describe(client, &group, topic.as_deref(), format).await,
        GroupCommand::ResetOffsets(args) => reset(client, &args).await,
    }
}

/// A client error about `group`, with a hint a person can act on.
fn group_error(what: &str, group: &str, e: Error) -> anyhow::Error {
    let hint = auth_hint(&e).unwrap_or_default();
    anyhow!("{what} '{group}': {e}{hint}")
}

async fn list(client: &Client, format: Format) -> anyhow::Result<()> {
    let mut groups = client.list_groups().await.map_err(|e| {
        let hint = auth_hint(&e).unwrap_or_default();
        anyhow!("list groups: {e}{hint}")
    })?;
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let list: Vec<_> = groups
                .iter()
                .map(|g| json!({"group": g.group, "topic": g.topic, "members": g.members}))
                .collect();
            writeln!(out, "{}", Value::Array(list))?;
        }
        Format::Text => {
            let group_width = groups.iter().map(|g| g.group.len()).max().unwrap_or(0);
            let group_width = group_width.max("GROUP".len());
            let topic_width = groups.iter().map(|g| g.topic.len()).max().unwrap_or(0);
            let topic_width = topic_width.max("TOPIC".len());
            writeln!(
                out,
                "{:group_width$}  {:topic_width$}  MEMBERS",
                "GROUP", "TOPIC"
            )?;
            for g in &groups {
                writeln!(
                    out,
                    "{:group_width$}  {:topic_width$}  {}",
                    g.group, g.topic, g.members
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The topic to look at: the members' one, or `--topic` for a group
/// without members.
fn group_topic(group: &str, info: &GroupInfo, topic: Option<&str>) -> anyhow::Result<String> {
    match (info.topic.as_str(), topic) {
        ("", Some(topic)) => Ok(topic.to_owned()),
        ("", None) => Err(anyhow!(
            "group '{group}' has no members, so its topic is unknown: pass --topic TOPIC \
             to see its committed offsets of that topic"
        )),
        (members, Some(topic)) if members != topic => Err(anyhow!(
            "group '{group}': its members consume topic '{members}', not '{topic}' \
             (leave out --topic)"
        )),
        (members, _) => Ok(members.to_owned()),
    }
}

/// One partition's line of `describe`.
struct PartitionRow<'a> {
    partition: u32,
    committed: Option<u64>,
    earliest: u64,
    latest: u64,
    member: Option<&'a str>,
}

impl PartitionRow<'_> {
    /// `latest - committed`; unknown without a commit.
    fn lag(&self) -> Option<u64> {
        self.committed.map(|c| self.latest.saturating_sub(c))
    }
}

async fn describe(
    client: &Client,
    group: &str,
    topic: Option<&str>,
    format: Format,
) -> anyhow::Result<()> {
    let info = client
        .describe_group(group)
        .await
        .map_err(|e| group_error("describe group", group, e))?;
    let topic = group_topic(group, &info, topic)?;
    let what = format!("describe group '{group}' on topic");
    let description = client
        .describe_topic(&topic)
        .await
        .map_err(|e| topic_error(&what, &topic, e))?;
    let committed: BTreeMap<u32, Option<u64>> = client
        .fetch_offsets(group, &topic, &[])
        .await
        .map_err(|e| topic_error(&what, &topic, e))?
        .into_iter()
        .collect();
    let holders: BTreeMap<u32, &str> = info
        .members
        .iter()
        .flat_map(|(id, partitions)| partitions.iter().map(move |p| (*p, id.as_str())))
        .collect();
    let rows: Vec<PartitionRow<'_>> = description
        .partitions
        .iter()
        .map(|p| PartitionRow {
            partition: p.partition,
            committed: committed.get(&p.partition).copied().flatten(),
            earliest: p.earliest,
            latest: p.latest,
            member: holders.get(&p.partition).copied(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => print_describe_json(&mut out, group, &topic, &info, &rows)?,
        Format::Text => print_describe_text(&mut out, group, &topic, &info, &rows)?,
    }
    out.flush()?;
    Ok(())
}

fn print_describe_json(
    out: &mut impl Write,
    group: &str,
    topic: &str,
    info: &GroupInfo,
    rows: &[PartitionRow<'_>],
) -> anyhow::Result<()> {
    let members: Vec<_> = info
        .members
        .iter()
        .map(|(id, partitions)| json!({"member_id": id, "partitions": partitions}))
        .collect();
    let partitions: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "partition": r.partition,
                "committed": r.committed,
                "earliest": r.earliest,
                "latest": r.latest,
                "lag": r.lag(),
                "member": r.member,
            })
        })
        .collect();
    let object = json!({
        "group": group,
        "topic": topic,
        "generation": info.generation,
        "members": members,
        "partitions": partitions,
    });
    writeln!(out, "{object}")?;
    Ok(())
}

fn print_describe_text(
    out: &mut impl Write,
    group: &str,
    topic: &str,
    info: &GroupInfo,
    rows: &[PartitionRow<'_>],
) -> anyhow::Result<()> {
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    writeln!(
        out,
        "group {group}  topic {topic}  generation {}  members {}",
        info.generation,
        info.members.len()
    )?;
    writeln!(
        out,
        "{:>9}  {:>20}  {:>20}  {:>20}  MEMBER",
        "PARTITION", "COMMITTED", "LATEST", "LAG"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:>9}  {:>20}  {:>20}  {:>20}  {}",
            r.partition,
            dash(r.committed),
            r.latest,
            dash(r.lag()),
            r.member.unwrap_or("-")
        )?;
    }
    if info.members.is_empty() {
        return Ok(());
    }
    let width = info.members.iter().map(|(id, _)| id.len()).max();
    let width = width.unwrap_or(0).max("MEMBER".len());
    writeln!(out)?;
    writeln!(out, "{:width$}  PARTITIONS", "MEMBER")?;
    for (id, partitions) in &info.members {
        let list: Vec<String> = partitions.iter().map(u32::to_string).collect();
        let list = if list.is_empty() {
            "-".to_owned()
        } else {
            list.join(",")
        };
        writeln!(out, "{id:width$}  {list}")?;
    }
    Ok(())
}

/// One partition's line of the `reset-offsets` plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlanRow {
    partition: u32,
    old: Option<u64>,
    new: u64,
    /// The offset asked for, when it was outside earliest..latest.
    clamped_from: Option<u64>,
}

/// The new offset of partition `p`: `at_time` is what ListOffsets
/// answered for a `Position::Time`.
fn plan_row(to: Position, p: &PartitionInfo, old: Option<u64>, at_time: Option<u64>) -> PlanRow {
    let (new, clamped_from) = match to {
        Position::Earliest => (p.earliest, None),
        Position::Latest => (p.latest, None),
        Position::Offset(asked) => {
            let new = asked.clamp(p.earliest, p.latest.max(p.earliest));
            (new, (new != asked).then_some(asked))
        }
        Position::Time(_) => (at_time.unwrap_or(p.latest), None),
    };
    PlanRow {
        partition: p.partition,
        old,
        new,
        clamped_from,
    }
}

async fn reset(client: &Client, args: &ResetArgs) -> anyhow::Result<()> {
    let (group, topic) = (args.group.as_str(), args.topic.as_str());
    let info = client
        .describe_group(group)
        .await
        .map_err(|e| group_error("reset offsets of group", group, e))?;
    if !info.members.is_empty() {
        return Err(anyhow!(
            "reset offsets of group '{group}': the group has {} live member(s) consuming \
             topic '{}'; stop the group's consumers first, then run this again \
             (`tidegate group describe {group}` shows them)",
            info.members.len(),
            info.topic
        ));
    }
    let partitions = selected_partitions(client, topic, &args.partition).await?;
    let plan = make_plan(client, group, topic, args.to, &partitions).await?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => print_plan_json(&mut out, args, &plan)?,
        Format::Text => print_plan_text(&mut out, &plan)?,
    }
    out.flush()?;
    if args.dry_run {
        eprintln!("dry run: nothing committed (leave out --dry-run to apply the plan)");
        return Ok(());
    }
    commit_plan(client, group, topic, &plan).await?;
    eprintln!(
        "committed new offsets of group '{group}' on topic '{topic}' for {} partition(s)",
        plan.len()
    );
    Ok(())
}

/// The partitions of `topic` to reset: all, or those of `--partition`.
async fn selected_partitions(
    client: &Client,
    topic: &str,
    wanted: &[u32],
) -> anyhow::Result<Vec<PartitionInfo>> {
    let description = client
        .describe_topic(topic)
        .await
        .map_err(|e| topic_error("reset offsets on topic", topic, e))?;
    if wanted.is_empty() {
        return Ok(description.partitions);
    }
    let wanted: BTreeSet<u32> = wanted.iter().copied().collect();
    let mut selected = Vec::with_capacity(wanted.len());
    for p in wanted {
        let info = description
            .partitions
            .iter()
            .find(|i| i.partition == p)
            .ok_or_else(|| {
                anyhow!(
                    "reset offsets on topic '{topic}': no partition {p} (unknown_partition); \
                     it has {} partitions",
                    description.partitions.len()
                )
            })?;
        selected.push(*info);
    }
    Ok(selected)
}

async fn make_plan(
    client: &Client,
    group: &str,
    topic: &str,
    to: Position,
    partitions: &[PartitionInfo],
) -> anyhow::Result<Vec<PlanRow>> {
    let what = format!("reset offsets of group '{group}' on topic");
    let numbers: Vec<u32> = partitions.iter().map(|p| p.partition).collect();
    let old: BTreeMap<u32, Option<u64>> = client
        .fetch_offsets(group, topic, &numbers)
        .await
        .map_err(|e| topic_error(&what, topic, e))?
        .into_iter()
        .collect();
    let mut plan = Vec::with_capacity(partitions.len());
    for p in partitions {
        let at_time = match to {
            Position::Time(ms) => Some(
                client
                    .list_offsets(topic, p.partition, OffsetSpec::Timestamp(ms))
                    .await
                    .map_err(|e| topic_error(&what, topic, e))?,
            ),
            _ => None,
        };
        let committed = old.get(&p.partition).copied().flatten();
        plan.push(plan_row(to, p, committed, at_time));
    }
    Ok(plan)
}

fn print_plan_text(out: &mut impl Write, plan: &[PlanRow]) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:>9}  {:>20}  {:>20}  NOTE",
        "PARTITION", "OLD", "NEW"
    )?;
    for row in plan {
        let old = row.old.map_or_else(|| "-".to_owned(), |o| o.to_string());
        let note = match row.clamped_from {
            Some(asked) if asked < row.new => format!("clamped from {asked} to earliest"),
            Some(asked) => format!("clamped from {asked} to latest"),
            None => String::new(),
        };
        let line = format!("{:>9}  {old:>20}  {:>20}  {note}", row.partition, row.new);
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn print_plan_json(out: &mut impl Write, args: &ResetArgs, plan: &[PlanRow]) -> anyhow::Result<()> {
    let partitions: Vec<_> = plan
        .iter()
        .map(|r| {
            json!({
                "partition": r.partition,
                "old": r.old,
                "new": r.new,
                "clamped_from": r.clamped_from,
            })
        })
        .collect();
    let object = json!({
        "group": args.group,
        "topic": args.topic,
        "dry_run": args.dry_run,
        "partitions": partitions,
    });
    writeln!(out, "{object}")?;
    Ok(())
}

/// Commits the plan outside membership (an empty member id).
async fn commit_plan(
    client: &Client,
    group: &str,
    topic: &str,
    plan: &[PlanRow],
) -> anyhow::Result<()> {
    let offsets: Vec<(u32, u64)> = plan.iter().map(|r| (r.partition, r.new)).collect();
    let mut refused = Vec::new();
    for chunk in offsets.chunks(COMMIT_ENTRIES_MAX) {
        let results = client
            .commit_offsets(group, "", topic, chunk)
            .await
            .map_err(|e| commit_error(group, topic, e))?;
        refused.extend(
            results
                .into_iter()
                .filter(|(_, code)| !code.is_ok())
                .map(|(p, code)| format!("partition {p}: {code}")),
        );
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(anyhow!(
            "reset offsets of group '{group}' on topic '{topic}': refused for {}",
            refused.join(", ")
        ))
    }
}

fn commit_error(group: &str, topic: &str, e: Error) -> anyhow::Error {
    if e.code() == Some(ErrorCode::UnknownMember) {
        // A member joined after the check: the server refuses commits
        // outside membership then.
        return anyhow!(
            "reset offsets of group '{group}': {e}; the group has members now: stop the \
             group's consumers first, then run this again"
        );
    }
    topic_error(
        &format!("reset offsets of group '{group}' on topic"),
        topic,
        e,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(earliest: u64, latest: u64) -> PartitionInfo {
        PartitionInfo {
            partition: 2,
            earliest,
            latest,
            durable: latest,
        }
    }

    #[test]
    fn an_offset_is_clamped_to_the_partition_and_says_so() {
        let p = partition(10, 20);
        let row = |to| plan_row(to, &p, Some(15), None);
        assert_eq!(row(Position::Offset(12)).new, 12);
        assert_eq!(row(Position::Offset(12)).clamped_from, None);
        assert_eq!(row(Position::Offset(20)).clamped_from, None);
        assert_eq!(
            (
                row(Position::Offset(3)).new,
                row(Position::Offset(3)).clamped_from
            ),
            (10, Some(3))
        );
        assert_eq!(
            (
                row(Position::Offset(99)).new,
                row(Position::Offset(99)).clamped_from
            ),
            (20, Some(99))
        );
        assert_eq!(row(Position::Earliest).new, 10);
        assert_eq!(row(Position::Latest).new, 20);
        assert_eq!(row(Position::Earliest).old, Some(15));
        assert_eq!(plan_row(Position::Time(5), &p, None, Some(17)).new, 17);
    }

    #[test]
    fn lag_is_latest_minus_committed_and_unknown_without_a_commit() {
        let row = |committed| PartitionRow {
            partition: 0,
            committed,
            earliest: 5,
            latest: 30,
            member: None,
        };
        assert_eq!(row(Some(12)).lag(), Some(18));
        assert_eq!(row(Some(30)).lag(), Some(0));
        assert_eq!(row(None).lag(), None);
    }
}
