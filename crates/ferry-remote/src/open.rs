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
/// 5xx, throttling or timing out): 6 retries with jittered exponential
/// backoff, bounded in time. `object_store` draws each wait between the
/// first one and twice the last, so from 0.5 s the 6 waits add up to 4 to 12 s
/// (7 on average; from 0.1 s they were about 1 s, too short for a throttled
/// bucket to recover).
pub fn retry_config() -> RetryConfig {
    let mut retry = RetryConfig {
        max_retries: 6,
        retry_timeout: Duration::from_secs(60),
        ..RetryConfig::default()
    };
    retry.backoff.init_backoff = Duration::from_millis(500);
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
            let profile = if env_var("AWS_ACCESS_KEY_ID").is_none() {
                aws_profile::credentials(cfg.options.get("profile"))
            } else {
                None
            };
            if let Err(message) = credentials::aws(&env_var, profile.is_some(), &bucket) {
                return Err(Error::Config {
                    remote: cfg.name.clone(),
                    message,
                });
            }
            if let Some(creds) = profile {
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
            if let Err(message) = credentials::gcp(&env_var, gcloud_adc_exists(), &bucket) {
                return Err(Error::Config {
                    remote: cfg.name.clone(),
                    message,
                });
            }
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

/// An environment variable, if set and not empty.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether gcloud's application-default credentials file exists (what
/// `gcloud auth application-default login` writes).
fn gcloud_adc_exists() -> bool {
    std::env::var_os("HOME").is_some_and(|h| {
        Path::new(&h)
            .join(".config/gcloud/application_default_credentials.json")
            .is_file()
    })
}

/// Whether a credential source is configured, decided before any request.
/// With none, `object_store` would ask the cloud's instance metadata
/// service, which off a cloud machine answers nothing (each request waits
/// for its connect timeout, then retries): a user who forgot to export a key
/// would wait a minute for a vague error. So the metadata service is used
/// only when asked for (`FERRY_INSTANCE_IDENTITY=1`, or the cloud's own
/// variable that points at it), and otherwise the error says what to set.
pub(crate) mod credentials {
    /// The opt-in to the machine's own identity (an EC2 instance profile, a
    /// GCE or GKE service account through the metadata server).
    pub const INSTANCE_IDENTITY: &str = "FERRY_INSTANCE_IDENTITY";

    fn yes(v: Option<String>) -> bool {
        v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    }

    /// S3: static keys, a profile with keys (`profile_found`), web identity,
    /// container credentials, unsigned requests, or the opt-in.
    pub fn aws(
        env: &dyn Fn(&str) -> Option<String>,
        profile_found: bool,
        bucket: &str,
    ) -> Result<(), String> {
        match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(_), Some(_)) => return Ok(()),
            (Some(_), None) => {
                return Err(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both".into(),
                );
            }
            (None, Some(_)) => {
                return Err(
                    "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both".into(),
                );
            }
            (None, None) => {}
        }
        let web_identity =
            env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env("AWS_ROLE_ARN").is_some();
        let container = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || (env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
                && env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").is_some());
        if profile_found
            || web_identity
            || container
            || yes(env("AWS_SKIP_SIGNATURE"))
            || yes(env(INSTANCE_IDENTITY))
            || env("AWS_METADATA_ENDPOINT").is_some()
        {
            return Ok(());
        }
        let profile = match env("AWS_PROFILE") {
            Some(p) => format!(
                "AWS_PROFILE is `{p}` but ~/.aws/credentials (or AWS_SHARED_CREDENTIALS_FILE) has no keys for it \
                 (SSO and credential_process profiles are not read: export their keys, e.g. with \
                 `eval \"$(aws configure export-credentials --profile {p} --format env)\"`); "
            ),
            None => String::new(),
        };
        Err(format!(
            "no AWS credentials for bucket `{bucket}`: {profile}set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile in ~/.aws/credentials), or \
             AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN; on an EC2 instance, \
             {INSTANCE_IDENTITY}=1 uses its role"
        ))
    }

    /// GCS: a service account (file or key), application-default
    /// credentials (the variable or gcloud's file, `adc_file`), a bearer
    /// token, unsigned requests, or the opt-in.
    pub fn gcp(
        env: &dyn Fn(&str) -> Option<String>,
        adc_file: bool,
        bucket: &str,
    ) -> Result<(), String> {
        let configured = [
            "GOOGLE_SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_PATH",
            "SERVICE_ACCOUNT",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "GOOGLE_BEARER_TOKEN",
            "GCE_METADATA_HOST",
            "GCE_METADATA_ROOT",
        ]
        .iter()
        .any(|k| env(k).is_some());
        if configured
            || adc_file
            || yes(env("GOOGLE_SKIP_SIGNATURE"))
            || yes(env(INSTANCE_IDENTITY))
        {
            return Ok(());
        }
        Err(format!(
            "no Google Cloud credentials for bucket `{bucket}`: set GOOGLE_APPLICATION_CREDENTIALS \
             to a service account key file (or run `gcloud auth application-default login`); \
             on GCE or GKE, {INSTANCE_IDENTITY}=1 uses the machine's service account"
        ))
    }

    #[cfg(test)]
    mod tests {
        use std::collections::HashMap;

        fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |k| m.get(k).cloned()
        }

        #[test]
        fn s3_needs_a_source_or_the_opt_in() {
            let none = super::aws(&env(&[]), false, "b").unwrap_err();
            assert!(
                none.contains("AWS_ACCESS_KEY_ID") && none.contains("FERRY_INSTANCE_IDENTITY=1"),
                "{none}"
            );
            assert!(
                super::aws(
                    &env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")]),
                    false,
                    "b"
                )
                .is_ok()
            );
            let half = super::aws(&env(&[("AWS_ACCESS_KEY_ID", "a")]), false, "b").unwrap_err();
            assert!(half.contains("AWS_SECRET_ACCESS_KEY is not"), "{half}");
            assert!(
                super::aws(&env(&[]), true, "b").is_ok(),
                "a profile with keys"
            );
            assert!(super::aws(&env(&[("FERRY_INSTANCE_IDENTITY", "1")]), false, "b").is_ok());
            assert!(
                super::aws(
                    &env(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x")]),
                    false,
                    "b"
                )
                .is_ok()
            );
            assert!(
                super::aws(&env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")]), false, "b").is_err(),
                "web identity needs the role too"
            );
            assert!(
                super::aws(
                    &env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_ROLE_ARN", "r")]),
                    false,
                    "b"
                )
                .is_ok()
            );
            let sso = super::aws(&env(&[("AWS_PROFILE", "dev")]), false, "b").unwrap_err();
            assert!(
                sso.contains("AWS_PROFILE is `dev`") && sso.contains("export-credentials"),
                "{sso}"
            );
            assert!(super::aws(&env(&[("FERRY_INSTANCE_IDENTITY", "0")]), false, "b").is_err());
        }

        #[test]
        fn gcs_needs_a_source_or_the_opt_in() {
            let none = super::gcp(&env(&[]), false, "b").unwrap_err();
            assert!(none.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{none}");
            assert!(super::gcp(&env(&[]), true, "b").is_ok(), "gcloud's file");
            assert!(
                super::gcp(&env(&[("GOOGLE_SERVICE_ACCOUNT", "/sa.json")]), false, "b").is_ok()
            );
            assert!(super::gcp(&env(&[("FERRY_INSTANCE_IDENTITY", "true")]), false, "b").is_ok());
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
