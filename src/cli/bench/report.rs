//! The benchmark's figures: what each measured run cost and sent, the floor, the rate-limited
//! case and the targets, printed as Markdown tables and written as JSON. Pure functions of what
//! was measured, tested without a network.

use std::time::Duration;

use serde::Serialize;

use hubspot_client::{ASSOCIATION_BATCH_LIMIT, DEFAULT_LIST_BATCH_SIZE, OBJECT_BATCH_LIMIT};

/// The kind of HubSpot endpoint a request went to, as the benchmark counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Object batch upsert, update and create: carries the records.
    Records,
    /// Object batch reads and searches: looking records up by a property.
    Lookups,
    /// Association batch create.
    Associations,
    /// List membership add and remove.
    ListMemberships,
    /// Everything else: properties, schemas, association labels, finding the list.
    Other,
}

/// Classifies a request by method and path (either path family).
pub fn classify(method: &str, path: &str) -> Endpoint {
    let post = method.eq_ignore_ascii_case("POST");
    let on_objects = path.contains("/objects/");
    if path.contains("/associations/") && (path.ends_with("/batch/create") || path.ends_with("/associate/default")) {
        return Endpoint::Associations;
    }
    if path.contains("/memberships/") && ["/add", "/remove", "/add-and-remove"].iter().any(|e| path.ends_with(e)) {
        return Endpoint::ListMemberships;
    }
    if post && on_objects && ["/batch/upsert", "/batch/update", "/batch/create"].iter().any(|e| path.ends_with(e)) {
        return Endpoint::Records;
    }
    if post && on_objects && (path.ends_with("/batch/read") || path.ends_with("/search")) {
        return Endpoint::Lookups;
    }
    Endpoint::Other
}

/// Requests one run made, per kind of endpoint, as the emulator received them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub records: u64,
    pub associations: u64,
    pub list_memberships: u64,
    pub lookups: u64,
    pub other: u64,
    pub total: u64,
    /// Requests answered 429.
    pub status_429: u64,
}

impl Requests {
    pub fn count<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, u16)>) -> Requests {
        let mut r = Requests::default();
        for (method, path, status) in entries {
            match classify(method, path) {
                Endpoint::Records => r.records += 1,
                Endpoint::Lookups => r.lookups += 1,
                Endpoint::Associations => r.associations += 1,
                Endpoint::ListMemberships => r.list_memberships += 1,
                Endpoint::Other => r.other += 1,
            }
            r.total += 1;
            if status == 429 {
                r.status_429 += 1;
            }
        }
        r
    }
}

/// What a run had to carry, and the fewest requests that could carry it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Fewest {
    /// Records to create or update.
    pub records_changed: u64,
    /// Associations to create.
    pub associations_changed: u64,
    /// List members to add or remove.
    pub list_changed: u64,
    /// `ceil(records / 100)`.
    pub records: u64,
    /// `ceil(associations / 2,000)`.
    pub associations: u64,
    /// `ceil(list changes / 500)`.
    pub list_memberships: u64,
}

impl Fewest {
    pub fn new(records: u64, associations: u64, list: u64) -> Fewest {
        Fewest {
            records_changed: records,
            associations_changed: associations,
            list_changed: list,
            records: records.div_ceil(OBJECT_BATCH_LIMIT as u64),
            associations: associations.div_ceil(ASSOCIATION_BATCH_LIMIT as u64),
            list_memberships: list.div_ceil(DEFAULT_LIST_BATCH_SIZE as u64),
        }
    }
}

/// Requests made over the fewest possible; 1 when neither needed nor made any, `None`
/// (unbounded) when requests were made that none were needed for.
pub fn ratio(made: u64, fewest: u64) -> Option<f64> {
    match (made, fewest) {
        (0, 0) => Some(1.0),
        (_, 0) => None,
        (m, f) => Some(m as f64 / f as f64),
    }
}

/// `requests / fewest` per endpoint, and over the three together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratios {
    pub records: Option<f64>,
    pub associations: Option<f64>,
    pub list_memberships: Option<f64>,
    pub overall: Option<f64>,
}

