//! Stored credentials: one JSON file per account under `<state_dir>/credentials/` (a folder of
//! mode 0700), written with mode 0600 under a unique temporary name and renamed into place, so
//! only the daemon's user can read it and two refreshing processes never clobber each other.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::private_files::{create_private_dir, write_private};
use hubspot_client::OAuthTokens;
use hubspot_model::Secret;

/// The folder of the credential files.
pub fn credentials_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("credentials")
}

/// A credential stored for one account.
#[derive(Debug, Clone)]
pub enum StoredCredential {
    /// A private app access token or Service Key (`hubsync auth token`).
    Static { token: Secret },
    /// An OAuth login (`hubsync auth login`).
    OAuth(OAuthCredential),
}

/// The tokens of an OAuth login, and what HubSpot said about them when they were issued.
#[derive(Debug, Clone)]
pub struct OAuthCredential {
    /// The app the tokens were issued to; refreshing needs the same app.
    pub client_id: String,
    pub tokens: OAuthTokens,
    /// The portal the user signed in to.
    pub hub_id: Option<u64>,
    /// The scopes granted at login.
    pub scopes: Vec<String>,
}

impl StoredCredential {
    /// The kind of credential, for `hubsync auth status`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoredCredential::Static { .. } => "private app token (stored)",
            StoredCredential::OAuth(_) => "OAuth (stored by `hubsync auth login`)",
        }
    }
}

/// The file's shape; holds the exposed secrets only while reading or writing.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum FileCredential {
    Static {
        token: String,
    },
    Oauth {
        client_id: String,
        access_token: String,
        refresh_token: String,
        expires_at_ms: i64,
        lifetime_secs: u64,
        hub_id: Option<u64>,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl FileCredential {
    fn from_credential(credential: &StoredCredential) -> FileCredential {
        match credential {
            StoredCredential::Static { token } => FileCredential::Static { token: token.expose().to_string() },
            StoredCredential::OAuth(c) => FileCredential::Oauth {
                client_id: c.client_id.clone(),
                access_token: c.tokens.access_token.expose().to_string(),
                refresh_token: c.tokens.refresh_token.expose().to_string(),
                expires_at_ms: c.tokens.expires_at_ms,
                lifetime_secs: c.tokens.lifetime_secs,
                hub_id: c.hub_id,
                scopes: c.scopes.clone(),
            },
        }
    }

    fn into_credential(self) -> StoredCredential {
        match self {
            FileCredential::Static { token } => StoredCredential::Static { token: Secret::new(token) },
            FileCredential::Oauth {
                client_id,
                access_token,
                refresh_token,
                expires_at_ms,
                lifetime_secs,
                hub_id,
                scopes,
            } => StoredCredential::OAuth(OAuthCredential {
                client_id,
                tokens: OAuthTokens {
                    access_token: Secret::new(access_token),
                    refresh_token: Secret::new(refresh_token),
                    expires_at_ms,
                    lifetime_secs,
                },
                hub_id,
                scopes,
            }),
        }
    }
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
        Ok(Some(file.into_credential()))
    }

    /// Stores `credential` for `account`, replacing any other, readable by the owner only.
    pub fn save(&self, account: &str, credential: &StoredCredential) -> Result<PathBuf, String> {
        let file = FileCredential::from_credential(credential);
        let body = serde_json::to_vec_pretty(&file).map_err(|e| format!("cannot encode the credential: {e}"))?;
        if let Some(state_dir) = self.dir.parent() {
            create_private_dir(state_dir).map_err(|e| format!("cannot create {}: {e}", state_dir.display()))?;
        }
        create_private_dir(&self.dir).map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let path = self.path(account);
        // A unique temporary name: two processes refreshing at once each write their own file,
        // and the last rename wins with a whole file.
        write_private(&path, &body).map_err(|e| format!("cannot write the credential {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Replaces the tokens of `account`'s OAuth login after a refresh; does nothing if the
    /// stored credential is no longer that login (a new `auth token` or `auth login` won).
    pub fn update_tokens(&self, account: &str, client_id: &str, tokens: &OAuthTokens) -> Result<(), String> {
        match self.load(account)? {
            Some(StoredCredential::OAuth(mut c)) if c.client_id == client_id => {
                c.tokens = tokens.clone();
                self.save(account, &StoredCredential::OAuth(c)).map(|_| ())
            }
            _ => Ok(()),
        }
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
        let Some(StoredCredential::Static { token }) = store.load("main").unwrap() else { panic!("not static") };
        assert_eq!(token.expose(), "pat-na1-x");
        let oauth = OAuthCredential {
            client_id: "app".into(),
            tokens: OAuthTokens {
                access_token: Secret::new("CN-a"),
                refresh_token: Secret::new("na1-r"),
                expires_at_ms: 5,
                lifetime_secs: 1800,
            },
            hub_id: Some(7),
            scopes: vec!["oauth".into()],
        };
        store.save("main", &StoredCredential::OAuth(oauth.clone())).unwrap();
        let mut fresh = oauth.tokens.clone();
        fresh.access_token = Secret::new("CN-b");
        store.update_tokens("main", "app", &fresh).unwrap();
        let Some(StoredCredential::OAuth(loaded)) = store.load("main").unwrap() else { panic!("not OAuth") };
        assert_eq!((loaded.tokens, loaded.hub_id, loaded.scopes), (fresh, Some(7), vec!["oauth".to_string()]));
        assert!(store.delete("main").unwrap());
        assert!(store.load("main").unwrap().is_none());
    }

    /// Two processes refreshing one login at once each write their own temporary file: every
    /// save lands whole, none fails, and no temporary file is left behind.
    #[test]
    fn concurrent_saves_do_not_clobber_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = CredentialStore::new(dir.path());
                std::thread::spawn(move || {
                    for j in 0..25 {
                        let token = Secret::new(format!("pat-{i}-{j}"));
                        store.save("main", &StoredCredential::Static { token }).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = CredentialStore::new(dir.path());
        let Some(StoredCredential::Static { token }) = store.load("main").unwrap() else { panic!("not static") };
        assert!(token.expose().starts_with("pat-"));
        let left: Vec<_> = fs::read_dir(credentials_dir(dir.path())).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("main.json")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&credentials_dir(dir.path())), 0o700);
            assert_eq!(mode(dir.path()), 0o700);
        }
    }
}
