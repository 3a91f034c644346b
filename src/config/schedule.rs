//! When a sync runs on its own: a cron expression in a time zone, or a fixed interval.
//!
//! Cron expressions are the standard 5 fields (`minute hour day-of-month month day-of-week`),
//! or 6 with seconds first, or a shorthand (`@hourly`, `@daily`, `@weekly`, `@monthly`,
//! `@yearly`). The `cron` crate numbers days of the week 1-7 from Sunday; standard cron numbers
//! them 0-7 from Sunday (0 and 7 both Sunday, 1 Monday). Users write standard cron, so the
//! day-of-week field is rewritten into the crate's numbering before parsing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// A parsed, valid schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Fire at every time matching `expression` in `timezone`.
    Cron { expression: String, timezone: Tz, parsed: Box<cron::Schedule> },
    /// Fire every `every`, the first time when the daemon starts.
    Interval { every: Duration },
}

/// The longest interval schedule: 366 days. Longer ones are surely a typo, and past some size
/// they cannot be added to a date at all.
pub const MAX_INTERVAL_SECS: u64 = 366 * 86_400;

/// Fire times looked at to find the longest gap of a cron schedule.
const GAP_SAMPLES: usize = 64;

impl Schedule {
    /// Parses a cron expression (5 or 6 fields, or a shorthand) in a time zone.
    pub fn cron(expression: &str, timezone: Tz) -> Result<Schedule, String> {
        let expression = expression.trim();
        let crate_syntax = to_crate_syntax(expression)?;
        let parsed = cron::Schedule::from_str(&crate_syntax)
            .map_err(|e| format!("`{expression}` is not a valid cron expression: {e}"))?;
        let schedule = Schedule::Cron { expression: expression.to_string(), timezone, parsed: Box::new(parsed) };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!("`{expression}` never fires"));
        }
        Ok(schedule)
    }

    /// A fixed interval in seconds (at least 1, at most [`MAX_INTERVAL_SECS`]).
    pub fn interval(secs: u64) -> Result<Schedule, String> {
        if secs == 0 {
            return Err("must be at least 1".to_string());
        }
        if secs > MAX_INTERVAL_SECS {
            return Err(format!(
                "{secs} is more than {MAX_INTERVAL_SECS} seconds (366 days); for rarer runs use a cron schedule such \
                 as \"0 6 1 1 *\", or no schedule and `hubsync trigger`"
            ));
        }
        Ok(Schedule::Interval { every: Duration::from_secs(secs) })
    }

    /// Whether the first run starts as soon as the daemon starts.
    pub fn runs_at_start(&self) -> bool {
        matches!(self, Schedule::Interval { .. })
    }

    /// The first fire time strictly after `after`. For intervals, fire times are counted from
    /// `anchor` (the daemon's start), so a late run does not shift the ones after it.
    pub fn next_after_anchored(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { timezone, parsed, .. } => {
                parsed.after(&after.with_timezone(timezone)).next().map(|t| t.with_timezone(&Utc))
            }
            Schedule::Interval { every } => {
                // Checked arithmetic: an interval too long to add to a date has no next fire
                // time (`None`), it never panics the timer.
                let every_ms = i64::try_from(every.as_millis()).ok()?.max(1);
                let since = (after - anchor).num_milliseconds();
                let periods = if since < 0 { 0 } else { since / every_ms + 1 };
                anchor.checked_add_signed(chrono::TimeDelta::try_milliseconds(periods.checked_mul(every_ms)?)?)
            }
        }
    }

    /// The first fire time strictly after `after` (intervals anchored at `after`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after_anchored(after, after)
    }

    /// The longest expected gap between two fire times, in seconds: the interval, or for cron
    /// the longest gap among the next fire times (a weekday schedule gives the weekend's).
    /// Alerts call a sync stale when its last success is older than twice this.
    pub fn period_secs(&self) -> f64 {
        match self {
            Schedule::Interval { every } => every.as_secs_f64(),
            Schedule::Cron { timezone, parsed, .. } => {
                let times: Vec<DateTime<Tz>> = parsed.upcoming(*timezone).take(GAP_SAMPLES).collect();
                times.windows(2).map(|w| (w[1] - w[0]).num_milliseconds() as f64 / 1000.0).fold(0.0, f64::max)
            }
        }
    }

    /// `cron` or `interval`.
    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::Cron { .. } => "cron",
            Schedule::Interval { .. } => "interval",
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { expression, timezone, .. } => write!(f, "cron `{expression}` ({timezone})"),
            Schedule::Interval { every } => write!(f, "every {} s", every.as_secs()),
        }
    }
}

/// Parses an IANA time zone name.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| format!("`{name}` is not an IANA time zone name"))
}