impl Ratios {
    pub fn new(r: &Requests, f: &Fewest) -> Ratios {
        Ratios {
            records: ratio(r.records, f.records),
            associations: ratio(r.associations, f.associations),
            list_memberships: ratio(r.list_memberships, f.list_memberships),
            overall: ratio(
                r.records + r.associations + r.list_memberships,
                f.records + f.associations + f.list_memberships,
            ),
        }
    }

    /// True when every endpoint made exactly the fewest requests.
    pub fn all_one(&self) -> bool {
        [self.records, self.associations, self.list_memberships].iter().all(|r| *r == Some(1.0))
    }
}

/// One measured sync run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub sync: String,
    /// `first sync`, `no change` or `1% changed`.
    pub kind: String,
    /// Rows the model returned.
    pub rows: u64,
    pub wall_secs: f64,
    pub cpu_secs: f64,
    /// `rows / wall_secs`.
    pub rows_per_sec: f64,
    pub peak_rss_mb: f64,
    pub requests: Requests,
    pub fewest: Fewest,
    pub ratios: Ratios,
    /// The sync's own `--json` summary.
    pub summary: serde_json::Value,
}

/// The floor of one model size.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub rows: u64,
    /// Every timing; the best is the floor.
    pub runs_secs: Vec<f64>,
    pub secs: f64,
    pub bytes: u64,
    pub rows_per_sec: f64,
}

/// What HubSpot (the emulator) holds after the runs of one size, against what it should.
#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    pub contacts: (usize, u64),
    pub companies: (usize, u64),
    pub associations: (usize, u64),
    pub list_members: (usize, u64),
}

impl Checks {
    pub fn ok(&self) -> bool {
        [self.contacts, self.companies, self.associations, self.list_members]
            .iter()
            .all(|(held, want)| *held as u64 == *want)
    }
}

/// Every figure of one model size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    pub contacts: u64,
    pub companies: u64,
    pub runs: Vec<RunReport>,
    pub floor: FloorReport,
    /// The no-change run's wall time over the floor.
    pub no_change_over_floor: f64,
    pub checks: Checks,
}

impl SizeReport {
    pub fn peak_rss_mb(&self) -> f64 {
        self.runs.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max)
    }
}

/// One cell of the rate-limited case (a limit at an answer latency).
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitedReport {
    pub contacts: u64,
    pub limit_per_10s: u32,
    /// The emulator's answer latency.
    pub latency_ms: u64,
    pub run: RunReport,
    /// From the first request's arrival to the last one's.
    pub sending_secs: f64,
    /// Requests per 10 s achieved: `limit × 10 s / mean(t[i] − t[i − limit])`, see
    /// [`achieved_per_10s`].
    pub achieved_per_10s: Option<f64>,
    pub achieved_over_limit: Option<f64>,
    /// `requests / sending_secs × 10`, which counts the first window's burst as a gain.
    pub naive_per_10s: f64,
    pub status_429: u64,
}

/// The rate a run kept up in a rolling window of `limit` requests per 10 s, from the arrival
/// times of its requests: on average, how long after a request the `limit`-th next one came,
/// turned into requests per 10 s. A client that sends each request the moment the window
/// allows scores the limit, however bursty it is; the first window's burst is not counted as a
/// gain. `None` with `limit` requests or fewer.
pub fn achieved_per_10s(arrivals: &[Duration], limit: usize) -> Option<f64> {
    if limit == 0 || arrivals.len() <= limit {
        return None;
    }
    let mut sorted = arrivals.to_vec();
    sorted.sort();
    let gaps: Vec<Duration> = (limit..sorted.len()).map(|i| sorted[i] - sorted[i - limit]).collect();
    let mean = gaps.iter().sum::<Duration>().as_secs_f64() / gaps.len() as f64;
    (mean > 0.0).then(|| limit as f64 * 10.0 / mean)
}

/// One target of issue #6 and how this run did.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// The machine the benchmark ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_mb: u64,
    pub postgres: String,
    pub hubsync: String,
    pub profile: String,
    /// The benchmark process's own peak memory. On Linux a child's peak starts from its parent's
    /// (the kernel keeps the high-water mark across `fork` and `exec`), so no measured sync can
    /// show less than this; it stays small because the emulator runs in its own process.
    pub bench_process_peak_rss_mb: f64,
}

