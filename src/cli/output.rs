//! Plain-text output: aligned tables, run summaries, plans and status.

use crate::state::{InvalidRow, LinkFailure, Rejection, RunRecord};
use crate::sync::{Plan, RunStatus, RunSummary};

/// A table printed with aligned columns.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
                .collect();
            format!("  {}\n", padded.join("  ").trim_end())
        };
        let mut out = line(&self.headers);
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Shortens a value for display.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub fn print_summary(s: &RunSummary) {
    let c = &s.counts;
    let verb = match s.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "FAILED",
        RunStatus::Cancelled => "was cancelled",
        RunStatus::Held => "sent everything but its removals (HELD)",
    };
    println!(
        "sync `{}` run {} {verb} in {:.1}s: {} rows read, {} unchanged, {} created, {} updated, {} skipped, \
         {} rejected, {} invalid; {} HubSpot requests.",
        s.sync,
        s.run_id,
        s.duration_secs,
        c.rows_read,
        c.unchanged,
        c.created,
        c.updated,
        c.skipped,
        c.rejected,
        c.invalid,
        c.requests
    );
    if c.associated + c.association_rejected + c.list_added + c.list_removed > 0 {
        println!(
            "  associations: {} made, {} failed; list: {} added, {} removed.",
            c.associated, c.association_rejected, c.list_added, c.list_removed
        );
    }
    if c.archived + c.cleared + c.unlinked > 0 {
        println!(
            "  removals: {} archived, {} cleared, {} link(s) removed (records whose rows left the model, links no row asks for).",
            c.archived, c.cleared, c.unlinked
        );
    }
    if c.held > 0 {
        println!(
            "  {} rejected record(s) not sent again: HubSpot refused these very values before; they are sent once \
             their rows change, or with `hubsync sync {} --retry-rejected`.",
            c.held, s.sync
        );
    }
    if c.uncertain + c.reconciled > 0 {
        println!(
            "  creates: {} got no certain answer (gateway error, timeout or dropped connection), {} reconciled by \
             search; none was sent twice.",
            c.uncertain, c.reconciled
        );
    }
    if c.merged + c.vanished > 0 {
        println!(
            "  records changed in HubSpot: {} merged into another (the id map moved to the survivor), {} deleted \
             (matched again: re-created, or skipped in update mode).",
            c.merged, c.vanished
        );
    }
    match (&s.error, s.status) {
        (Some(message), RunStatus::Held) => println!("  {message}"),
        (Some(error), _) => println!("  error: {error}"),
        (None, _) => {}
    }
    if c.rejected > 0 || c.invalid > 0 || c.association_rejected > 0 {
        println!("  run `hubsync status {}` to see the rejected and invalid rows with their reasons.", s.sync);
    }
}

pub fn print_plan(p: &Plan) {
    println!(
        "plan for sync `{}`: {} rows, {} unchanged, {} invalid (set aside), {} held (refused before for the same values).",
        p.sync, p.rows, p.unchanged, p.invalid, p.held
    );
    let mut t = Table::new(&["operation", "records", "requests"]);
    let batches = |n: u64| crate::sync::batches(n).to_string();
    t.row(vec!["update by id".into(), p.update_by_id.to_string(), batches(p.update_by_id)]);
    t.row(vec!["upsert by unique property".into(), p.upsert.to_string(), batches(p.upsert)]);
    t.row(vec![
        "look up by unique property, then write".into(),
        p.lookup_by_property.to_string(),
        format!("{} + writes", batches(p.lookup_by_property)),
    ]);
    t.row(vec![
        "look up by search, then write".into(),
        p.lookup_by_search.to_string(),
        format!("{} + writes", batches(p.lookup_by_search)),
    ]);
    t.row(vec!["skip (mode)".into(), p.skipped.to_string(), "0".into()]);
    t.row(vec!["reject (cannot be matched)".into(), p.rejected.to_string(), "0".into()]);
    t.row(vec!["archive (row left the model)".into(), p.archive.to_string(), batches(p.archive)]);
    t.row(vec!["clear (row left the model)".into(), p.clear.to_string(), batches(p.clear)]);
    t.row(vec!["associate".into(), p.association_creates.to_string(), "after lookups".into()]);
    let per = |n: u64, size: usize| n.div_ceil(size as u64).to_string();
    t.row(vec![
        "remove stale association".into(),
        p.association_removals.to_string(),
        per(p.association_removals, crate::sync::ASSOCIATION_BATCH_SIZE),
    ]);
    t.row(vec![
        "add to list (records with an id)".into(),
        p.list_adds.to_string(),
        per(p.list_adds, crate::sync::LIST_BATCH_SIZE),
    ]);
    t.row(vec![
        "remove from list".into(),
        p.list_removes.to_string(),
        per(p.list_removes, crate::sync::LIST_BATCH_SIZE),
    ]);
    t.print();
    match &p.delete_guard {
        Some(message) => println!("the delete guard would hold the removals: {message}"),
        None if p.removal_records > 0 => {
            println!(
                "{} record(s) lose something (archive, clear, unlink, list removal): within max_deletes.",
                p.removal_records
            )
        }
        None => {}
    }
    if !p.link_samples.is_empty() {
        println!("sample associations, list changes and removals:");
        let mut t = Table::new(&["key", "operation", "what"]);
        for s in &p.link_samples {
            t.row(vec![clip(&s.pk, 24), s.operation.clone(), clip(&s.detail, 60)]);
        }
        t.print();
    }
    if p.samples.is_empty() {
        println!("no record to send.");
        return;
    }
    println!("sample changes:");
    let mut t = Table::new(&["key", "operation", "property", "old", "new"]);
    for s in &p.samples {
        for (prop, (old, new)) in &s.changes {
            t.row(vec![
                clip(&s.pk, 24),
                s.operation.clone(),
                prop.clone(),
                clip(old.as_deref().unwrap_or("—"), 30),
                clip(new, 30),
            ]);
        }
    }
    t.print();
}

