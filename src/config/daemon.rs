//! Checks of the `[daemon]` section and of each sync's `schedule`, turning them into the
//! resolved [`DaemonSettings`] and [`Schedule`]s the daemon runs on.

use std::net::SocketAddr;

use chrono_tz::Tz;

use super::model::{DaemonConfig, ScheduleConfig};
use super::problem::Problem;
use super::schedule::{parse_timezone, Schedule};
use super::Secret;

/// The `[daemon]` section, checked.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Where the admin API listens (`--listen` may override it).
    pub listen: SocketAddr,
    /// Most runs at once over all syncs (at least 1).
    pub max_concurrent_runs: usize,
    /// Bearer token of the admin API, if any.
    pub admin_token: Option<Secret>,
    /// Time zone of cron schedules that name none.
    pub timezone: Tz,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        check_daemon(&DaemonConfig::default(), &mut Vec::new())
    }
}

impl DaemonSettings {
    /// Says why the admin API may not listen on `addr`, if it may not: only a loopback address
    /// may go without a token.
    pub fn bind_problem(addr: SocketAddr, admin_token: Option<&Secret>) -> Option<String> {
        if addr.ip().is_loopback() || admin_token.is_some_and(|t| !t.is_empty()) {
            None
        } else {
            Some(format!(
                "refusing to serve the admin API on {addr} without a token: anyone who reaches it could \
                 start and reset syncs"
            ))
        }
    }
}

const BIND_HINT: &str =
    "listen on 127.0.0.1 (the default), or set daemon.admin_token = \"${HUBSYNC_ADMIN_TOKEN}\" to require a bearer token";

/// Checks `[daemon]`; problems are added to `problems`, and defaults stand in for bad values.
pub(super) fn check_daemon(daemon: &DaemonConfig, problems: &mut Vec<Problem>) -> DaemonSettings {
    let default_listen = SocketAddr::from(([127, 0, 0, 1], 8484));
    let listen = match daemon.listen.trim().parse::<SocketAddr>() {
        Ok(addr) => {
            if let Some(message) = DaemonSettings::bind_problem(addr, daemon.admin_token.as_ref()) {
                problems.push(Problem { key: "daemon.listen".into(), message, hint: Some(BIND_HINT.into()) });
            }
            addr
        }
        Err(_) => {
            problems.push(Problem {
                key: "daemon.listen".into(),
                message: format!("`{}` is not an IP:port address", daemon.listen),
                hint: Some("for example 127.0.0.1:8484 (host names are not resolved)".into()),
            });
            default_listen
        }
    };
    if daemon.admin_token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
        problems.push(Problem {
            key: "daemon.admin_token".into(),
            message: "is empty".into(),
            hint: Some("remove it, or set it to a long random string".into()),
        });
    }
    if daemon.max_concurrent_runs == 0 {
        problems.push(Problem {
            key: "daemon.max_concurrent_runs".into(),
            message: "must be at least 1".into(),
            hint: None,
        });
    }
    let timezone = match parse_timezone(&daemon.timezone) {
        Ok(tz) => tz,
        Err(message) => {
            problems.push(Problem {
                key: "daemon.timezone".into(),
                message,
                hint: Some("for example UTC, Europe/Paris or America/New_York".into()),
            });
            Tz::UTC
        }
    };
    DaemonSettings {
        listen,
        max_concurrent_runs: daemon.max_concurrent_runs.max(1),
        admin_token: daemon.admin_token.clone().filter(|t| !t.expose().trim().is_empty()),
        timezone,
    }
}

/// Checks one sync's `schedule` (at `key`, e.g. `syncs[0].schedule`).
pub(super) fn check_schedule(
    key: &str,
    schedule: Option<&ScheduleConfig>,
    default_tz: Tz,
    problems: &mut Vec<Problem>,
) -> Option<Schedule> {
    let schedule = schedule?;
    let mut problem = |field: &str, message: String, hint: Option<&str>| {
        let key = if field.is_empty() { key.to_string() } else { format!("{key}.{field}") };
        problems.push(Problem { key, message, hint: hint.map(str::to_string) });
    };
    let timezone = match schedule.timezone.as_deref().map(parse_timezone) {
        None => default_tz,
        Some(Ok(tz)) => tz,
        Some(Err(message)) => {
            problem("timezone", message, Some("for example UTC, Europe/Paris or America/New_York"));
            return None;
        }
    };
    match (&schedule.cron, schedule.interval_secs) {
        (Some(cron), None) => match Schedule::cron(cron, timezone) {
            Ok(s) => Some(s),
            Err(message) => {
                problem(
                    "cron",
                    message,
                    Some("for example \"*/15 * * * *\" (every 15 minutes) or \"0 6 * * 1-5\" (6:00 on weekdays)"),
                );
                None
            }
        },
        (None, Some(secs)) => {
            if schedule.timezone.is_some() {
                problem("timezone", "applies only to a cron schedule".into(), Some("remove it"));
            }
            match Schedule::interval(secs) {
                Ok(s) => Some(s),
                Err(message) => {
                    problem("interval_secs", message, None);
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            problem("", "sets both `cron` and `interval_secs`".into(), Some("keep one of them"));
            None
        }
        (None, None) => {
            problem(
                "",
                "names no schedule".into(),
                Some("write schedule = { cron = \"*/15 * * * *\" } or schedule = { interval_secs = 900 }"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(listen: &str, token: Option<&str>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let config = DaemonConfig { listen: listen.into(), admin_token: token.map(Secret::new), ..Default::default() };
        check_daemon(&config, &mut problems);
        problems
    }

    #[test]
    fn loopback_needs_no_token_and_anything_else_does() {
        assert!(daemon("127.0.0.1:8484", None).is_empty());
        assert!(daemon("[::1]:8484", None).is_empty());
        let problems = daemon("0.0.0.0:8484", None);
        assert_eq!(problems[0].key, "daemon.listen");
        assert!(problems[0].message.contains("without a token"));
        assert!(daemon("0.0.0.0:8484", Some("s3cret")).is_empty());
        assert_eq!(daemon("localhost:8484", None)[0].key, "daemon.listen");
        assert_eq!(daemon("127.0.0.1:1", Some(" "))[0].key, "daemon.admin_token");
    }

    #[test]
    fn schedules_name_the_bad_key() {
        let check = |s: ScheduleConfig| {
            let mut problems = Vec::new();
            let out = check_schedule("syncs[0].schedule", Some(&s), Tz::UTC, &mut problems);
            (out.is_some(), problems.into_iter().map(|p| p.key).collect::<Vec<_>>())
        };
        let cron = |c: &str| ScheduleConfig { cron: Some(c.into()), ..Default::default() };
        assert_eq!(check(cron("*/5 * * * *")), (true, vec![]));
        assert_eq!(check(cron("*/5 * *")), (false, vec!["syncs[0].schedule.cron".to_string()]));
        let tz = ScheduleConfig { timezone: Some("Nowhere/City".into()), ..cron("0 * * * *") };
        assert_eq!(check(tz).1, vec!["syncs[0].schedule.timezone"]);
        let both = ScheduleConfig { interval_secs: Some(5), ..cron("0 * * * *") };
        assert_eq!(check(both).1, vec!["syncs[0].schedule"]);
        assert_eq!(check(ScheduleConfig::default()).1, vec!["syncs[0].schedule"]);
        let zero = ScheduleConfig { interval_secs: Some(0), ..Default::default() };
        assert_eq!(check(zero).1, vec!["syncs[0].schedule.interval_secs"]);
    }
}
