//! Rejections that cannot succeed are not re-sent on every run: a record HubSpot refused for
//! its values waits until its row changes (or `hubsync sync --retry-rejected`); a transient
//! failure is retried on every run; `status` says which is which.

use crate::common::{text, Harness, CONTACTS_SYNC};
use hubsync::sync::RunStatus;

const SYNC: &str = CONTACTS_SYNC;

/// Upsert requests the emulator received since its journal was last cleared.
fn upserts(h: &Harness) -> usize {
    h.emulator.count_requests("POST", "/batch/upsert")
}

async fn harness() -> Harness {
    let h = Harness::new().await;
    h.db.exec(
        "CREATE TABLE users AS SELECT i AS user_id, 'user' || i || '@example.com' AS email, 'First' || i AS first_name
         FROM generate_series(1, 50) AS i",
    )
    .await;
    h.write_config(SYNC);
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_email_waits_for_its_row_to_change_or_for_retry_rejected() {
    let h = harness().await;
    h.db.exec("UPDATE users SET email = 'broken-7' WHERE user_id = 7").await;
    let first = h.run("contacts").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_eq!((first.counts.created, first.counts.rejected), (49, 1));

    // Nothing changed: the refused values are not sent again.
    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.held, 1, "{:?}", second.counts);
    assert_eq!(second.counts.rejected, 0);
    assert_eq!(second.counts.unchanged, 49);
    assert_eq!(upserts(&h), 0, "no request for a record whose refused values did not change");
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("INVALID_EMAIL") && status.contains("waits for a change"), "{status}");

    // Another value of the row changes: it is sent again (and refused again, still invalid).
    h.db.exec("UPDATE users SET first_name = 'Seven' WHERE user_id = 7").await;
    h.emulator.clear_journal();
    let third = h.run("contacts").await;
    assert_eq!((third.counts.rejected, third.counts.held), (1, 0), "{:?}", third.counts);
    assert_eq!(upserts(&h), 1, "the changed row is sent");
    h.emulator.clear_journal();
    assert_eq!(h.run("contacts").await.counts.held, 1);
    assert_eq!(upserts(&h), 0);

    // --retry-rejected sends it although nothing changed.
    h.emulator.clear_journal();
    let out = h.cli(&["sync", "contacts", "--retry-rejected"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("1 rejected"), "{}", text(&out.stdout));
    assert_eq!(upserts(&h), 1, "--retry-rejected sends the refused record");

    // Fixed in the model: delivered, and no longer listed.
    h.db.exec("UPDATE users SET email = 'seven@example.com' WHERE user_id = 7").await;
    let fixed = h.run("contacts").await;
    assert_eq!((fixed.counts.created, fixed.counts.rejected, fixed.counts.held), (1, 0, 0));
    assert_eq!(h.emulator.record_count("contacts"), 50);
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("0 rejected"), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transient_failure_is_retried_on_the_next_run() {
    let h = harness().await;
    // Two rows with one e-mail in one batch: HubSpot would apply only one, so the client sends
    // the last and answers the other DUPLICATE_IN_BATCH, a failure of this batch, not of the
    // row's values. It is retried on the next run, alone, and then goes through.
    h.db.exec("UPDATE users SET email = 'user8@example.com' WHERE user_id = 9").await;
    let first = h.run("contacts").await;
    assert_eq!(first.counts.rejected, 1, "{:?}", first.counts);
    let status = text(&h.cli(&["status", "contacts"]).stdout);
    assert!(status.contains("DUPLICATE_IN_BATCH") && status.contains("every run"), "{status}");

    h.emulator.clear_journal();
    let second = h.run("contacts").await;
    assert_eq!(second.counts.held, 0, "a transient failure is not held back");
    assert_eq!(upserts(&h), 1, "the record is sent again on the next run");
    assert_eq!(second.counts.rejected, 0, "{:?}", second.counts);
    assert_eq!(second.counts.created + second.counts.updated, 1);
}
