//! Time as HubSpot writes it: epoch milliseconds inside, ISO-8601 with milliseconds and `Z`
//! outside (`2024-05-01T09:30:00.000Z`).

use std::cell::RefCell;
use std::fmt::Write;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Recently formatted timestamps on this thread. A batch answer alternates between two
/// times (records' `createdAt` and the batch's `updatedAt`), so two slots spare most of the
/// formatting.
struct IsoCache {
    slots: [(i64, String); 2],
    next: usize,
}

thread_local! {
    static ISO_CACHE: RefCell<IsoCache> =
        const { RefCell::new(IsoCache { slots: [(i64::MIN, String::new()), (i64::MIN, String::new())], next: 0 }) };
}

/// Calls `f` with `ms` as `2024-05-01T09:30:00.000Z`, without allocating when the timestamp
/// was formatted recently. `f` must not format timestamps itself.
pub(crate) fn with_iso<R>(ms: i64, f: impl FnOnce(&str) -> R) -> R {
    ISO_CACHE.with(|cell| {
        let mut cache = cell.borrow_mut();
        let slot = match cache.slots.iter().position(|(t, _)| *t == ms) {
            Some(slot) => slot,
            None => {
                let slot = cache.next;
                cache.next = 1 - slot;
                let (t, text) = &mut cache.slots[slot];
                text.clear();
                write_iso_millis(text, ms);
                *t = ms;
                slot
            }
        };
        f(&cache.slots[slot].1)
    })
}

/// `2024-05-01T09:30:00.000Z`.
pub(crate) fn iso_millis(ms: i64) -> String {
    with_iso(ms, str::to_string)
}

fn put_digits(buf: &mut [u8], mut value: u32) {
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

pub(crate) fn write_iso_millis(out: &mut String, ms: i64) {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Writing into a String cannot fail.
        let _ = write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"));
        return;
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut b[0..4], year as u32);
    put_digits(&mut b[5..7], t.month());
    put_digits(&mut b[8..10], t.day());
    put_digits(&mut b[11..13], t.hour());
    put_digits(&mut b[14..16], t.minute());
    put_digits(&mut b[17..19], t.second());
    put_digits(&mut b[20..23], t.timestamp_subsec_millis().min(999));
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

/// A datetime value as HubSpot accepts it on writes: epoch ms, or ISO-8601 (with or without
/// an offset; without one it is UTC; a bare date is midnight UTC).
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(ms) = parse_epoch_ms(s) {
        return Some(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

pub(crate) fn parse_epoch_ms(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Why a value is not a HubSpot `date`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DateProblem {
    /// Not a date at all.
    Unparsable,
    /// Epoch ms that is not midnight UTC; carries `H:M:S.ms` as HubSpot prints it.
    NotMidnight(String),
}

/// A `date` value: `YYYY-MM-DD`, or epoch ms at midnight UTC.
pub(crate) fn parse_date(s: &str) -> Result<NaiveDate, DateProblem> {
    let s = s.trim();
    if let Some(ms) = parse_epoch_ms(s) {
        let t = DateTime::<Utc>::from_timestamp_millis(ms).ok_or(DateProblem::Unparsable)?;
        if ms.rem_euclid(86_400_000) != 0 {
            return Err(DateProblem::NotMidnight(format!(
                "{}:{}:{}.{}",
                t.hour(),
                t.minute(),
                t.second(),
                t.timestamp_subsec_millis()
            )));
        }
        return Ok(t.date_naive());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| DateProblem::Unparsable)
}

/// Today's date in UTC, the day the daily limit counts.
pub(crate) fn today_utc() -> NaiveDate {
    Utc::now().date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(iso_millis(1_572_480_000_000), "2019-10-31T00:00:00.000Z");
        assert_eq!(iso_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_millis(1_572_480_000_000), "2019-10-31T00:00:00.000Z");
        assert_eq!(parse_datetime("2019-10-31T00:00:00.000Z"), Some(1_572_480_000_000));
        assert_eq!(parse_datetime("2019-10-31T02:00:00+02:00"), Some(1_572_480_000_000));
        assert_eq!(parse_datetime("1572480000000"), Some(1_572_480_000_000));
        assert_eq!(parse_datetime("2019-10-31"), Some(1_572_480_000_000));
        assert_eq!(parse_datetime("tomorrow"), None);
    }

    #[test]
    fn dates_must_be_midnight() {
        assert_eq!(parse_date("2019-10-31").unwrap().to_string(), "2019-10-31");
        assert_eq!(parse_date("1572480000000").unwrap().to_string(), "2019-10-31");
        assert_eq!(parse_date("1572480000001"), Err(DateProblem::NotMidnight("0:0:0.1".into())));
        assert_eq!(parse_date("31/10/2019"), Err(DateProblem::Unparsable));
    }
}
