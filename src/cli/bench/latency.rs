//! The benchmark's cases at HubSpot's real answer times (issue #14): the rate-limited first
//! sync at each emulator latency and each rate limit (the share of the limit sustained and the
//! 429s met, in a matrix), and a large first sync at a realistic latency with no rate limit
//! (requests per second against the ceiling `max_in_flight / latency`). The measuring lives
//! here; the figures' structs and their tables too, so the other tables stay as they are.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::super::CliError;
use super::report::{achieved_per_10s, thousands, Fewest, RateLimitedReport, RunReport, Target};
use super::warehouse::BenchDatabase;
use super::{config_toml_with, measured, prepare, rate_limited_syncs, start_emulator, BenchOptions};

/// The large first sync at a realistic latency, without a rate limit.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    pub contacts: u64,
    pub latency_ms: u64,
    /// The account's `max_in_flight`.
    pub max_in_flight: usize,
    pub run: RunReport,
    /// From the first request's arrival to the last one's.
    pub sending_secs: f64,
    /// Requests the emulator received per second of sending.
    pub requests_per_sec: f64,
    /// `max_in_flight / latency`: what a client keeping every slot busy reaches.
    pub ceiling_per_sec: f64,
    pub of_ceiling: f64,
}

/// First and last arrival, as seconds between them.
fn span_secs(arrivals: &[Duration]) -> f64 {
    match (arrivals.iter().min(), arrivals.iter().max()) {
        (Some(first), Some(last)) => last.saturating_sub(*first).as_secs_f64(),
        _ => 0.0,
    }
}

/// `max_in_flight` requests per latency; unbounded (`f64::INFINITY`) at latency 0.
pub fn ceiling_per_sec(max_in_flight: usize, latency_ms: u64) -> f64 {
    if latency_ms == 0 {
        f64::INFINITY
    } else {
        max_in_flight as f64 * 1000.0 / latency_ms as f64
    }
}

/// One cell of the rate-limited matrix: a first sync of `rate_limited_rows` contacts against an
/// emulator allowing `limit` requests per 10 s and answering after `latency_ms`, with the
/// account configured to the same limit.
async fn measure_cell(
    options: &BenchOptions,
    exe: &Path,
    db: &BenchDatabase,
    limit: u32,
    latency_ms: u64,
) -> Result<RateLimitedReport, CliError> {
    let contacts = options.rate_limited_rows;
    eprintln!("bench: rate-limited case: {contacts} contacts at {limit} requests per 10 s, {latency_ms} ms answers…");
    let dir = options.dir.join(format!("rate-limited-{limit}-{latency_ms}ms"));
    let emulator = start_emulator(exe, &dir, Some(limit), latency_ms).await?;
    let config =
        config_toml_with(limit, &format!("max_in_flight = {}\n", options.max_in_flight), &rate_limited_syncs());
    let command = prepare(exe, &dir, &config, db, &emulator)?;
    let (run, arrivals) =
        measured(&command, &emulator, "contacts", "first sync", contacts, Fewest::new(contacts, 0, 0)).await?;
    emulator.stop();
    let sending_secs = span_secs(&arrivals);
    let achieved = achieved_per_10s(&arrivals, limit as usize);
    Ok(RateLimitedReport {
        contacts,
        limit_per_10s: limit,
        latency_ms,
        sending_secs,
        achieved_per_10s: achieved,
        achieved_over_limit: achieved.map(|a| a / f64::from(limit)),
        naive_per_10s: run.requests.total as f64 / sending_secs.max(1e-9) * 10.0,
        status_429: run.requests.status_429,
        run,
    })
}

/// Every cell of the matrix: each latency at each limit, on one table of contacts.
pub async fn measure_rate_limited(
    options: &BenchOptions,
    exe: &Path,
    db: &BenchDatabase,
) -> Result<Vec<RateLimitedReport>, CliError> {
    db.build_rate_limited_model(options.rate_limited_rows).await?;
    let mut cells = Vec::new();
    for &latency_ms in &options.latencies_ms {
        for &limit in &options.rate_limits {
            cells.push(measure_cell(options, exe, db, limit, latency_ms).await?);
        }
    }
    Ok(cells)
}

