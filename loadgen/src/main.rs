//! `tidegate-loadgen`: the benchmark harness. Filled in by the loadgen issue.

fn main() {
    eprintln!("tidegate-loadgen: not built yet (see the loadgen issue)");
    std::process::exit(1);
}
