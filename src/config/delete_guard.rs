//! The removal settings of a sync: what happens to a record whose row leaves the model
//! (`on_delete`), and the delete guard's limit (`max_deletes`), a count or a share of the
//! snapshot. A leaf: the config checks build them, the sync runner reads them.

use std::fmt;

use serde::Deserialize;

/// What a sync does to a HubSpot record whose row left the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Leave the record as it is (the default).
    #[default]
    Nothing,
    /// Set the sync's mapped properties (but the match property) to empty; keep the record.
    Clear,
    /// Archive the record (HubSpot's recycle bin, restorable there for 90 days).
    Archive,
}

impl OnDelete {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Nothing => "nothing",
            OnDelete::Clear => "clear",
            OnDelete::Archive => "archive",
        }
    }
}

/// The delete guard's limit: at most this many records may lose something in one run (be
/// archived, cleared, unlinked or removed from the list), or the run sends none of those
/// removals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DeleteLimit {
    /// At most this many records.
    Count(u64),
    /// At most this share of the snapshot's records, in percent (0 to 100).
    Percent(f64),
}

/// The default `max_deletes`: a tenth of the snapshot. A healthy model loses a few percent of
/// its rows in a run at most; a model broken by mistake (an emptied table, a bad join, a wrong
/// filter) loses most of them, and is held. Small syncs that churn more set a count.
pub const DEFAULT_MAX_DELETES: DeleteLimit = DeleteLimit::Percent(10.0);

impl Default for DeleteLimit {
    fn default() -> Self {
        DEFAULT_MAX_DELETES
    }
}

impl DeleteLimit {
    /// Reads `max_deletes`: an integer (a count) or a string `"N%"` (a share of the snapshot).
    pub fn parse(value: &toml::Value) -> Result<DeleteLimit, String> {
        match value {
            toml::Value::Integer(n) if *n >= 0 => Ok(DeleteLimit::Count(*n as u64)),
            toml::Value::Integer(n) => Err(format!("`{n}` is negative; give a count (500) or a share (\"10%\")")),
            toml::Value::String(text) => {
                let number = text.strip_suffix('%').ok_or_else(|| {
                    format!("`{text}` is not a share: write it as a number followed by %, e.g. \"10%\" (or a count, 500, without quotes)")
                })?;
                let valid = !number.is_empty()
                    && number.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && number.chars().next().is_some_and(|c| c.is_ascii_digit());
                match number.parse::<f64>() {
                    Ok(p) if valid && (0.0..=100.0).contains(&p) => Ok(DeleteLimit::Percent(p)),
                    Ok(_) if valid => Err(format!("`{text}` is over 100%")),
                    _ => Err(format!(
                        "`{text}` is not a share: write a number and % with nothing between, e.g. \"10%\" or \"2.5%\""
                    )),
                }
            }
            other => Err(format!(
                "`{other}` is neither a count (max_deletes = 500) nor a share of the snapshot (max_deletes = \"10%\")"
            )),
        }
    }

    /// True when removing from `records` records is more than the limit allows, for a snapshot
    /// of `snapshot` records.
    pub fn exceeded(self, records: u64, snapshot: u64) -> bool {
        match self {
            DeleteLimit::Count(n) => records > n,
            DeleteLimit::Percent(p) => records as f64 * 100.0 > p * snapshot as f64,
        }
    }

    /// How many records the limit allows for a snapshot of `snapshot` records.
    pub fn allowed(self, snapshot: u64) -> u64 {
        match self {
            DeleteLimit::Count(n) => n,
            DeleteLimit::Percent(p) => (p * snapshot as f64 / 100.0).floor() as u64,
        }
    }
}

impl fmt::Display for DeleteLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteLimit::Count(n) => write!(f, "{n}"),
            DeleteLimit::Percent(p) => write!(f, "\"{p}%\""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_shares_parse_and_bad_values_say_why() {
        assert_eq!(DeleteLimit::parse(&toml::Value::Integer(500)), Ok(DeleteLimit::Count(500)));
        assert_eq!(DeleteLimit::parse(&toml::Value::String("10%".into())), Ok(DeleteLimit::Percent(10.0)));
        assert_eq!(DeleteLimit::parse(&toml::Value::String("2.5%".into())), Ok(DeleteLimit::Percent(2.5)));
        for bad in ["10 %", "10", "%", "ten%", "-5%", "150%", " 10%"] {
            let err = DeleteLimit::parse(&toml::Value::String(bad.into())).unwrap_err();
            assert!(err.contains(bad.trim()), "{bad}: {err}");
        }
        assert!(DeleteLimit::parse(&toml::Value::Integer(-1)).is_err());
        assert!(DeleteLimit::parse(&toml::Value::Float(0.5)).is_err());
    }

    #[test]
    fn the_limit_holds_what_is_more_than_it() {
        let tenth = DeleteLimit::Percent(10.0);
        assert!(!tenth.exceeded(30, 300), "exactly 10% goes through");
        assert!(tenth.exceeded(31, 300));
        assert!(tenth.exceeded(1, 5), "a tenth of 5 records is less than one");
        assert_eq!(tenth.allowed(300), 30);
        assert!(!DeleteLimit::Count(500).exceeded(500, 1));
        assert!(DeleteLimit::Count(0).exceeded(1, 1_000));
        assert_eq!(DeleteLimit::Count(500).to_string(), "500");
        assert_eq!(tenth.to_string(), "\"10%\"");
    }
}