/// The large first sync: `throughput_rows` contacts at `throughput_latency_ms`, the emulator
/// without a rate limit (`--max-requests-per-10s 0`) and the account's limit out of the way.
pub async fn measure_throughput(
    options: &BenchOptions,
    exe: &Path,
    db: &BenchDatabase,
) -> Result<ThroughputReport, CliError> {
    let contacts = options.throughput_rows;
    let latency_ms = options.throughput_latency_ms;
    eprintln!("bench: throughput case: first sync of {contacts} contacts, {latency_ms} ms answers, no rate limit…");
    db.build_rate_limited_model(contacts).await?;
    let dir = options.dir.join("throughput");
    let emulator = start_emulator(exe, &dir, None, latency_ms).await?;
    let config =
        config_toml_with(1_000_000, &format!("max_in_flight = {}\n", options.max_in_flight), &rate_limited_syncs());
    let command = prepare(exe, &dir, &config, db, &emulator)?;
    let (run, arrivals) =
        measured(&command, &emulator, "contacts", "first sync", contacts, Fewest::new(contacts, 0, 0)).await?;
    emulator.stop();
    let sending_secs = span_secs(&arrivals);
    let requests_per_sec = if sending_secs > 0.0 { arrivals.len() as f64 / sending_secs } else { 0.0 };
    let ceiling = ceiling_per_sec(options.max_in_flight, latency_ms);
    Ok(ThroughputReport {
        contacts,
        latency_ms,
        max_in_flight: options.max_in_flight,
        run,
        sending_secs,
        requests_per_sec,
        ceiling_per_sec: ceiling,
        of_ceiling: if ceiling.is_finite() { requests_per_sec / ceiling } else { 0.0 },
    })
}

/// A cell meets issue #14's target: at least 95% of the limit sustained, and no 429.
pub fn cell_met(cell: &RateLimitedReport) -> bool {
    cell.achieved_over_limit.unwrap_or(0.0) >= 0.95 && cell.status_429 == 0
}

/// One target for the whole matrix, naming the cells that miss it.
pub fn rate_limited_target(cells: &[RateLimitedReport]) -> Option<Target> {
    let first = cells.first()?;
    let missed: Vec<String> = cells
        .iter()
        .filter(|c| !cell_met(c))
        .map(|c| {
            format!(
                "{}/10 s at {} ms: {:.1}%, {} × 429",
                c.limit_per_10s,
                c.latency_ms,
                c.achieved_over_limit.unwrap_or(0.0) * 100.0,
                c.status_429
            )
        })
        .collect();
    let worst = cells.iter().filter_map(|c| c.achieved_over_limit).fold(f64::INFINITY, f64::min);
    let most_429 = cells.iter().map(|c| c.status_429).max().unwrap_or(0);
    Some(Target {
        name: format!(
            "rate-limited first sync, {} contacts, {} (latencies × limits)",
            thousands(first.contacts),
            if cells.len() == 1 { "1 cell".to_string() } else { format!("{} cells", cells.len()) }
        ),
        target: "at least 95% of the limit used, no 429, in every cell".into(),
        measured: if missed.is_empty() {
            format!("worst cell {:.1}%, at most {most_429} × 429", worst * 100.0)
        } else {
            format!("missed: {}", missed.join("; "))
        },
        met: missed.is_empty(),
    })
}

fn percent(share: Option<f64>) -> String {
    share.map(|a| format!("{:.1}%", a * 100.0)).unwrap_or_else(|| "—".into())
}