/// Everything one `hubsync bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    pub machine: Machine,
    pub sizes: Vec<SizeReport>,
    /// The same runs with a contacts model carrying a 128-character text column.
    pub text_column: Vec<SizeReport>,
    /// The rate-limited cells, each latency at each limit (`latency.rs`).
    pub rate_limited: Vec<RateLimitedReport>,
    /// The large first sync at a realistic latency without a rate limit (`latency.rs`).
    pub throughput: Option<super::latency::ThroughputReport>,
    pub targets: Vec<Target>,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Peak resident memory in MiB, from bytes.
pub fn rss_mb(bytes: u64) -> f64 {
    mb(bytes)
}

pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}")).unwrap_or_else(|| "∞".into())
}

fn made_of(made: u64, fewest: u64) -> String {
    format!("{} / {}", thousands(made), thousands(fewest))
}

/// Checks the targets of issue #6 against the figures.
pub fn evaluate(sizes: &[SizeReport], rate_limited: &[RateLimitedReport]) -> Vec<Target> {
    let mut targets = Vec::new();
    if !sizes.is_empty() {
        let worst = sizes
            .iter()
            .flat_map(|s| s.runs.iter())
            .filter(|r| !r.ratios.all_one())
            .map(|r| format!("{} {} ({}): {}", r.sync, r.kind, thousands(r.rows), fmt_ratio(r.ratios.overall)))
            .collect::<Vec<_>>();
        targets.push(Target {
            name: "requests / fewest possible".into(),
            target: "1.00 for records, associations and list memberships, every run".into(),
            measured: if worst.is_empty() { "1.00 in every run".into() } else { worst.join("; ") },
            met: worst.is_empty(),
        });
    }
    targets.extend(super::latency::rate_limited_target(rate_limited));
    let (Some(small), Some(large)) = (sizes.iter().min_by_key(|s| s.contacts), sizes.iter().max_by_key(|s| s.contacts))
    else {
        return targets;
    };
    targets.push(Target {
        name: format!("no-change run, {} rows", thousands(large.contacts)),
        target: format!("within {NO_CHANGE_OVER_FLOOR}x the floor"),
        measured: format!(
            "{:.2}x ({:.2} s vs {:.2} s)",
            large.no_change_over_floor,
            large.runs.iter().find(|r| r.kind == NO_CHANGE).map(|r| r.wall_secs).unwrap_or_default(),
            large.floor.secs
        ),
        met: large.no_change_over_floor <= NO_CHANGE_OVER_FLOOR,
    });
    if let Some(changed) = large.runs.iter().find(|r| r.sync == "contacts" && r.kind == ONE_PERCENT) {
        let over = changed.wall_secs / large.floor.secs;
        targets.push(Target {
            name: format!("1%-changed run, {} rows", thousands(large.contacts)),
            target: format!("within {CHANGED_OVER_FLOOR}x the floor"),
            measured: format!("{over:.2}x ({:.2} s vs {:.2} s)", changed.wall_secs, large.floor.secs),
            met: over <= CHANGED_OVER_FLOOR,
        });
    }
    // Memory per kind of contacts run, so the table shows which run sets the peak.
    let contacts_runs = |size: &SizeReport| -> Vec<(String, f64)> {
        size.runs.iter().filter(|r| r.sync == "contacts").map(|r| (r.kind.clone(), r.peak_rss_mb)).collect()
    };
    let per_kind = |runs: &[(String, f64)]| {
        runs.iter().map(|(kind, mb)| format!("{kind} {mb:.0} MB")).collect::<Vec<_>>().join(", ")
    };
    targets.push(Target {
        name: format!("peak memory, {} rows", thousands(large.contacts)),
        target: "under 300 MB".into(),
        measured: format!("{:.0} MB ({})", large.peak_rss_mb(), per_kind(&contacts_runs(large))),
        met: large.peak_rss_mb() < 300.0,
    });
    if small.contacts != large.contacts {
        let growths: Vec<(String, f64)> = contacts_runs(small)
            .iter()
            .zip(contacts_runs(large))
            .map(|((kind, a), (_, b))| (kind.clone(), b / a - 1.0))
            .collect();
        // Per kind of run: each must stay within 20%.
        let growth = growths.iter().map(|(_, g)| *g).fold(large.peak_rss_mb() / small.peak_rss_mb() - 1.0, f64::max);
        let per_kind_growth =
            growths.iter().map(|(kind, g)| format!("{kind} {:+.0}%", g * 100.0)).collect::<Vec<_>>().join(", ");
        targets.push(Target {
            name: format!("peak memory growth, {} → {} rows", thousands(small.contacts), thousands(large.contacts)),
            target: "at most 20%, for each kind of run".into(),
            measured: format!(
                "{:+.0}% ({:.0} → {:.0} MB; {per_kind_growth})",
                growth * 100.0,
                small.peak_rss_mb(),
                large.peak_rss_mb()
            ),
            met: growth <= 0.20,
        });
    }
    targets
}