/// Everything `hubsync status` shows about one sync.
pub struct StatusView<'a> {
    pub sync: &'a str,
    pub snapshot_rows: u64,
    pub runs: &'a [RunRecord],
    pub rejections: &'a [Rejection],
    pub rejected_total: u64,
    pub invalid: &'a [InvalidRow],
    pub invalid_total: u64,
    pub link_failures: &'a [LinkFailure],
    pub link_failures_total: u64,
    /// Creates without a certain answer, reconciled by the next run.
    pub pending_creates: u64,
}

pub fn print_status(v: &StatusView<'_>) {
    let StatusView { sync, snapshot_rows, runs, rejections, rejected_total, invalid, invalid_total, .. } = *v;
    println!("sync `{sync}`: {snapshot_rows} records delivered, {rejected_total} rejected, {invalid_total} invalid rows in the last run.");
    let mut t = Table::new(&[
        "run",
        "started",
        "trigger",
        "status",
        "rows",
        "created",
        "updated",
        "skipped",
        "rejected",
        "held",
        "invalid",
        "uncertain",
        "reconciled",
        "merged",
        "vanished",
        "removed",
        "requests",
        "error",
    ]);
    for r in runs {
        let c = &r.counts;
        t.row(vec![
            r.run_id.to_string(),
            r.started_at.clone(),
            if r.full_resync { format!("{} (full)", r.trigger) } else { r.trigger.clone() },
            r.status.clone(),
            c.rows_read.to_string(),
            c.created.to_string(),
            c.updated.to_string(),
            c.skipped.to_string(),
            c.rejected.to_string(),
            c.held.to_string(),
            c.invalid.to_string(),
            c.uncertain.to_string(),
            c.reconciled.to_string(),
            c.merged.to_string(),
            c.vanished.to_string(),
            if c.removals_held > 0 {
                format!("{} held", c.removals_held)
            } else {
                (c.archived + c.cleared + c.unlinked + c.list_removed).to_string()
            },
            c.requests.to_string(),
            clip(r.error.as_deref().unwrap_or(""), 60),
        ]);
    }
    t.print();
    if let Some(last) = runs.first().filter(|r| r.status == "held") {
        println!("{}", last.error.as_deref().unwrap_or("the delete guard held the last run's removals"));
    }
    if v.pending_creates > 0 {
        println!(
            "{} create(s) got no certain answer; the next run looks them up by search before creating any again.",
            v.pending_creates
        );
    }
    if !rejections.is_empty() {
        println!(
            "rejected records (\"waits for a change\": HubSpot refused the values, sent again once the row changes \
             or with `hubsync sync --retry-rejected`; \"every run\": a transient failure, retried on every run):"
        );
        let mut t = Table::new(&["key", "code", "retried", "attempts", "last seen", "reason"]);
        for r in rejections {
            t.row(vec![
                r.pk.clone(),
                r.code.clone(),
                if r.waits_for_change { "waits for a change" } else { "every run" }.into(),
                r.attempts.to_string(),
                r.last_seen.clone(),
                clip(&r.message, 100),
            ]);
        }
        t.print();
    }
    if !v.link_failures.is_empty() {
        println!("associations not made ({} in all; retried on every run):", v.link_failures_total);
        let mut t = Table::new(&["key", "to", "value", "code", "reason"]);
        for f in v.link_failures {
            let to = f.assoc.split('|').next().unwrap_or("").to_string();
            t.row(vec![f.from_pk.clone(), to, clip(&f.to_value, 30), f.code.clone(), clip(&f.message, 100)]);
        }
        t.print();
    }
    if !invalid.is_empty() {
        println!("invalid rows (not sent; fix them in the model):");
        let mut t = Table::new(&["row", "key", "code", "reason"]);
        for r in invalid {
            t.row(vec![
                r.row_number.to_string(),
                r.pk.clone().unwrap_or_else(|| "NULL".into()),
                r.code.clone(),
                r.message.clone(),
            ]);
        }
        t.print();
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["long".into(), "x".into()]);
        assert_eq!(t.render(), "  a     bb\n  long  x\n");
    }

    #[test]
    fn clip_marks_cut_values() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
