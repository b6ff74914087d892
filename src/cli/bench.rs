//! `tracefusion bench`: runs the benchmark, prints the table, writes the JSON, compares.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::bench::{BenchOptions, Report};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Spans to generate and ingest (rounded up to whole traces).
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Concurrent OTLP clients per protocol.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Runs of each search (the median is reported; tag lookups run three times as often).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the generated traces.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE", default_value = "bench.json")]
    json: PathBuf,
    /// Compare with the JSON of an earlier run: each figure with the ratio new/old.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
}

pub fn bench(args: BenchArgs) -> ExitCode {
    // Read the old figures first: a typo should not cost a whole run.
    let old: Option<Report> = match &args.compare {
        Some(path) => {
            let read = std::fs::read_to_string(path);
            match read.as_deref().map(serde_json::from_str) {
                Ok(Ok(report)) => Some(report),
                Ok(Err(e)) => {
                    let what = "is not the JSON file of a `tracefusion bench` run";
                    return super::fail(&format!("{} {what}: {e}", path.display()));
                }
                Err(e) => return super::fail(&format!("{}: {e}", path.display())),
            }
        }
        None => None,
    };
    let options = BenchOptions {
        spans: args.spans,
        clients: args.clients,
        runs: args.runs,
        seed: args.seed,
        progress: std::io::stderr().is_terminal(),
    };
    let command: Vec<String> = std::env::args().collect();
    let report = match crate::bench::run(&options, command.join(" ")) {
        Ok(report) => report,
        Err(e) => return super::fail(&format!("{e:#}")),
    };
    print!("{}", report.table());
    let json = serde_json::to_string_pretty(&report).expect("figures serialize");
    if let Err(e) = std::fs::write(&args.json, json) {
        return super::fail(&format!("{}: {e}", args.json.display()));
    }
    println!("\nfigures written to {}", args.json.display());
    if let Some(old) = old {
        println!(
            "\ncompared with {}:",
            args.compare.unwrap_or_default().display()
        );
        print!("{}", report.compare(&old));
    }
    ExitCode::SUCCESS
}
