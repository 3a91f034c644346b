//! The journal: one entry per request the emulator received, so tests can count how many
//! requests of each kind a sync made and how they were answered.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

/// One request as the emulator saw and answered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub method: String,
    /// The path as sent, without the query string.
    pub path: String,
    /// The raw query string, empty when there was none.
    pub query: String,
    /// The status answered; `0` when the connection was dropped without an answer.
    pub status: u16,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// The request body, when the emulator runs with `record_bodies`.
    pub body: Option<String>,
    /// When the request arrived, for measuring request rates (`hubsync bench`).
    pub received_at: Instant,
    /// When the emulator finished the answer and handed it to the connection (or dropped the
    /// connection): from `received_at` to here the request was in flight at the emulator, so
    /// the entries tell how many were in flight at once ([`peak_in_flight`]).
    pub answered_at: Instant,
}

/// The most requests that were in flight at the emulator at one moment: the largest number of
/// entries whose `received_at..=answered_at` spans share an instant.
pub fn peak_in_flight(entries: &[JournalEntry]) -> usize {
    // +1 at each arrival, -1 at each answer; at equal times the arrival comes first, so spans
    // that only touch count as overlapping (the safe side for a cap).
    let mut events: Vec<(Instant, i64)> = Vec::with_capacity(entries.len() * 2);
    for e in entries {
        events.push((e.received_at, 1));
        events.push((e.answered_at.max(e.received_at), -1));
    }
    events.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, step) in events {
        now += step;
        peak = peak.max(now);
    }
    peak as usize
}

/// How many of `entries` were in flight at the emulator at `at`: received by then and not yet
/// answered before it.
pub fn in_flight_at(entries: &[JournalEntry], at: Instant) -> usize {
    entries.iter().filter(|e| e.received_at <= at && e.answered_at >= at).count()
}

/// A bounded log of requests: recording one is a push, and past `capacity` the oldest go.
/// Entries are numbered from 0 in arrival order, so a reader can ask for those after the last
/// one it saw.
pub(crate) struct Journal {
    inner: Mutex<Inner>,
    capacity: usize,
    /// When the journal started: the zero of the times `GET /_emulator/journal` reports.
    pub(crate) started: Instant,
}

struct Inner {
    entries: VecDeque<JournalEntry>,
    /// Entries ever recorded: the number the next one gets.
    recorded: u64,
}

impl Journal {
    pub(crate) fn new(capacity: usize) -> Self {
        Journal {
            inner: Mutex::new(Inner { entries: VecDeque::new(), recorded: 0 }),
            capacity: capacity.max(1),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn record(&self, entry: JournalEntry) {
        let mut inner = self.lock();
        if inner.entries.len() >= self.capacity {
            inner.entries.pop_front();
        }
        inner.entries.push_back(entry);
        inner.recorded += 1;
    }

    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        self.lock().entries.iter().cloned().collect()
    }

    /// The entries numbered `since` and after that are still kept, and the number the next
    /// entry will get.
    pub(crate) fn since(&self, since: u64) -> (Vec<JournalEntry>, u64) {
        let inner = self.lock();
        let first = inner.recorded - inner.entries.len() as u64;
        let skip = since.saturating_sub(first).min(inner.entries.len() as u64) as usize;
        (inner.entries.iter().skip(skip).cloned().collect(), inner.recorded)
    }

    pub(crate) fn clear(&self) {
        self.lock().entries.clear();
    }

    pub(crate) fn count(&self, mut matches: impl FnMut(&JournalEntry) -> bool) -> usize {
        self.lock().entries.iter().filter(|e| matches(e)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> JournalEntry {
        JournalEntry {
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            status: 200,
            request_bytes: 0,
            response_bytes: 0,
            body: None,
            received_at: Instant::now(),
            answered_at: Instant::now(),
        }
    }

    #[test]
    fn peak_in_flight_counts_overlapping_spans() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + std::time::Duration::from_millis(n);
        let span = |from: u64, to: u64| JournalEntry { received_at: ms(from), answered_at: ms(to), ..entry("/x") };
        // 0-10 and 5-15 overlap; 15-20 touches the second; 30-40 is alone.
        let entries = [span(0, 10), span(5, 15), span(15, 20), span(30, 40)];
        assert_eq!(peak_in_flight(&entries), 2);
        assert_eq!(peak_in_flight(&[span(0, 10), span(1, 9), span(2, 8)]), 3);
        assert_eq!(peak_in_flight(&[]), 0);
        assert_eq!(in_flight_at(&entries, ms(15)), 2);
        assert_eq!(in_flight_at(&entries, ms(25)), 0);
    }

    #[test]
    fn readers_get_the_entries_after_the_last_they_saw() {
        let journal = Journal::new(3);
        journal.record(entry("/a"));
        journal.record(entry("/b"));
        let (all, next) = journal.since(0);
        assert_eq!((all.len(), next), (2, 2));
        journal.record(entry("/c"));
        journal.record(entry("/d"));
        let (new, next) = journal.since(2);
        assert_eq!(new.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(), ["/c", "/d"]);
        assert_eq!(next, 4);
        // "/a" fell out of the bounded journal: what is left is returned.
        assert_eq!(journal.since(0).0.len(), 3);
        assert!(journal.since(9).0.is_empty());
    }
}
