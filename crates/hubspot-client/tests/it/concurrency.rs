//! Issue 14: many callers on one client at real latencies. The emulator answers after 200-300 ms
//! and its journal (arrival and answer times) says how many requests were in flight at once,
//! how fast they came and when the 429s fell.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubspot_client::{
    AssociationInput, ClientSettings, EndpointKind, HubSpotClient, HubSpotError, RateBudget, WriteInput,
};
use hubspot_emulator::{in_flight_at, Emulator, EmulatorConfig, FaultConfig, JournalEntry};

use crate::support::{client_with, contact, settings, written_id, TestResult};

/// Time for a request the client sent before it read an answer to reach the emulator after
/// that answer was handed to the connection (loopback: well under a millisecond; margin for a
/// loaded test machine).
const WIRE_GRACE: Duration = Duration::from_millis(50);

async fn emulator(latency_ms: u64, max_requests_per_10s: Option<u32>) -> anyhow::Result<Emulator> {
    Emulator::start(EmulatorConfig {
        max_requests_per_10s,
        faults: FaultConfig { latency_ms, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await
}

/// `count` contacts numbered from `first`, one batch.
fn contacts(first: usize, count: usize) -> Vec<WriteInput> {
    (first..first + count).map(contact).collect()
}

/// Runs `callers` tasks that take batch numbers from a shared counter until `batches` are
/// taken, each sending batch `n` as an upsert of contacts `n * size ..`; returns every outcome.
async fn upsert_concurrently(hs: &HubSpotClient, callers: usize, batches: usize, size: usize) -> TestResult {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (hs, next) = (hs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= batches {
                    return Ok::<_, HubSpotError>(());
                }
                let outcomes = hs.batch_upsert("contacts", "email", contacts(n * size, size)).await?;
                assert!(outcomes.iter().all(|o| o.is_written()), "{outcomes:?}");
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Every contact numbered below `count` is held exactly once.
fn assert_each_contact_once(emu: &Emulator, count: usize) {
    assert_eq!(emu.record_count("contacts"), count);
    for i in 0..count {
        assert_eq!(emu.find_by_property("contacts", "email", &format!("user{i}@example.com")).len(), 1, "contact {i}");
    }
}

/// The bench's measure (`hubsync bench`, `achieved_per_10s`): `limit × 10 s` over the mean
/// time from a request's arrival to the arrival of the `limit`-th one after it.
fn achieved_per_10s(journal: &[JournalEntry], limit: usize) -> f64 {
    let mut arrivals: Vec<Instant> = journal.iter().map(|e| e.received_at).collect();
    arrivals.sort();
    assert!(arrivals.len() > limit, "too few requests to measure a rate");
    let gaps: Vec<f64> = (limit..arrivals.len()).map(|i| (arrivals[i] - arrivals[i - limit]).as_secs_f64()).collect();
    limit as f64 * 10.0 / (gaps.iter().sum::<f64>() / gaps.len() as f64)
}

/// Item (a): 8 callers, a cap of 4. Record batches, searches, list memberships and association
/// batches all hold a slot; the emulator never sees more than 4 at once, and does see several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_callers_never_have_more_than_max_in_flight_at_the_emulator() -> TestResult {
    let emu = emulator(200, None).await?;
    let hs = client_with(ClientSettings { max_in_flight: 4, ..settings(&emu.base_url()) });
    let ids: Vec<String> =
        hs.batch_upsert("contacts", "email", contacts(0, 8)).await?.iter().map(|o| written_id(o).to_string()).collect();
    let company = emu.insert_record("companies", &[("name", "Acme")]);
    let list = hs.create_list("0-1", "Concurrent").await?;
    emu.clear_journal();

    let mut tasks = Vec::new();
    for caller in 0..8usize {
        let (hs, ids, company, list_id) = (hs.clone(), ids.clone(), company.clone(), list.list_id.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..3usize {
                match caller % 4 {
                    0 => {
                        let n = 100 + caller * 10 + round;
                        hs.batch_upsert("contacts", "email", contacts(n, 1)).await?;
                    }
                    1 => {
                        hs.search_by_values("contacts", "email", vec![format!("user{round}@example.com")]).await?;
                    }
                    2 => {
                        hs.list_add(&list_id, vec![ids[(caller + round) % ids.len()].clone()]).await?;
                    }
                    _ => {
                        let input = AssociationInput {
                            trace: format!("a-{caller}-{round}"),
                            from_id: ids[(caller + round) % ids.len()].clone(),
                            to_id: company.clone(),
                            types: vec![("HUBSPOT_DEFINED".to_string(), 279)],
                        };
                        hs.batch_associate("contacts", "companies", &[input]).await?;
                    }
                }
            }
            Ok::<_, HubSpotError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }

    let journal = emu.journal();
    assert_eq!(journal.len(), 24, "{journal:#?}");
    assert!(journal.iter().all(|e| (200..300).contains(&e.status)), "{journal:#?}");
    let peak = emu.peak_in_flight();
    assert!(peak <= 4, "{peak} requests were in flight at once with max_in_flight = 4");
    assert!(peak > 1, "the callers never overlapped");
    assert_eq!(hs.budget().in_flight(), 0, "every slot was given back");
    Ok(())
}

/// Item (b): at 300 ms per answer and a limit of 100 per 10 s, 8 callers sending 150 batches
/// keep the limit (at least 95% by the bench's measure: a request counts from its send plus
/// the arrival allowance, not from its answer) and meet no 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_callers_at_300_ms_keep_the_rate_limit_without_a_429() -> TestResult {
    let emu = emulator(300, Some(100)).await?;
    let hs = client_with(ClientSettings { max_requests_per_10s: 100, ..settings(&emu.base_url()) });
    upsert_concurrently(&hs, 8, 150, 2).await?;

    assert_eq!(emu.count_status(429), 0);
    let journal = emu.journal();
    assert_eq!(journal.len(), 150);
    assert_each_contact_once(&emu, 300);
    let achieved = achieved_per_10s(&journal, 100);
    assert!(achieved >= 95.0, "achieved {achieved:.1} requests per 10 s of 100");
    assert!(emu.peak_in_flight() > 4, "the callers did not overlap");
    assert_eq!(hs.stats().rate_limited, 0);
    Ok(())
}

/// Item (c): the portal's window is full for 400 ms while 6 requests are in flight: each of
/// them gets a 429, and that is all. They wait for one pause together, nothing is sent during
/// it, then one request goes alone, and every batch is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_burst_while_six_are_in_flight_is_not_multiplied() -> TestResult {
    let emu = Arc::new(emulator(300, None).await?);
    let hs = client_with(ClientSettings { max_in_flight: 6, ..settings(&emu.base_url()) });
    let inject = {
        let (emu, hs) = (emu.clone(), hs.clone());
        tokio::spawn(async move {
            // After two rounds, at a moment when all 6 slots are taken.
            while emu.journal().len() < 12 || hs.budget().in_flight() < 6 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            emu.set_faults(FaultConfig { latency_ms: 300, burst_429_ms: 400, ..FaultConfig::default() });
        })
    };
    upsert_concurrently(&hs, 6, 30, 2).await?;
    inject.await?;

    let journal = emu.journal();
    let limited: Vec<&JournalEntry> = journal.iter().filter(|e| e.status == 429).collect();
    assert!(!limited.is_empty(), "the burst caught no request");
    let first = limited.iter().map(|e| e.answered_at).min().expect("a 429");
    // In flight when the first 429 was answered, counting those the client had sent before
    // it read that answer.
    let in_flight = in_flight_at(&journal, first)
        + journal.iter().filter(|e| e.received_at > first && e.received_at <= first + WIRE_GRACE).count();
    assert!(in_flight <= 6, "{in_flight}");
    assert!(limited.len() <= in_flight, "{} 429s, {in_flight} requests in flight at the first", limited.len());

    // Nothing is sent during the pause (at least 1 s, the retry policy's floor); then one
    // request goes alone, and the others only after its answer.
    let mut after: Vec<&JournalEntry> = journal.iter().filter(|e| e.received_at > first + WIRE_GRACE).collect();
    after.sort_by_key(|e| e.received_at);
    let (resumed, second) = (after[0], after[1]);
    assert!(resumed.received_at - first >= Duration::from_secs(1), "{:?} after the 429", resumed.received_at - first);
    assert!(second.received_at >= resumed.answered_at, "a second request went before the first one's answer");

    // Every batch acknowledged once, every contact held once; the client counted every 429.
    let upserts = |status: fn(u16) -> bool| journal.iter().filter(|e| status(e.status)).count();
    assert_eq!(upserts(|s| (200..300).contains(&s)), 30);
    assert_eq!(journal.len(), 30 + limited.len());
    assert_each_contact_once(&emu, 60);
    assert_eq!(hs.stats().rate_limited, limited.len() as u64);
    Ok(())
}

/// Item (d): the account's daily limit runs out in the middle of a run. The requests already
/// in flight may meet 429 DAILY; after the first one, not one request is sent, and every caller
/// gets the daily-limit error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_sent_after_the_daily_429() -> TestResult {
    let emu = Emulator::start(EmulatorConfig {
        daily_limit: Some(20),
        faults: FaultConfig { latency_ms: 200, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await?;
    let hs = client_with(ClientSettings { max_in_flight: 8, ..settings(&emu.base_url()) });
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (hs, next) = (hs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = hs.batch_upsert("contacts", "email", contacts(n, 1)).await {
                    return e;
                }
            }
        }));
    }
    for t in tasks {
        let e = t.await?;
        assert!(matches!(e, HubSpotError::DailyLimit { .. }), "{e}");
    }

    let journal = emu.journal();
    assert_eq!(journal.iter().filter(|e| (200..300).contains(&e.status)).count(), 20);
    let daily: Vec<&JournalEntry> = journal.iter().filter(|e| e.status == 429).collect();
    assert!(!daily.is_empty(), "the in-flight requests past the limit should have met 429 DAILY");
    let first = daily.iter().map(|e| e.answered_at).min().expect("a 429");
    let late: Vec<&JournalEntry> = journal.iter().filter(|e| e.received_at > first + WIRE_GRACE).collect();
    assert!(late.is_empty(), "sent after the daily 429: {late:#?}");
    assert!(daily.len() <= 8, "only requests in flight can meet it");
    assert_eq!(hs.stats().total_retries(), 0, "nothing is retried after the daily limit");
    // Later calls are refused without a request.
    let err = hs.batch_upsert("contacts", "email", contacts(1_000, 1)).await.unwrap_err();
    assert!(matches!(err, HubSpotError::DailyLimit { .. }), "{err}");
    assert_eq!(emu.journal().len(), journal.len());
    Ok(())
}

/// Item (e): two runs share one client, each through its own `with_run_stats` handle on 4
/// tasks, with 5xx answers and 429s to retry. Each attempt is counted in the run that made it:
/// the two counts add up to the emulator's journal, and the client's own count to the journal
/// plus the request made outside both runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_client_count_exactly_what_the_emulator_received() -> TestResult {
    let emu = Emulator::start(EmulatorConfig {
        max_requests_per_10s: None,
        faults: FaultConfig { latency_ms: 200, error_rate: 0.2, burst_429: 2, ..FaultConfig::default() },
        ..EmulatorConfig::default()
    })
    .await?;
    let s = ClientSettings { retry_max_attempts: 10, ..settings(&emu.base_url()) };
    let budget = RateBudget::new(&s);
    let hs = HubSpotClient::new(s, budget)?;
    let (run_a, run_b) = (hs.with_run_stats(), hs.with_run_stats());
    let (a, b) = tokio::join!(upsert_concurrently(&run_a, 4, 12, 2), async {
        // Contacts 1000 and up, so the two runs never write the same record.
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (hs, next) = (run_b.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= 8 {
                        return Ok::<_, HubSpotError>(());
                    }
                    hs.batch_upsert("contacts", "email", contacts(1_000 + n, 1)).await?;
                    hs.search_by_values("contacts", "email", vec![format!("user{}@example.com", 1_000 + n)]).await?;
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok::<_, anyhow::Error>(())
    });
    a?;
    b?;
    hs.list_properties("contacts").await?;

    let journal = emu.journal();
    let (sa, sb, all) = (run_a.stats(), run_b.stats(), hs.client_stats());
    assert!(sa.total_requests() >= 12 && sb.total_requests() >= 16, "{sa:?} {sb:?}");
    assert_eq!(sa.total_requests() + sb.total_requests() + 1, journal.len() as u64);
    assert_eq!(all.total_requests(), journal.len() as u64);
    assert_eq!(hs.stats(), all, "the client's own handle counts every run's requests");
    assert_eq!(sa.requests_to(EndpointKind::Search), 0);
    assert_eq!(sb.requests_to(EndpointKind::Search), emu.count_requests("POST", "/search") as u64);
    assert_eq!(sa.rate_limited + sb.rate_limited, emu.count_status(429) as u64);
    assert!(sa.total_retries() + sb.total_retries() > 0, "the faults caused no retry");
    assert_eq!(sa.total_retries() + sb.total_retries(), all.total_retries());
    Ok(())
}

/// A graceful stop through `with_stop`: the request on its way is answered and returned; the
/// ones still waiting for the budget give up at once with `Stopped`, unsent; a create stopped
/// in a batch that had answers already comes back as `STOPPED` outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_handle_finishes_the_request_in_flight_and_sends_nothing_more() -> TestResult {
    let emu = emulator(300, None).await?;
    // One request per window: the second and third wait about 10 s for the budget.
    let hs = client_with(ClientSettings { max_requests_per_10s: 1, ..settings(&emu.base_url()) });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let run = hs.with_run_stats().with_stop(stop.clone());
    let mut tasks = Vec::new();
    for n in 0..3 {
        let run = run.clone();
        tasks.push(tokio::spawn(async move { run.batch_upsert("contacts", "email", contacts(n * 10, 2)).await }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped_at = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let mut written = 0;
    let mut stopped = 0;
    for t in tasks {
        match t.await? {
            Ok(outcomes) => {
                assert!(outcomes.iter().all(|o| o.is_written()), "{outcomes:?}");
                written += 1;
            }
            Err(HubSpotError::Stopped { .. }) => stopped += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(stopped_at.elapsed() < Duration::from_secs(2), "the waiting requests gave up at once");
    assert_eq!((written, stopped), (1, 2), "the request in flight was answered, the others never sent");
    assert_eq!(emu.journal().len(), 1);
    assert_each_contact_once(&emu, 2);
    assert_eq!(run.stats().total_requests(), 1);
    // Stopped, the handle sends nothing; the client itself still can.
    assert!(matches!(run.list_properties("contacts").await, Err(HubSpotError::Stopped { .. })));
    assert_eq!(emu.journal().len(), 1);
    assert_eq!(hs.budget().in_flight(), 0, "every slot was given back");
    Ok(())
}

/// The share of the limit the budget sustains with enough callers in flight, at each latency
/// and limit of issue 14's benchmark table: at least 95% by the bench's measure, and no 429.
/// About three minutes, so not in the default run: `cargo test -p hubspot-client --test it --
/// --ignored share_of_the_limit`. (`hubsync bench` measures the same through whole syncs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn share_of_the_limit_at_0_300_and_1000_ms_and_100_and_190_per_10s() -> TestResult {
    let mut report = Vec::new();
    for latency_ms in [0u64, 300, 1_000] {
        for limit in [100u32, 190] {
            let emu = emulator(latency_ms, Some(limit)).await?;
            let hs = client_with(ClientSettings { max_requests_per_10s: limit, ..settings(&emu.base_url()) });
            // Three windows' worth of one-contact upserts, from as many callers as may be in flight.
            upsert_concurrently(&hs, 32, 3 * limit as usize, 1).await?;
            let journal = emu.journal();
            let achieved = achieved_per_10s(&journal, limit as usize);
            let share = achieved / f64::from(limit);
            report.push(format!(
                "{latency_ms} ms, {limit}/10 s: {achieved:.1} per 10 s ({:.1}%), {} x 429",
                share * 100.0,
                emu.count_status(429)
            ));
            assert_eq!(emu.count_status(429), 0, "{report:#?}");
            assert!(share >= 0.95, "{report:#?}");
        }
    }
    eprintln!("{}", report.join("\n"));
    Ok(())
}
