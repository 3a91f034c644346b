//! Requests in flight for one run. Each HubSpot call runs on a task of its own, so several are
//! on the wire at once; the run task takes their answers as they arrive, in any order, and
//! journals each one (DuckDB stays on the run task). A run never has more calls outstanding than
//! its account's `max_in_flight`; the account's rate budget, shared by every sync on it, decides
//! when each one is sent, and its in-flight cap how many are on the wire across those syncs.

use std::future::Future;

use tokio::task::JoinSet;
use tracing::Instrument;

use hubspot_client::HubSpotClient;

/// Calls in flight, each giving back an answer of type `A` (the call's result with what the
/// run needs to journal it).
pub(super) struct Pipeline<A> {
    calls: JoinSet<A>,
    cap: usize,
}

impl<A: Send + 'static> Pipeline<A> {
    /// A pipeline holding as many calls as the client's account lets fly at once.
    pub(super) fn new(client: &HubSpotClient) -> Self {
        Self::with_cap(client, usize::MAX)
    }

    /// A pipeline of at most `cap` requests in flight, and never more than the account's
    /// `max_in_flight`.
    pub(super) fn with_cap(client: &HubSpotClient, cap: usize) -> Self {
        Pipeline { calls: JoinSet::new(), cap: client.budget().max_in_flight().min(cap).max(1) }
    }

    /// True when the next call must wait for an answer first.
    pub(super) fn is_full(&self) -> bool {
        self.calls.len() >= self.cap
    }

    /// The calls in flight, answered or not, until their answers are taken.
    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// How far a full pipeline drains before it is refilled: an eighth of it (at least one
    /// call), so a run that journals each batch of answers in one transaction commits once per
    /// several answers, while the calls in flight stay within an eighth of the cap.
    pub(super) fn refill_level(&self) -> usize {
        self.cap - (self.cap / 8).max(1)
    }

    /// Starts a call. It logs in the run's span.
    pub(super) fn send(&mut self, call: impl Future<Output = A> + Send + 'static) {
        self.calls.spawn(call.instrument(tracing::Span::current()));
    }

    /// The next answer to arrive; `None` when nothing is in flight.
    pub(super) async fn next(&mut self) -> Option<A> {
        loop {
            match self.calls.join_next().await? {
                Ok(answer) => return Some(answer),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Only an aborted task ends without an answer, and none is aborted but by drop.
                Err(_) => continue,
            }
        }
    }

    /// An answer that has arrived already, without waiting.
    pub(super) fn arrived(&mut self) -> Option<A> {
        loop {
            match self.calls.try_join_next()? {
                Ok(answer) => return Some(answer),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A client whose account lets `max_in_flight` requests fly at once.
    fn client_with(max_in_flight: usize) -> HubSpotClient {
        let settings = hubspot_client::ClientSettings {
            max_in_flight,
            ..hubspot_client::ClientSettings::new("t", hubspot_model::Secret::new("t"))
        };
        HubSpotClient::new(settings.clone(), hubspot_client::RateBudget::new(&settings)).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn answers_come_back_in_the_order_they_arrive() {
        let mut pipeline = Pipeline::new(&client_with(3));
        for (n, ms) in [(1, 300u64), (2, 100), (3, 200)] {
            assert!(!pipeline.is_full());
            pipeline.send(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                n
            });
        }
        assert!(pipeline.is_full(), "three in flight with max_in_flight = 3");
        assert_eq!(pipeline.arrived(), None);
        let mut order = Vec::new();
        while let Some(n) = pipeline.next().await {
            order.push(n);
        }
        assert_eq!(order, vec![2, 3, 1]);
        assert!(!pipeline.is_full());
    }

    #[tokio::test(start_paused = true)]
    async fn a_capped_pipeline_holds_the_lower_of_its_cap_and_max_in_flight() {
        for (max_in_flight, cap, holds) in [(32, 2, 2), (1, 2, 1)] {
            let mut pipeline = Pipeline::with_cap(&client_with(max_in_flight), cap);
            for n in 0..holds {
                assert!(!pipeline.is_full(), "{n} in flight of {holds}");
                pipeline.send(async { tokio::time::sleep(Duration::from_secs(1)).await });
            }
            assert!(pipeline.is_full(), "max_in_flight {max_in_flight}, cap {cap}: full at {holds}");
        }
    }
}
