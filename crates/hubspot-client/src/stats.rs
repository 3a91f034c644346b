//! Request counters of one client: cheap atomics, read as a `ClientStats` snapshot for run
//! summaries, metrics and tests. Every label here is from a closed enum.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::retry::RetryReason;

/// The kind of endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    Upsert,
    Update,
    Create,
    Read,
    Search,
    Properties,
    Schemas,
    AssociationLabels,
    Associations,
    Lists,
    ListMemberships,
    /// Record batch archive and association batch (labels) archive: removals.
    Archive,
}

impl EndpointKind {
    pub const ALL: [EndpointKind; 12] = [
        EndpointKind::Upsert,
        EndpointKind::Update,
        EndpointKind::Create,
        EndpointKind::Read,
        EndpointKind::Search,
        EndpointKind::Properties,
        EndpointKind::Schemas,
        EndpointKind::AssociationLabels,
        EndpointKind::Associations,
        EndpointKind::Lists,
        EndpointKind::ListMemberships,
        EndpointKind::Archive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Upsert => "upsert",
            EndpointKind::Update => "update",
            EndpointKind::Create => "create",
            EndpointKind::Read => "read",
            EndpointKind::Search => "search",
            EndpointKind::Properties => "properties",
            EndpointKind::Schemas => "schemas",
            EndpointKind::AssociationLabels => "association_labels",
            EndpointKind::Associations => "associations",
            EndpointKind::Lists => "lists",
            EndpointKind::ListMemberships => "list_memberships",
            EndpointKind::Archive => "archive",
        }
    }
}

/// The class of an answer (or its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// 1xx or 3xx.
    Other,
    /// No answer: connect error, timeout, dropped connection.
    Transport,
}

impl StatusClass {
    pub const ALL: [StatusClass; 5] = [
        StatusClass::Success,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Other,
        StatusClass::Transport,
    ];

    pub fn of(status: u16) -> StatusClass {
        match status {
            200..=299 => StatusClass::Success,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "2xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
            StatusClass::Transport => "transport",
        }
    }
}

/// A snapshot of a client's counters (only non-zero entries are present).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent, by endpoint kind and answer class (every attempt counts).
    pub requests: BTreeMap<(EndpointKind, StatusClass), u64>,
    /// Retries, by reason.
    pub retries: BTreeMap<RetryReason, u64>,
    /// 429 answers met.
    pub rate_limited: u64,
}

impl ClientStats {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests to one kind of endpoint, whatever the answer.
    pub fn requests_to(&self, kind: EndpointKind) -> u64 {
        self.requests.iter().filter(|((k, _), _)| *k == kind).map(|(_, n)| n).sum()
    }

    /// Requests with one class of answer, whatever the endpoint.
    pub fn requests_with(&self, class: StatusClass) -> u64 {
        self.requests.iter().filter(|((_, c), _)| *c == class).map(|(_, n)| n).sum()
    }

    pub fn total_retries(&self) -> u64 {
        self.retries.values().sum()
    }
}

/// The live counters behind `ClientStats`.
#[derive(Debug)]
pub(crate) struct StatsCounters {
    requests: [[AtomicU64; StatusClass::ALL.len()]; EndpointKind::ALL.len()],
    retries: [AtomicU64; RetryReason::ALL.len()],
    rate_limited: AtomicU64,
}

impl Default for StatsCounters {
    fn default() -> Self {
        StatsCounters {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            retries: std::array::from_fn(|_| AtomicU64::new(0)),
            rate_limited: AtomicU64::new(0),
        }
    }
}

impl StatsCounters {
    pub(crate) fn request(&self, kind: EndpointKind, class: StatusClass) {
        self.requests[kind as usize][class as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn retry(&self, reason: RetryReason) {
        self.retries[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        let mut stats = ClientStats::default();
        for kind in EndpointKind::ALL {
            for class in StatusClass::ALL {
                let n = self.requests[kind as usize][class as usize].load(Ordering::Relaxed);
                if n > 0 {
                    stats.requests.insert((kind, class), n);
                }
            }
        }
        for reason in RetryReason::ALL {
            let n = self.retries[reason.index()].load(Ordering::Relaxed);
            if n > 0 {
                stats.retries.insert(reason, n);
            }
        }
        stats.rate_limited = self.rate_limited.load(Ordering::Relaxed);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_class_and_reason() {
        let c = StatsCounters::default();
        c.request(EndpointKind::Upsert, StatusClass::Success);
        c.request(EndpointKind::Upsert, StatusClass::of(503));
        c.request(EndpointKind::Search, StatusClass::of(429));
        c.retry(RetryReason::ServerError);
        c.rate_limited();
        let s = c.snapshot();
        assert_eq!(s.total_requests(), 3);
        assert_eq!(s.requests_to(EndpointKind::Upsert), 2);
        assert_eq!(s.requests_with(StatusClass::ClientError), 1);
        assert_eq!(s.retries.get(&RetryReason::ServerError), Some(&1));
        assert_eq!(s.total_retries(), 1);
        assert_eq!(s.rate_limited, 1);
        assert_eq!(StatusClass::of(302), StatusClass::Other);
        assert_eq!(EndpointKind::ListMemberships.as_str(), "list_memberships");
    }
}
