//! What is wrong with a config file: each problem names its key and, where one helps, a hint.
//! Every part of the config reports into these, so `validate` lists every problem at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key, e.g. `syncs[0].warehouse`; empty for the whole file.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

/// Everything wrong with a config file, reported at once.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub fn one(file: &Path, key: &str, message: String, hint: Option<String>) -> Self {
        ConfigError { file: file.to_path_buf(), problems: vec![Problem { key: key.to_string(), message, hint }] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file.display())?;
            if !p.key.is_empty() {
                write!(f, ": {}", p.key)?;
            }
            write!(f, ": {}", p.message)?;
            if let Some(hint) = &p.hint {
                write!(f, " (hint: {hint})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One variable that was referenced but is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar {
    /// Where it was used, e.g. `hubspot.main.token`.
    pub key: String,
    pub var: String,
    /// The `${VAR:?message}` text, if the user wrote one.
    pub message: Option<String>,
}
