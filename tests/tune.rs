//! `tidegate tune check|apply` of the real binary against fixture `/proc`
//! and `/sys` trees (the hidden `--proc-root` / `--sys-root` flags), and
//! `tune disk` on a directory of the build's disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

/// A fixture host plus a server config naming its shard cores.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(cores: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        let data = f.path("data");
        f.file(
            "tidegate.toml",
            &format!(
                "data_dir = {:?}\ncores = {cores:?}\n",
                data.display().to_string()
            ),
        );
        for cpu in 0..4 {
            let base = format!("sys/devices/system/cpu/cpu{cpu}");
            f.file(
                &format!("{base}/topology/thread_siblings_list"),
                &cpu.to_string(),
            );
            f.file(&format!("{base}/cpufreq/scaling_governor"), "performance\n");
        }
        f.file("sys/devices/system/cpu/online", "0-3\n");
        f.file("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn sysctl(&self, key: &str, value: &str) -> &Self {
        self.file(&format!("proc/sys/{}", key.replace('.', "/")), value)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Runs `tidegate tune ARGS` against this fixture.
    fn tune(&self, args: &[&str]) -> Output {
        let root = |rel: &str| self.path(rel);
        Command::new(env!("CARGO_BIN_EXE_tidegate"))
            .arg("tune")
            .args(args)
            .arg("--config")
            .arg(self.path("tidegate.toml"))
            .arg("--proc-root")
            .arg(root("proc"))
            .arg("--sys-root")
            .arg(root("sys"))
            .env_remove("TIDEGATE_CORES")
            .env_remove("TIDEGATE_DATA_DIR")
            .output()
            .unwrap()
    }
}

/// UDP buffers too small, io_uring switched off, swappiness high, and an
/// NVMe namespace on mq-deadline.
fn bad() -> Fixture {
    let f = Fixture::new("0-2");
    for key in ["rmem_max", "wmem_max", "rmem_default", "wmem_default"] {
        f.sysctl(&format!("net.core.{key}"), "212992\n");
    }
    f.sysctl("kernel.io_uring_disabled", "2\n");
    f.sysctl("vm.swappiness", "60\n");
    f.file("sys/block/nvme0n1/queue/scheduler", "none [mq-deadline]\n");
    f.file("sys/block/nvme0n1/queue/rotational", "0\n");
    f
}

fn healthy() -> Fixture {
    let f = Fixture::new("1-3");
    for key in ["rmem_max", "wmem_max", "rmem_default", "wmem_default"] {
        f.sysctl(&format!("net.core.{key}"), "8388608\n");
    }
    f.sysctl("kernel.io_uring_disabled", "0\n");
    f.sysctl("vm.swappiness", "1\n");
    f.file("sys/block/nvme0n1/queue/scheduler", "[none] mq-deadline\n");
    f.file("sys/block/nvme0n1/queue/rotational", "0\n");
    f
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

fn severity_of<'a>(doc: &'a Value, id: &str) -> &'a str {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))["severity"]
        .as_str()
        .unwrap()
}

#[test]
fn check_json_on_bad_host_reports_findings_and_exits_2() {
    let f = bad();
    let output = f.tune(&["check", "--json"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let doc = json(&output);
    assert_eq!(severity_of(&doc, "kernel.io_uring_disabled"), "critical");
    assert_eq!(severity_of(&doc, "net.core.rmem_max"), "warning");
    assert_eq!(severity_of(&doc, "disk.scheduler.nvme0n1"), "warning");
    assert_eq!(doc["summary"]["worst"], "critical");
    let first = &doc["findings"][0];
    for field in ["id", "what", "current", "recommended", "severity", "why"] {
        assert!(first[field].is_string(), "{field} in {first}");
    }
}

#[test]
fn check_exit_code_follows_the_worst_finding() {
    // The fixture is healthy; only the live io_uring probe depends on the
    // machine the test runs on.
    let f = healthy();
    let doc = json(&f.tune(&["check", "--json"]));
    let not_ok: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["severity"] != "ok" && x["id"] != "io_uring.setup")
        .collect();
    assert!(not_ok.is_empty(), "{not_ok:#?}");
    let expected = match severity_of(&doc, "io_uring.setup") {
        "ok" => 0,
        _ => 2,
    };
    let table = f.tune(&["check"]);
    assert_eq!(table.status.code(), Some(expected), "{table:?}");
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("SEVERITY"), "{text}");
    assert!(
        text.contains("UDP socket buffer sysctl net.core.rmem_max"),
        "{text}"
    );
}

