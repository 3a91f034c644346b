//! The journal: one entry per request the emulator received, so tests can count how many
//! requests of each kind a sync made and how they were answered.

use std::collections::VecDeque;
use std::sync::Mutex;

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
}

/// A bounded log of requests: recording one is a push, and past `capacity` the oldest go.
pub(crate) struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
    capacity: usize,
}

impl Journal {
    pub(crate) fn new(capacity: usize) -> Self {
        Journal { entries: Mutex::new(VecDeque::new()), capacity: capacity.max(1) }
    }

    pub(crate) fn record(&self, entry: JournalEntry) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub(crate) fn count(&self, mut matches: impl FnMut(&JournalEntry) -> bool) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|e| matches(e)).count()
    }
}