/// The matrix (latency per row, limit per column: share of the limit and 429s), then one line
/// per cell with its counts.
pub fn rate_limited_markdown(cells: &[RateLimitedReport]) -> String {
    let mut out = String::new();
    if cells.is_empty() {
        return out;
    }
    let mut limits: Vec<u32> = cells.iter().map(|c| c.limit_per_10s).collect();
    limits.sort_unstable();
    limits.dedup();
    let mut latencies: Vec<u64> = cells.iter().map(|c| c.latency_ms).collect();
    latencies.sort_unstable();
    latencies.dedup();
    out.push_str(&format!(
        "Rate-limited first sync of {} contacts: share of the limit sustained, and 429s met (target: at least \
         95%, no 429).\n\n",
        thousands(cells[0].contacts)
    ));
    out.push_str("| answer latency |");
    for l in &limits {
        out.push_str(&format!(" {l}/10 s |"));
    }
    out.push_str("\n|---:|");
    out.push_str(&"---:|".repeat(limits.len()));
    out.push('\n');
    for latency in &latencies {
        out.push_str(&format!("| {latency} ms |"));
        for limit in &limits {
            match cells.iter().find(|c| c.latency_ms == *latency && c.limit_per_10s == *limit) {
                Some(c) => out.push_str(&format!(
                    " {}, {} × 429{} |",
                    percent(c.achieved_over_limit),
                    c.status_429,
                    if cell_met(c) { "" } else { " **(missed)**" }
                )),
                None => out.push_str(" |"),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(
        "| limit | latency | requests | wall s | sending s | achieved per 10 s | of the limit | 429s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cells {
        out.push_str(&format!(
            "| {}/10 s | {} ms | {} | {:.1} | {:.1} | {} | {} | {} |\n",
            c.limit_per_10s,
            c.latency_ms,
            thousands(c.run.requests.total),
            c.run.wall_secs,
            c.sending_secs,
            c.achieved_per_10s.map(|a| format!("{a:.1}")).unwrap_or_else(|| "—".into()),
            percent(c.achieved_over_limit),
            c.status_429
        ));
    }
    out
}

/// The throughput case's table.
pub fn throughput_markdown(t: &ThroughputReport) -> String {
    let ceiling = if t.ceiling_per_sec.is_finite() { format!("{:.1}", t.ceiling_per_sec) } else { "∞".into() };
    format!(
        "| first sync, no rate limit | latency | max_in_flight | requests | wall s | sending s | requests/s | \
         ceiling (max_in_flight / latency) | of the ceiling |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} contacts | {} ms | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |\n",
        thousands(t.contacts),
        t.latency_ms,
        t.max_in_flight,
        thousands(t.run.requests.total),
        t.run.wall_secs,
        t.sending_secs,
        t.requests_per_sec,
        ceiling,
        if t.ceiling_per_sec.is_finite() { format!("{:.1}%", t.of_ceiling * 100.0) } else { "—".into() }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::report::{Ratios, Requests};

    fn run(total: u64, status_429: u64) -> RunReport {
        let requests = Requests { records: total, total, status_429, ..Requests::default() };
        let fewest = Fewest::new(total * 100, 0, 0);
        RunReport {
            sync: "contacts".into(),
            kind: "first sync".into(),
            rows: total * 100,
            wall_secs: 10.0,
            cpu_secs: 1.0,
            rows_per_sec: 1.0,
            peak_rss_mb: 1.0,
            requests,
            fewest,
            ratios: Ratios::new(&requests, &fewest),
            summary: serde_json::Value::Null,
        }
    }

    fn cell(limit: u32, latency_ms: u64, share: f64, status_429: u64) -> RateLimitedReport {
        RateLimitedReport {
            contacts: 30_000,
            limit_per_10s: limit,
            latency_ms,
            run: run(300, status_429),
            sending_secs: 20.0,
            achieved_per_10s: Some(share * f64::from(limit)),
            achieved_over_limit: Some(share),
            naive_per_10s: 0.0,
            status_429,
        }
    }

    #[test]
    fn the_ceiling_is_slots_over_latency() {
        assert!((ceiling_per_sec(32, 300) - 106.666).abs() < 0.01);
        assert!((ceiling_per_sec(32, 1000) - 32.0).abs() < 1e-9);
        assert!(ceiling_per_sec(32, 0).is_infinite());
    }

    #[test]
    fn every_cell_must_meet_the_target() {
        let good = [cell(100, 0, 0.98, 0), cell(190, 1000, 0.96, 0)];
        let t = rate_limited_target(&good).unwrap();
        assert!(t.met, "{t:?}");
        let bad = [cell(100, 0, 0.98, 0), cell(190, 1000, 0.32, 0), cell(100, 300, 0.99, 2)];
        let t = rate_limited_target(&bad).unwrap();
        assert!(!t.met);
        assert!(t.measured.contains("190/10 s at 1000 ms: 32.0%"), "{}", t.measured);
        assert!(t.measured.contains("2 × 429"), "{}", t.measured);
        assert!(rate_limited_target(&[]).is_none());
    }

    #[test]
    fn the_matrix_has_a_row_per_latency_and_a_column_per_limit() {
        let cells = [cell(100, 0, 0.981, 0), cell(190, 0, 0.975, 0), cell(100, 300, 0.5, 0), cell(190, 300, 0.97, 1)];
        let md = rate_limited_markdown(&cells);
        assert!(md.contains("| answer latency | 100/10 s | 190/10 s |"), "{md}");
        assert!(md.contains("| 0 ms | 98.1%, 0 × 429 | 97.5%, 0 × 429 |"), "{md}");
        assert!(md.contains("| 300 ms | 50.0%, 0 × 429 **(missed)** | 97.0%, 1 × 429 **(missed)** |"), "{md}");
    }
}