#[test]
fn apply_dry_run_prints_old_and_new_values_and_writes_nothing() {
    let f = bad();
    let output = f.tune(&["apply", "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for line in [
        "net.core.rmem_max: 212992 -> 8388608",
        "net.core.wmem_default: 212992 -> 8388608",
        "vm.swappiness: 60 -> 1",
        "block/nvme0n1/queue/scheduler: mq-deadline -> none",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    assert_eq!(f.read("proc/sys/net/core/rmem_max"), "212992\n");
    // io_uring_disabled is a security setting: never applied.
    assert!(!text.contains("io_uring"), "{text}");
}

#[test]
fn apply_twice_changes_nothing_the_second_time_or_refuses_without_root() {
    let f = bad();
    let first = f.tune(&["apply"]);
    if tidegate_tuning::effective_uid() != 0 {
        assert_eq!(first.status.code(), Some(2), "{first:?}");
        let stderr = String::from_utf8(first.stderr).unwrap();
        assert!(stderr.contains("must run as root"), "{stderr}");
        assert_eq!(f.read("proc/sys/net/core/rmem_max"), "212992\n");
        return;
    }
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    assert!(String::from_utf8(first.stdout)
        .unwrap()
        .contains("net.core.rmem_max: 212992 -> 8388608"));
    assert_eq!(f.read("proc/sys/net/core/rmem_max"), "8388608");
    let second = f.tune(&["apply"]);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let text = String::from_utf8(second.stdout).unwrap();
    assert!(text.starts_with("nothing to change"), "{text}");
}

#[test]
fn empty_host_is_checked_without_error() {
    let f = Fixture::new("all");
    std::fs::remove_dir_all(f.path("sys")).unwrap();
    let output = f.tune(&["check", "--json"]);
    assert!(matches!(output.status.code(), Some(0..=2)), "{output:?}");
    assert!(json(&output)["findings"].is_array());
}

/// The value of `key = value` in TOML `text`, quotes kept.
fn toml_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
}

#[test]
fn disk_probe_writes_disk_toml_that_serve_uses() {
    // The target's temporary directory, not tmpfs: the probe needs
    // O_DIRECT. `data` does not exist yet: the probe creates it.
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = base.path().join("data");
    let probe = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(["tune", "disk"])
        .arg(&data)
        .args(["--size", "4MiB"])
        .output()
        .unwrap();
    assert_eq!(probe.status.code(), Some(0), "{probe:?}");
    let stdout = String::from_utf8(probe.stdout).unwrap();
    assert!(stdout.contains("fdatasync"), "{stdout}");
    assert!(stdout.contains("disk.toml"), "{stdout}");

    let disk = std::fs::read_to_string(data.join("disk.toml")).unwrap();
    assert!(disk.contains("[disk]"), "{disk}");
    let chunk = toml_value(&disk, "write_chunk_bytes");
    let concurrency = toml_value(&disk, "write_concurrency");
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["disk.toml"], "the probe left files behind");

    let mut serve = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    serve
        .args(["serve", "--print-config", "--data-dir"])
        .arg(&data);
    for (var, _) in std::env::vars().filter(|(v, _)| v.starts_with("TIDEGATE_")) {
        serve.env_remove(var);
    }
    let printed = serve.output().unwrap();
    assert_eq!(printed.status.code(), Some(0), "{printed:?}");
    let config = String::from_utf8(printed.stdout).unwrap();
    assert_eq!(toml_value(&config, "write_chunk_bytes"), chunk, "{config}");
    assert_eq!(
        toml_value(&config, "write_concurrency"),
        concurrency,
        "{config}"
    );
}
