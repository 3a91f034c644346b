//! `hubsync bench` end to end on a small model, as a user runs it: it builds its PostgreSQL
//! model, runs every case, prints its tables, writes its JSON, and every run made exactly the
//! fewest requests that could carry its change. A correctness test, not a timing one.

use std::process::Command;

use serde_json::Value;

fn admin_url() -> String {
    std::env::var("HUBSYNC_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

#[test]
fn bench_writes_its_figures_and_every_run_sends_the_fewest_requests() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_hubsync"))
        .args(["bench", "--rows", "2000", "--rate-limited-rows", "1100", "--rate-limits", "10", "--repeats", "2"])
        // One rate-limited cell (answers at once, so a debug build's timing is what it measures),
        // and a small throughput case at a short latency.
        .args(["--latencies-ms", "0", "--throughput-rows", "2000", "--throughput-latency-ms", "20"])
        .arg("--postgres-url")
        .arg(admin_url())
        .arg("--out")
        .arg(&out)
        .arg("--dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "hubsync bench failed (it needs PostgreSQL at {}; set HUBSYNC_TEST_DATABASE_URL):\n{stderr}",
        admin_url()
    );
    assert!(stdout.contains("| rows | run |"), "{stdout}");
    assert!(stdout.contains("floor: `COPY (model) TO STDOUT`"), "{stdout}");

    let latest: Value = serde_json::from_str(&std::fs::read_to_string(out.join("latest.json")).unwrap()).unwrap();
    let stamped = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench-"))
        .count();
    assert_eq!(stamped, 1, "one bench-<timestamp>.json beside latest.json");

    let size = &latest["sizes"][0];
    assert_eq!(size["contacts"], 2000);
    let runs = size["runs"].as_array().unwrap();
    let kinds: Vec<String> =
        runs.iter().map(|r| format!("{} {}", r["sync"].as_str().unwrap(), r["kind"].as_str().unwrap())).collect();
    assert_eq!(kinds, ["companies first sync", "contacts first sync", "contacts no change", "contacts 1% changed"]);
    for run in runs {
        for endpoint in ["records", "associations", "list_memberships"] {
            assert_eq!(run["ratios"][endpoint], 1.0, "{endpoint} in {run:#}");
        }
        assert_eq!(run["requests"]["status_429"], 0, "{run:#}");
        assert!(run["peak_rss_mb"].as_f64().unwrap() > 0.0, "{run:#}");
        assert_eq!(run["summary"]["status"], "succeeded", "{run:#}");
    }
    // The first contacts sync: 20 batch upserts, one association batch, four list batches.
    assert_eq!(runs[1]["requests"]["records"], 20);
    assert_eq!(runs[1]["requests"]["associations"], 1);
    assert_eq!(runs[1]["requests"]["list_memberships"], 4);
    // Nothing changed: not a single request.
    assert_eq!(runs[2]["requests"]["total"], 0, "{:#}", runs[2]);
    // 20 contacts changed, each to another company: one update batch, one association batch,
    // and no lookup (their ids and their companies' ids are known).
    assert_eq!(runs[3]["requests"]["records"], 1);
    assert_eq!(runs[3]["requests"]["associations"], 1);
    assert_eq!(runs[3]["requests"]["lookups"], 0);
    assert!(size["floor"]["secs"].as_f64().unwrap() > 0.0);
    // Each run says where its time went; the 1% run's second read got only the changed rows.
    assert!(stdout.contains("Time per phase"), "{stdout}");
    for run in runs {
        assert!(run["summary"]["phases"]["read1_secs"].as_f64().unwrap() > 0.0, "{run:#}");
    }
    // And where its memory went: the process's peak when each phase ended, which only grows,
    // and the last of which is the peak the benchmark measured from outside.
    assert!(stdout.contains("Peak RSS in MB when each phase ended"), "{stdout}");
    for run in runs {
        let peaks = &run["summary"]["phases"]["peak_rss_mb"];
        let (read1, last) = (peaks["read1"].as_f64().unwrap(), peaks["merge"].as_f64().unwrap());
        assert!(read1 > 0.0 && read1 <= last, "{run:#}");
        assert!(last <= run["peak_rss_mb"].as_f64().unwrap() + 1.0, "{run:#}");
    }
    assert_eq!(runs[1]["summary"]["phases"]["read2_rows"], 2000, "a first sync reads every row twice");
    assert_eq!(runs[3]["summary"]["phases"]["read2_pushed_keys"], true, "{:#}", runs[3]);
    assert_eq!(runs[3]["summary"]["phases"]["read2_rows"], 20, "only the 20 changed rows are read again");

    // The same runs with a 128-character text column mapped to a property.
    let text_runs = latest["text_column"][0]["runs"].as_array().unwrap();
    assert_eq!(text_runs.len(), 4, "{text_runs:#?}");
    for run in text_runs {
        for endpoint in ["records", "associations", "list_memberships"] {
            assert_eq!(run["ratios"][endpoint], 1.0, "{endpoint} in {run:#}");
        }
    }
    assert!(stdout.contains("With a 128-character text column"), "{stdout}");

    let cells = latest["rate_limited"].as_array().unwrap();
    assert_eq!(cells.len(), 1, "one cell per latency and limit");
    let rate_limited = &cells[0];
    assert_eq!((rate_limited["limit_per_10s"].as_u64(), rate_limited["latency_ms"].as_u64()), (Some(10), Some(0)));
    assert_eq!(rate_limited["status_429"], 0, "{rate_limited:#}");
    assert!(rate_limited["achieved_over_limit"].as_f64().unwrap() >= 0.9, "{rate_limited:#}");
    assert!(stdout.contains("| answer latency | 10/10 s |"), "{stdout}");
    assert!(stdout.contains("| 0 ms |"), "{stdout}");

    let throughput = &latest["throughput"];
    assert_eq!(throughput["contacts"], 2000);
    assert_eq!(throughput["latency_ms"], 20);
    assert_eq!(throughput["run"]["requests"]["records"], 20, "{throughput:#}");
    let max_in_flight = throughput["max_in_flight"].as_f64().unwrap();
    assert_eq!(throughput["ceiling_per_sec"].as_f64().unwrap(), max_in_flight * 1000.0 / 20.0);
    assert!(throughput["requests_per_sec"].as_f64().unwrap() > 0.0, "{throughput:#}");
    assert!(stdout.contains("ceiling (max_in_flight / latency)"), "{stdout}");
    let targets = latest["targets"].as_array().unwrap();
    assert!(targets.iter().any(|t| t["name"] == "requests / fewest possible" && t["met"] == true));
    assert!(targets.iter().any(|t| t["name"].as_str().unwrap().starts_with("rate-limited first sync")), "{targets:?}");
}
