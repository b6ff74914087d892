//! `tracefusion bench` end to end on a small data set: every figure the harness promises is
//! in the table and in the JSON, and `--compare` reads an earlier run back.

use std::process::Command;

use crate::support::binary;

/// The figures a run must report, by name (searches and column groups checked separately).
const FIGURES: [&str; 21] = [
    "generate.spans_per_s",
    "ingest.grpc_spans_per_s",
    "ingest.http_spans_per_s",
    "ingest.peak_rss_mib",
    "lookup.live_p50_ms",
    "lookup.live_p99_ms",
    "live.held_spans",
    "live.search_attribute_match_first_ms",
    "live.search_attribute_match_second_ms",
    "live.tags_v2_ms",
    "flush.all_in_blocks_s",
    "disk.bytes_per_span",
    "lookup.blocks_p50_ms",
    "lookup.blocks_p99_ms",
    "tags.tags_v2.median_ms",
    "tags.tag_values_v2.median_ms",
    "write.spans_per_s",
    "head.spans",
    "head.search_cold_ms",
    "head.search_warm_ms",
    "head.tags_ms",
];

#[test]
fn bench_reports_every_figure_and_compares_runs() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.json");
    let run = |json: &std::path::Path, compare: Option<&std::path::Path>| {
        let mut command = Command::new(binary());
        command
            .args([
                "bench",
                "--spans",
                "4000",
                "--runs",
                "1",
                "--clients",
                "2",
                "--json",
            ])
            .arg(json);
        if let Some(old) = compare {
            command.arg("--compare").arg(old);
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let table = run(&first, None);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    let figures = report["figures"].as_array().unwrap();
    let value = |name: &str| {
        figures
            .iter()
            .find(|f| f["name"] == name)
            .and_then(|f| f["value"].as_f64())
            .unwrap_or_else(|| panic!("{name} missing from the JSON"))
    };
    for name in FIGURES {
        // How much the ingester still holds when it is measured depends on the machine's load
        // (a busy machine may have cut it all to blocks): present, but possibly zero.
        if name == "live.held_spans" {
            assert!(value(name) >= 0.0, "{name} = {}", value(name));
        } else {
            assert!(value(name) > 0.0, "{name} = {}", value(name));
        }
        assert!(
            table.contains(name),
            "{name} missing from the table:\n{table}"
        );
    }
    assert!(report["spans"].as_u64().unwrap() >= 4000);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    // Every search ran; all but the no-match one read spans and found traces (that one's
    // row groups are pruned by statistics).
    for name in tracefusion::bench::SEARCHES.map(|(name, _)| name) {
        let matches = name != "attribute_no_match";
        assert!(value(&format!("search.{name}.median_ms")) > 0.0, "{name}");
        let read = value(&format!("search.{name}.spans_read"));
        assert_eq!(read > 0.0, matches, "{name}: {read} spans read");
        let found = value(&format!("search.{name}.traces"));
        assert_eq!(found > 0.0, matches, "{name}: {found} traces");
    }
    // Bytes per span by column group add up to the total.
    let groups: f64 = figures
        .iter()
        .filter(|f| {
            let name = f["name"].as_str().unwrap();
            name.starts_with("disk.") && name != "disk.bytes_per_span"
        })
        .map(|f| f["value"].as_f64().unwrap())
        .sum();
    let total = value("disk.bytes_per_span");
    assert!(
        groups > 0.5 * total && groups <= total,
        "{groups} of {total}"
    );

    let output = run(&dir.path().join("second.json"), Some(&first));
    let (_, compared) = output
        .split_once("compared with")
        .unwrap_or_else(|| panic!("no comparison:\n{output}"));
    for name in FIGURES {
        let line = compared
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} not compared:\n{compared}"));
        // old, new, new/old: three numbers.
        let cells: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .take(3)
            .filter_map(|c| c.parse().ok())
            .collect();
        assert!(
            cells.len() == 3 && cells.iter().all(|c| c.is_finite()),
            "{line}"
        );
    }
}

#[test]
fn compare_tells_better_from_worse_by_direction() {
    use tracefusion::bench::{Better, Report};
    let mut old = Report::new("old".into());
    old.push("search.a.median_ms", 100.0, "ms", Better::Lower);
    old.push("ingest.grpc", 1000.0, "spans/s", Better::Higher);
    old.push("disk.bytes_per_span", 50.0, "B", Better::Lower);
    old.push("flush.blocks", 4.0, "blocks", Better::Neither);
    let mut new = Report::new("new".into());
    new.push("search.a.median_ms", 50.0, "ms", Better::Lower);
    new.push("ingest.grpc", 500.0, "spans/s", Better::Higher);
    new.push("disk.bytes_per_span", 51.0, "B", Better::Lower);
    new.push("tags.v2.median_ms", 1.0, "ms", Better::Lower);
    new.push("flush.blocks", 100.0, "blocks", Better::Neither);
    let text = new.compare(&old);
    let line = |name: &str| text.lines().find(|l| l.contains(name)).unwrap().to_string();
    assert!(line("search.a").contains("0.50  better"), "{text}");
    assert!(line("ingest.grpc").contains("0.50  worse"), "{text}");
    // Within 5%: neither.
    assert!(
        line("disk.bytes_per_span").trim_end().ends_with("1.02"),
        "{text}"
    );
    assert!(line("tags.v2").contains(" - "), "{text}");
    // Context figures are neither better nor worse.
    assert!(line("flush.blocks").contains("25.00  changed"), "{text}");
    // The JSON reads back as the same report.
    let json = serde_json::to_string(&new).unwrap();
    assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), new);
}

/// A wrong `--compare` file is refused before the run, saying what it is not.
#[test]
fn bench_refuses_a_compare_file_that_is_not_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let not_report = dir.path().join("other.json");
    std::fs::write(&not_report, r#"{"figures": []}"#).unwrap();
    for (file, says) in [
        (
            not_report,
            "is not the JSON file of a `tracefusion bench` run",
        ),
        (
            dir.path().join("missing.json"),
            "missing.json: No such file",
        ),
    ] {
        let out = Command::new(binary())
            .args(["bench", "--compare"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(says), "{stderr}");
    }
}
