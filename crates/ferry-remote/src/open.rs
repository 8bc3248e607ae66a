//! Builds the object store behind a remote from its configuration and each
//! cloud's standard credential chain.

use crate::Error;
use ferry_spec::remote::{Location, RemoteConfig};
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How hard to try before giving up on a request (the service answering
/// 5xx, throttling or timing out): exponential backoff, bounded in time.
pub fn retry_config() -> RetryConfig {
    let mut retry = RetryConfig {
        max_retries: 6,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    };
    retry.backoff.init_backoff = Duration::from_millis(100);
    retry.backoff.max_backoff = Duration::from_secs(8);
    retry
}

fn client_options(cfg: &RemoteConfig) -> ClientOptions {
    let allow_http = cfg.options.get("allow_http").map(String::as_str) == Some("true")
        || cfg
            .options
            .get("endpoint")
            .is_some_and(|e| e.starts_with("http://"));
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
}

/// The store and the prefix under which the remote's keys live.
pub(crate) fn open(
    cfg: &RemoteConfig,
    base: &Path,
) -> Result<(Arc<dyn ObjectStore>, String), Error> {
    let location = Location::parse(&cfg.url, base).map_err(|message| Error::Config {
        remote: cfg.name.clone(),
        message,
    })?;
    let failed = |e: object_store::Error| Error::Config {
        remote: cfg.name.clone(),
        message: e.to_string(),
    };
    match location {
        Location::Folder(dir) => {
            if !dir.is_dir() {
                std::fs::create_dir_all(&dir).map_err(|e| Error::Config {
                    remote: cfg.name.clone(),
                    message: format!("cannot create the folder {}: {e}", dir.display()),
                })?;
            }
            let fs = LocalFileSystem::new_with_prefix(&dir).map_err(failed)?;
            Ok((Arc::new(fs), String::new()))
        }
        Location::S3 { bucket, prefix } => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry_config())
                .with_client_options(client_options(cfg));
            if let Some(e) = cfg.options.get("endpoint") {
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            }
            if let Some(r) = cfg.options.get("region") {
                b = b.with_region(r);
            }
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && let Some(creds) = aws_profile::credentials(cfg.options.get("profile"))
            {
                b = b
                    .with_access_key_id(creds.access_key_id)
                    .with_secret_access_key(creds.secret_access_key);
                if let Some(t) = creds.session_token {
                    b = b.with_token(t);
                }
                if let Some(r) = creds.region.filter(|_| !cfg.options.contains_key("region")) {
                    b = b.with_region(r);
                }
            }
            Ok((Arc::new(b.build().map_err(failed)?), prefix))
        }
        Location::Gcs { bucket, prefix } => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry_config())
                .with_client_options(client_options(cfg));
            if let Some(e) = cfg.options.get("endpoint") {
                b = b.with_base_url(e);
            }
            Ok((Arc::new(b.build().map_err(failed)?), prefix))
        }
    }
}

/// The AWS shared credentials and config files (`~/.aws/credentials`,
/// `~/.aws/config`, or `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`),
/// read for the profile named by the remote's `profile` setting, else
/// `AWS_PROFILE`, else `default`: the part of AWS's standard chain that
/// `object_store` leaves to its callers.
mod aws_profile {
    use std::path::PathBuf;

    pub struct Credentials {
        pub access_key_id: String,
        pub secret_access_key: String,
        pub session_token: Option<String>,
        pub region: Option<String>,
    }

    fn home_file(var: &str, rel: &str) -> Option<PathBuf> {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(rel)))
    }

    /// The `key = value` pairs of `[section]` in an INI file.
    pub(super) fn section(text: &str, wanted: &str) -> Vec<(String, String)> {
        let mut inside = false;
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == wanted;
            } else if inside && let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        out
    }

    pub fn credentials(profile: Option<&String>) -> Option<Credentials> {
        let profile = profile
            .cloned()
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".into());
        let creds = std::fs::read_to_string(home_file(
            "AWS_SHARED_CREDENTIALS_FILE",
            ".aws/credentials",
        )?)
        .ok()?;
        let get = |pairs: &[(String, String)], k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let pairs = section(&creds, &profile);
        let config_section = if profile == "default" {
            profile.clone()
        } else {
            format!("profile {profile}")
        };
        let region = home_file("AWS_CONFIG_FILE", ".aws/config")
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|c| get(&section(&c, &config_section), "region"));
        Some(Credentials {
            access_key_id: get(&pairs, "aws_access_key_id")?,
            secret_access_key: get(&pairs, "aws_secret_access_key")?,
            session_token: get(&pairs, "aws_session_token"),
            region,
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn sections_are_read_by_name() {
            let text = "[default]\naws_access_key_id = A\n# c\n[profile x]\nregion=eu-west-1\n";
            assert_eq!(
                super::section(text, "default"),
                vec![("aws_access_key_id".into(), "A".into())]
            );
            assert_eq!(
                super::section(text, "profile x"),
                vec![("region".into(), "eu-west-1".into())]
            );
            assert!(super::section(text, "y").is_empty());
        }
    }
}
