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
        }
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