/// Rewrites a standard cron expression into the `cron` crate's 6-field syntax.
fn to_crate_syntax(expression: &str) -> Result<String, String> {
    if expression.starts_with('@') {
        return Ok(expression.to_string());
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let (seconds, rest) = match fields.len() {
        5 => ("0", &fields[..]),
        6 => (fields[0], &fields[1..]),
        n => {
            return Err(format!(
                "`{expression}` has {n} fields; write 5 (minute hour day-of-month month day-of-week) \
                 or 6 (seconds first)"
            ))
        }
    };
    let day_of_week = day_of_week_field(rest[4])?;
    Ok(format!("{seconds} {} {} {} {} {day_of_week}", rest[0], rest[1], rest[2], rest[3]))
}

/// Standard day-of-week field (0-7, 0 and 7 = Sunday, names) -> the crate's (1-7, 1 = Sunday).
fn day_of_week_field(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let bad = |item: &str| format!("`{item}` is not a valid day of the week (0-7 or SUN-SAT)");
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<usize>().map_err(|_| bad(item))?),
            None => (item, 1),
        };
        if step == 0 {
            return Err(bad(item));
        }
        let (first, last) = match range {
            "*" | "?" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => (day_number(a).ok_or_else(|| bad(item))?, day_number(b).ok_or_else(|| bad(item))?),
                None => {
                    let d = day_number(range).ok_or_else(|| bad(item))?;
                    // `5/2` means from 5 to the end of the week, every 2 days.
                    (d, if item.contains('/') { 6 } else { d })
                }
            },
        };
        // 7 is Sunday too; as the end of a range it means "through Sunday".
        let (first, last) = if (first, last) == (7, 7) { (0, 0) } else { (first, last) };
        if first > last {
            return Err(format!("`{item}`: a day range must go forwards"));
        }
        let mut d = first;
        while d <= last {
            days[d % 7] = true;
            d += step;
        }
    }
    let ordinals: Vec<String> = (0..7).filter(|d| days[*d]).map(|d| (d + 1).to_string()).collect();
    Ok(ordinals.join(","))
}

fn day_number(text: &str) -> Option<usize> {
    if let Ok(n) = text.parse::<usize>() {
        return (n <= 7).then_some(n);
    }
    let names = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
    let lower = text.to_ascii_lowercase();
    names.iter().position(|n| lower.len() >= 3 && n.starts_with(lower.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        let s = Schedule::cron("*/5 * * * *", Tz::UTC).unwrap();
        assert_eq!(s.next_after(at("2026-03-02T10:03:27Z")), Some(at("2026-03-02T10:05:00Z")));
        assert_eq!(s.period_secs(), 300.0);
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let s = Schedule::cron("*/2 * * * * *", Tz::UTC).unwrap();
        assert_eq!(s.next_after(at("2026-03-02T10:00:01Z")), Some(at("2026-03-02T10:00:02Z")));
        assert_eq!(s.period_secs(), 2.0);
    }

    #[test]
    fn weekdays_use_standard_numbering() {
        // 1-5 is Monday to Friday in standard cron.
        let s = Schedule::cron("0 9 * * 1-5", Tz::UTC).unwrap();
        // 2026-03-07 is a Saturday.
        let next = s.next_after(at("2026-03-07T12:00:00Z")).unwrap();
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!(s.period_secs(), 3.0 * 86_400.0);
        for (expr, day) in [("0 0 * * 0", Weekday::Sun), ("0 0 * * 7", Weekday::Sun), ("0 0 * * SAT", Weekday::Sat)] {
            let next = Schedule::cron(expr, Tz::UTC).unwrap().next_after(at("2026-03-02T12:00:00Z")).unwrap();
            assert_eq!(next.weekday(), day, "{expr}");
        }
        assert_eq!(day_of_week_field("1-5/2").unwrap(), "2,4,6");
        assert_eq!(day_of_week_field("5-7").unwrap(), "1,6,7");
        assert_eq!(day_of_week_field("mon,wed").unwrap(), "2,4");
    }

    #[test]
    fn time_zones_shift_fire_times() {
        let paris = parse_timezone("Europe/Paris").unwrap();
        let s = Schedule::cron("0 9 * * *", paris).unwrap();
        // 9:00 in Paris is 8:00 UTC in winter.
        let next = s.next_after(at("2026-01-15T00:00:00Z")).unwrap();
        assert_eq!((next.hour(), next.minute()), (8, 0));
        assert_eq!(Utc.with_ymd_and_hms(2026, 1, 15, 8, 0, 0).unwrap(), next);
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(Schedule::cron("* * *", Tz::UTC).unwrap_err().contains("3 fields"));
        assert!(Schedule::cron("61 * * * *", Tz::UTC).is_err());
        assert!(Schedule::cron("0 0 * * 8", Tz::UTC).unwrap_err().contains("day of the week"));
        assert!(parse_timezone("Mars/Olympus").is_err());
        assert!(Schedule::interval(0).is_err());
        assert!(Schedule::cron("@hourly", Tz::UTC).is_ok());
    }

    #[test]
    fn huge_intervals_are_refused_and_cannot_panic_the_timer() {
        assert!(Schedule::interval(MAX_INTERVAL_SECS).is_ok());
        let err = Schedule::interval(MAX_INTERVAL_SECS + 1).unwrap_err();
        assert!(err.contains("366 days"), "{err}");
        assert!(Schedule::interval(i64::MAX as u64).is_err());
        // Built directly, past every check: no next fire time, and no panic.
        let anchor = at("2026-03-02T10:00:00Z");
        for secs in [u64::MAX, i64::MAX as u64, 1 << 50] {
            let s = Schedule::Interval { every: Duration::from_secs(secs) };
            assert_eq!(s.next_after_anchored(anchor, anchor), None, "{secs}");
            assert_eq!(s.next_after_anchored(at("2030-01-01T00:00:00Z"), anchor), None, "{secs}");
        }
    }

    #[test]
    fn intervals_count_from_their_anchor() {
        let s = Schedule::interval(60).unwrap();
        let anchor = at("2026-03-02T10:00:00Z");
        assert_eq!(s.next_after_anchored(anchor, anchor), Some(at("2026-03-02T10:01:00Z")));
        assert_eq!(s.next_after_anchored(at("2026-03-02T10:02:30Z"), anchor), Some(at("2026-03-02T10:03:00Z")));
        assert!(s.runs_at_start());
        assert_eq!(s.period_secs(), 60.0);
    }
}
