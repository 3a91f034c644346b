//! Stored credentials: one JSON file per account under `<state_dir>/credentials/`, created with
//! mode 0600 so only the daemon's user can read it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// The folder of the credential files.
pub fn credentials_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("credentials")
}

/// A credential stored for one account.
#[derive(Debug, Clone)]
pub enum StoredCredential {
    /// A private app access token or Service Key (`hubsync auth token`).
    Static { token: Secret },
}

impl StoredCredential {
    /// The kind of credential, for `hubsync auth status`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoredCredential::Static { .. } => "private app token (stored)",
        }
    }

    /// The bearer token requests carry.
    pub fn bearer(&self) -> &Secret {
        match self {
            StoredCredential::Static { token } => token,
        }
    }
}

/// The file's shape; holds the exposed secret only while reading or writing.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FileCredential {
    Static { token: String },
}

/// The credential files of one state directory.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    dir: PathBuf,
}

impl CredentialStore {
    pub fn new(state_dir: &Path) -> CredentialStore {
        CredentialStore { dir: credentials_dir(state_dir) }
    }

    /// The file of `account`.
    pub fn path(&self, account: &str) -> PathBuf {
        self.dir.join(format!("{account}.json"))
    }

    /// The stored credential of `account`, `Ok(None)` when there is none.
    pub fn load(&self, account: &str) -> Result<Option<StoredCredential>, String> {
        let path = self.path(account);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read the stored credential {}: {e}", path.display())),
        };
        // The parse error is not shown: serde may quote part of the file, and the file holds a token.
        let file: FileCredential = serde_json::from_str(&text).map_err(|_| {
            format!(
                "the stored credential {} is not readable; store it again with `hubsync auth token --account {account}`",
                path.display()
            )
        })?;
        Ok(Some(match file {
            FileCredential::Static { token } => StoredCredential::Static { token: Secret::new(token) },
        }))
    }

    /// Stores `credential` for `account`, replacing any other, readable by the owner only.
    pub fn save(&self, account: &str, credential: &StoredCredential) -> Result<PathBuf, String> {
        let file = match credential {
            StoredCredential::Static { token } => FileCredential::Static { token: token.expose().to_string() },
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|e| format!("cannot encode the credential: {e}"))?;
        fs::create_dir_all(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let path = self.path(account);
        let tmp = self.dir.join(format!(".{account}.json.tmp"));
        let _ = fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut f = options.open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| format!("cannot write the credential {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Deletes the stored credential of `account`, if any.
    pub fn delete(&self, account: &str) -> Result<bool, String> {
        let path = self.path(account);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot delete {}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::new(dir.path());
        assert!(store.load("main").unwrap().is_none());
        let path = store.save("main", &StoredCredential::Static { token: Secret::new("pat-na1-x") }).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let loaded = store.load("main").unwrap().unwrap();
        assert_eq!(loaded.bearer().expose(), "pat-na1-x");
        assert!(store.delete("main").unwrap());
        assert!(store.load("main").unwrap().is_none());
    }
}
