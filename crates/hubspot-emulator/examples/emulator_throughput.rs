//! How fast the HubSpot emulator takes batch upserts, so it is never the bottleneck of a
//! benchmark: runs the emulator in-process with rate limits off, fires concurrent batch
//! upserts of 100 contacts keyed by email for a few seconds over loopback HTTP, and prints
//! the figures as a Markdown table row.
//!
//! ```text
//! cargo run --release -p hubspot-emulator --example emulator_throughput [SECONDS] [CONCURRENCY]
//! ```
//!
//! The key space is 100,000 contacts: the first pass creates them, later passes update them
//! (each pass writes other values, so every update is a real change), and memory stays
//! bounded however long it runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hubspot_emulator::{Emulator, EmulatorConfig};
use serde_json::json;

const BATCH: usize = 100;
const KEY_SPACE: usize = 100_000;

/// Request bodies for two passes over the key space, with different values.
fn bodies() -> Vec<Bytes> {
    let passes = [("First", "Oslo", "lead"), ("Second", "Bergen", "customer")];
    passes
        .iter()
        .flat_map(|(name, city, stage)| {
            (0..KEY_SPACE / BATCH).map(move |b| {
                let inputs: Vec<_> = (0..BATCH)
                    .map(|i| {
                        let n = b * BATCH + i;
                        json!({
                            "id": format!("user{n}@example.com"),
                            "idProperty": "email",
                            "objectWriteTraceId": n.to_string(),
                            "properties": {"firstname": format!("{name}{n}"), "lastname": "Bench", "city": city, "lifecyclestage": stage},
                        })
                    })
                    .collect();
                Bytes::from(serde_json::to_vec(&json!({ "inputs": inputs })).unwrap_or_default())
            })
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);

    let emulator = Emulator::start(EmulatorConfig { max_requests_per_10s: None, ..EmulatorConfig::default() }).await?;
    let url = format!("{}/crm/objects/2026-03/contacts/batch/upsert", emulator.base_url());
    let bodies = Arc::new(bodies());
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (client, url, bodies, ok, failed) =
                (client.clone(), url.clone(), bodies.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < deadline {
                    let body = bodies[i % bodies.len()].clone();
                    i += concurrency;
                    let sent = client
                        .post(&url)
                        .bearer_auth("pat-na1-bench")
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status() == 200 => {
                            let _ = resp.bytes().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let batches = ok.load(Ordering::Relaxed) as f64 / elapsed;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("| build | concurrency | seconds | batch upserts/s | records/s | failed requests | contacts held |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {profile} | {concurrency} | {elapsed:.1} | {batches:.0} | {:.0} | {} | {} |",
        batches * BATCH as f64,
        failed.load(Ordering::Relaxed),
        emulator.record_count("contacts"),
    );
    emulator.shutdown().await;
    Ok(())
}