/// The kind name of a no-change run.
pub const NO_CHANGE: &str = "no change";
/// The kind name of the run after 1% of the rows changed.
pub const ONE_PERCENT: &str = "1% changed";
/// The no-change run's target, in times the floor (issue #15).
const NO_CHANGE_OVER_FLOOR: f64 = 1.5;
/// The 1%-changed run's target, in times the floor (issue #15).
const CHANGED_OVER_FLOOR: f64 = 2.5;

/// The memory targets for the model with a 128-character text column: under 300 MB at the
/// largest size, and at most 20% growth per kind of run from the smallest.
pub fn evaluate_text_column(sizes: &[SizeReport]) -> Vec<Target> {
    let mut targets = Vec::new();
    let (Some(small), Some(large)) = (sizes.iter().min_by_key(|s| s.contacts), sizes.iter().max_by_key(|s| s.contacts))
    else {
        return targets;
    };
    let peaks = |size: &SizeReport| -> Vec<(String, f64)> {
        size.runs.iter().filter(|r| r.sync == "contacts").map(|r| (r.kind.clone(), r.peak_rss_mb)).collect()
    };
    let listed = peaks(large).iter().map(|(kind, mb)| format!("{kind} {mb:.0} MB")).collect::<Vec<_>>().join(", ");
    targets.push(Target {
        name: format!("peak memory, {} rows, with a 128-character text column", thousands(large.contacts)),
        target: "under 300 MB".into(),
        measured: format!("{:.0} MB ({listed})", large.peak_rss_mb()),
        met: large.peak_rss_mb() < 300.0,
    });
    if small.contacts != large.contacts {
        let growths: Vec<(String, f64)> =
            peaks(small).iter().zip(peaks(large)).map(|((kind, a), (_, b))| (kind.clone(), b / a - 1.0)).collect();
        let worst = growths.iter().map(|(_, g)| *g).fold(f64::MIN, f64::max);
        targets.push(Target {
            name: format!(
                "peak memory growth, {} → {} rows, with a 128-character text column",
                thousands(small.contacts),
                thousands(large.contacts)
            ),
            target: "at most 20%, for each kind of run".into(),
            measured: growths
                .iter()
                .map(|(kind, g)| format!("{kind} {:+.0}%", g * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            met: worst <= 0.20,
        });
    }
    targets
}

/// A phase's seconds from a run's `--json` summary (`phases`), 0 when absent.
fn phase(run: &RunReport, name: &str) -> f64 {
    run.summary["phases"][name].as_f64().unwrap_or(0.0)
}

/// The time each run spent per phase, from the sync's own summary: where the next bottleneck is.
pub fn phases_markdown(sizes: &[SizeReport], title: &str) -> String {
    let mut out = format!(
        "{title}\n\n| rows | run | open s | read 1 s | diff s | read 2 s | read 2 rows | deliver s | links s | merge s |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for size in sizes {
        for r in size.runs.iter().filter(|r| r.sync == "contacts") {
            let pushed = r.summary["phases"]["read2_pushed_keys"].as_bool().unwrap_or(false);
            let read2_rows = r.summary["phases"]["read2_rows"].as_u64().unwrap_or(0);
            out.push_str(&format!(
                "| {} | {} {} | {:.2} | {:.2} | {:.2} | {:.2} | {}{} | {:.2} | {:.2} | {:.2} |\n",
                thousands(r.rows),
                r.sync,
                r.kind,
                phase(r, "open_secs"),
                phase(r, "read1_secs"),
                phase(r, "diff_secs"),
                phase(r, "read2_secs"),
                thousands(read2_rows),
                if pushed { " (keys pushed)" } else { "" },
                phase(r, "deliver_secs"),
                phase(r, "links_secs"),
                phase(r, "merge_secs"),
            ));
        }
    }
    out
}

/// The process's peak memory when each phase of each run ended (`phases.peak_rss_mb` of the
/// sync's summary): the first column that reaches the last is the phase that set the peak.
pub fn peaks_markdown(sizes: &[SizeReport], title: &str) -> String {
    const PHASES: [&str; 8] = ["read1", "diff", "read2", "changes", "deliver", "merge_delivered", "links", "merge"];
    let mut out = format!(
        "{title}\n\n| rows | run | read 1 | diff | read 2 | changes | deliver | merge | links | last merge |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for size in sizes {
        for r in size.runs.iter().filter(|r| r.sync == "contacts") {
            let peaks = &r.summary["phases"]["peak_rss_mb"];
            let cells: Vec<String> = PHASES
                .iter()
                .map(|p| match peaks[*p].as_f64() {
                    Some(mb) if mb > 0.0 => format!("{mb:.0}"),
                    _ => "".to_string(),
                })
                .collect();
            out.push_str(&format!("| {} | {} {} | {} |\n", thousands(r.rows), r.sync, r.kind, cells.join(" | ")));
        }
    }
    out
}

/// The runs of the model with a 128-character text column.
pub fn text_column_markdown(sizes: &[SizeReport]) -> String {
    let mut out = String::from(
        "With a 128-character text column (`notes`, mapped to a property):\n\n\
         | rows | run | changed | wall s | peak RSS MB | ratio |\n|---:|---|---:|---:|---:|---:|\n",
    );
    for size in sizes {
        for r in &size.runs {
            out.push_str(&format!(
                "| {} | {} {} | {} | {:.2} | {:.0} | {} |\n",
                thousands(r.rows),
                r.sync,
                r.kind,
                thousands(r.fewest.records_changed),
                r.wall_secs,
                r.peak_rss_mb,
                fmt_ratio(r.ratios.overall),
            ));
        }
        out.push_str(&format!(
            "| {} | floor: `COPY (model) TO STDOUT` | | {:.2} | | |\n",
            thousands(size.floor.rows),
            size.floor.secs
        ));
    }
    out
}

impl Report {
    /// The Markdown tables.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        out.push_str(&format!(
            "hubsync {} ({} build), {} CPUs, {} MB RAM, PostgreSQL {}; {} (benchmark process peak: {:.0} MB)\n\n",
            m.hubsync, m.profile, m.cpus, m.memory_mb, m.postgres, self.started_at, m.bench_process_peak_rss_mb
        ));
        out.push_str(
            "| rows | run | changed | wall s | rows/s | peak RSS MB | records | associations | list members | \
             lookups | other | ratio |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for size in &self.sizes {
            for r in &size.runs {
                out.push_str(&format!(
                    "| {} | {} {} | {} | {:.2} | {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                    thousands(r.rows),
                    r.sync,
                    r.kind,
                    thousands(r.fewest.records_changed),
                    r.wall_secs,
                    thousands(r.rows_per_sec.round() as u64),
                    r.peak_rss_mb,
                    made_of(r.requests.records, r.fewest.records),
                    made_of(r.requests.associations, r.fewest.associations),
                    made_of(r.requests.list_memberships, r.fewest.list_memberships),
                    thousands(r.requests.lookups),
                    thousands(r.requests.other),
                    fmt_ratio(r.ratios.overall),
                ));
            }
            let f = &size.floor;
            out.push_str(&format!(
                "| {} | floor: `COPY (model) TO STDOUT` | | {:.2} | {} | | | | | | | |\n",
                thousands(f.rows),
                f.secs,
                thousands(f.rows_per_sec.round() as u64)
            ));
        }
        out.push('\n');
        out.push_str("| rows | no-change wall s | floor s | no change / floor | peak RSS MB (all runs) |\n");
        out.push_str("|---:|---:|---:|---:|---:|\n");
        for size in &self.sizes {
            let no_change = size.runs.iter().find(|r| r.kind == NO_CHANGE).map(|r| r.wall_secs).unwrap_or_default();
            out.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.2}x | {:.0} |\n",
                thousands(size.contacts),
                no_change,
                size.floor.secs,
                size.no_change_over_floor,
                size.peak_rss_mb()
            ));
        }
        if !self.text_column.is_empty() {
            out.push('\n');
            out.push_str(&text_column_markdown(&self.text_column));
        }
        out.push('\n');
        out.push_str(&phases_markdown(&self.sizes, "Time per phase (from each sync's `--json` summary):"));
        if !self.text_column.is_empty() {
            out.push('\n');
            out.push_str(&phases_markdown(&self.text_column, "Time per phase, with the 128-character text column:"));
        }
        out.push('\n');
        out.push_str(&peaks_markdown(
            &self.sizes,
            "Peak RSS in MB when each phase ended (blank: the run had no such phase):",
        ));
        if !self.text_column.is_empty() {
            out.push('\n');
            out.push_str(&peaks_markdown(
                &self.text_column,
                "Peak RSS in MB when each phase ended, with the text column:",
            ));
        }
        if !self.rate_limited.is_empty() {
            out.push('\n');
            out.push_str(&super::latency::rate_limited_markdown(&self.rate_limited));
        }
        if let Some(t) = &self.throughput {
            out.push('\n');
            out.push_str(&super::latency::throughput_markdown(t));
        }
        out.push('\n');
        out.push_str("| target | wanted | measured | met |\n|---|---|---|---|\n");
        for t in &self.targets {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                t.name,
                t.target,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_endpoint() {
        let c = |m, p| classify(m, p);
        assert_eq!(c("POST", "/crm/objects/2026-03/contacts/batch/upsert"), Endpoint::Records);
        assert_eq!(c("POST", "/crm/v3/objects/contacts/batch/update"), Endpoint::Records);
        assert_eq!(c("POST", "/crm/objects/2026-03/companies/batch/read"), Endpoint::Lookups);
        assert_eq!(c("POST", "/crm/objects/2026-03/companies/search"), Endpoint::Lookups);
        assert_eq!(c("POST", "/crm/associations/2026-03/contacts/companies/batch/create"), Endpoint::Associations);
        assert_eq!(c("PUT", "/crm/lists/2026-03/42/memberships/add"), Endpoint::ListMemberships);
        assert_eq!(c("PUT", "/crm/lists/2026-03/42/memberships/remove"), Endpoint::ListMemberships);
        assert_eq!(c("GET", "/crm/properties/2026-03/contacts"), Endpoint::Other);
        assert_eq!(c("GET", "/crm/associations/2026-03/0-1/0-2/labels"), Endpoint::Other);
        assert_eq!(c("POST", "/crm/lists/2026-03/search"), Endpoint::Other);
    }

    #[test]
    fn fewest_requests_are_full_batches() {
        let f = Fewest::new(1_000_000, 1_000_000, 1_000_000);
        assert_eq!((f.records, f.associations, f.list_memberships), (10_000, 500, 2_000));
        let f = Fewest::new(10_001, 1, 0);
        assert_eq!((f.records, f.associations, f.list_memberships), (101, 1, 0));
        assert_eq!(ratio(0, 0), Some(1.0));
        assert_eq!(ratio(3, 0), None);
        assert_eq!(ratio(102, 101).map(|r| (r * 100.0).round()), Some(101.0));
    }

    #[test]
    fn achieved_rate_counts_window_reuse_not_the_first_burst() {
        let at = Duration::from_millis;
        // A client that bursts 10 requests, then sends each the moment the first one of the
        // window leaves it: exactly the limit.
        let burst: Vec<Duration> = (0..30).map(|i| at((i / 10) * 10_000 + (i % 10) * 5)).collect();
        assert!((achieved_per_10s(&burst, 10).unwrap() - 10.0).abs() < 1e-9);
        // Evenly paced at one request per 1.25 s: 8 per 10 s.
        let paced: Vec<Duration> = (0..30).map(|i| at(i * 1_250)).collect();
        assert!((achieved_per_10s(&paced, 10).unwrap() - 8.0).abs() < 1e-9);
        assert_eq!(achieved_per_10s(&paced[..10], 10), None);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(made_of(10_000, 10_000), "10,000 / 10,000");
    }
}
