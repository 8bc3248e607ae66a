//! What a client sends to prove who it is, found the way users expect:
//!
//! 1. `FERRY_TOKEN` (a ferry API token);
//! 2. `MLFLOW_TRACKING_USERNAME` with `MLFLOW_TRACKING_PASSWORD` (HTTP
//!    Basic, which the mlflow client also prefers when both are set);
//! 3. `MLFLOW_TRACKING_TOKEN`;
//! 4. the token `ferry login URL` kept for this server in the user's
//!    config folder (`$XDG_CONFIG_HOME/ferry/credentials.json`, else
//!    `~/.config/ferry/credentials.json`, readable by its owner only).
//!
//! `Debug` never shows a secret.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Bearer(String),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<token>)"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <password>)"),
        }
    }
}

impl Credentials {
    /// The `Authorization` header's value.
    pub fn header(&self) -> String {
        match self {
            Self::Bearer(t) => format!("Bearer {t}"),
            Self::Basic { username, password } => {
                format!(
                    "Basic {}",
                    base64(format!("{username}:{password}").as_bytes())
                )
            }
        }
    }

    /// The credentials for the server at `base` (see the module docs).
    pub fn find(base: &str) -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(t) = var("FERRY_TOKEN") {
            return Some(Self::Bearer(t));
        }
        if let (Some(username), Some(password)) = (
            var("MLFLOW_TRACKING_USERNAME"),
            var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            return Some(Self::Basic { username, password });
        }
        if let Some(t) = var("MLFLOW_TRACKING_TOKEN") {
            return Some(Self::Bearer(t));
        }
        logins().ok()?.remove(&key(base)).map(Self::Bearer)
    }
}

/// Where `ferry login` keeps tokens.
pub fn login_file() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(dir.join("ferry").join("credentials.json"))
}

/// A server's key in the file: its URL without a trailing slash.
fn key(base: &str) -> String {
    base.trim_end_matches('/').to_owned()
}

/// Every kept token, by server.
pub fn logins() -> std::io::Result<BTreeMap<String, String>> {
    let Some(path) = login_file() else {
        return Ok(BTreeMap::new());
    };
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

/// Keeps (`Some`) or forgets (`None`) the token for `base`: the file is
/// written whole under a temporary name with mode 0600, then renamed.
pub fn remember(base: &str, token: Option<&str>) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = login_file()
        .ok_or_else(|| std::io::Error::other("neither XDG_CONFIG_HOME nor HOME is set"))?;
    let mut all = logins()?;
    match token {
        Some(t) => all.insert(key(base), t.to_owned()),
        None => all.remove(&key(base)),
    };
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".credentials.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_base64_of_user_colon_password() {
        let c = Credentials::Basic {
            username: "ana".into(),
            password: "pa:ss".into(),
        };
        assert_eq!(c.header(), "Basic YW5hOnBhOnNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(format!("{c:?}"), "Basic(ana, <password>)");
    }
}
