//! Webhooks out: the registry's and rollouts' changes posted to the
//! endpoints the operator configured (`ferry server --hooks FILE`,
//! `deliver:`), in MLflow's webhook format, signed, retried with backoff,
//! every delivery and attempt in the store.
//!
//! Nothing a client sends decides where a request goes: the URLs come from
//! the operator's file only ([`check_url`]: https, or http to loopback),
//! redirects are not followed, and a receiver's answer is its status only
//! (`ferry_client::post_webhook_status`).
//!
//! The events are read from the store's histories (versions, registered
//! models, alias events, deployment events) by time, each endpoint from its
//! cursor with an overlap (rows can commit a little out of time order), so
//! no write path knows about webhooks. Each (endpoint, event) is enqueued
//! once ([`ferry_metadata::DeliveryStore::enqueue_delivery`]) and posted by
//! the server holding its lease, so replicas sharing a store deliver each
//! event once; a receiver tells a retry by `X-MLflow-Delivery-Id`, the
//! same for every attempt.
//!
//! The wire format is MLflow's (`mlflow/webhooks/delivery.py`): the body
//! `{"entity", "action", "timestamp", "data", "workspace"}`, and the
//! headers `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` (the attempt's unix
//! seconds) and `X-MLflow-Signature: v1,<base64 HMAC-SHA256 of
//! "{delivery_id}.{timestamp}.{body}">`. The body's `timestamp` is when the
//! change happened, so every attempt posts the same bytes.

use base64::Engine as _;
use ferry_core::clock::Clock;
use ferry_metadata::{
    AttemptOutcome, AttemptRecord, MetadataStore, NewWebhookDelivery, RegistryChange,
    RegistryEvent, WebhookDelivery,
};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const DELIVERY_ID: &str = "X-MLflow-Delivery-Id";
pub const TIMESTAMP: &str = "X-MLflow-Timestamp";
pub const SIGNATURE: &str = "X-MLflow-Signature";

/// An event an endpoint can subscribe to, by MLflow's name where MLflow
/// has one (`entity.action`), else ferry's (`rollout.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    RegisteredModelCreated,
    ModelVersionCreated,
    ModelVersionAliasCreated,
    ModelVersionAliasDeleted,
    RolloutStarted,
    RolloutPromoted,
    RolloutRolledBack,
    RolloutAborted,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::RegisteredModelCreated,
        Event::ModelVersionCreated,
        Event::ModelVersionAliasCreated,
        Event::ModelVersionAliasDeleted,
        Event::RolloutStarted,
        Event::RolloutPromoted,
        Event::RolloutRolledBack,
        Event::RolloutAborted,
    ];

    /// `(entity, action)`.
    pub fn parts(self) -> (&'static str, &'static str) {
        match self {
            Event::RegisteredModelCreated => ("registered_model", "created"),
            Event::ModelVersionCreated => ("model_version", "created"),
            Event::ModelVersionAliasCreated => ("model_version_alias", "created"),
            Event::ModelVersionAliasDeleted => ("model_version_alias", "deleted"),
            Event::RolloutStarted => ("rollout", "started"),
            Event::RolloutPromoted => ("rollout", "promoted"),
            Event::RolloutRolledBack => ("rollout", "rolled_back"),
            Event::RolloutAborted => ("rollout", "aborted"),
        }
    }

    /// `model_version.created`.
    pub fn name(self) -> String {
        let (e, a) = self.parts();
        format!("{e}.{a}")
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == s)
    }
}

/// An endpoint's signing secret: never shown, not even in `Debug`.
#[derive(Clone)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// Where events go, as the operator configured it.
#[derive(Clone)]
pub struct Endpoint {
    /// Unique, `[a-z0-9_-]`: the deliveries' key in the store, and what
    /// `ferry admin deliveries` shows (never the URL).
    pub name: String,
    pub url: String,
    pub secret: SigningSecret,
    /// The events it takes.
    pub events: Vec<Event>,
}

impl std::fmt::Debug for Endpoint {
    // A URL often carries a token: not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &"<redacted>")
            .field("events", &self.events)
            .finish()
    }
}

/// Whether an endpoint's name is one: 1 to 64 of `a-z`, `0-9`, `_`, `-`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `url` may be delivered to: `https://HOST[:PORT][/...]`, or
/// `http://` to this machine only (`localhost`, `127.0.0.0/8`, `[::1]`);
/// no credentials before the host, no spaces or control characters.
/// `Err` says why (without the URL, which may carry a token).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has spaces or control characters".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("is not a URL (https://host/path)".into());
    };
    let https = match scheme {
        "https" => true,
        "http" => false,
        _ => return Err("is not an https:// URL (http:// is taken to this machine only)".into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "names credentials before the host: the signature authenticates deliveries".into(),
        );
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("has an unclosed `[` in its host")?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("names no host".into());
    }
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err("has a port that is not a number from 1 to 65535".into());
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
        || host
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !https && !loopback {
        return Err(
            "is http:// to another machine: use https:// (http:// is taken to localhost, 127.0.0.1 or [::1] only)"
                .into(),
        );
    }
    Ok(())
}

/// How often and how hard the deliverer works.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Between two rounds (enqueue, then post what is due).
    pub tick: Duration,
    /// How far back each round reads again (rows that committed late).
    pub overlap_ms: i64,
    /// The wait after the first failed attempt, doubled after each.
    pub backoff_ms: i64,
    pub backoff_cap_ms: i64,
    /// Attempts before a delivery is `failed`.
    pub max_attempts: u32,
    /// Each attempt's whole request.
    pub timeout: Duration,
    /// How long a claim holds (well beyond `timeout`).
    pub lease_ms: i64,
    /// Deliveries claimed (and posted at once) a round.
    pub batch: usize,
    /// Events read from the store at a time.
    pub page: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            overlap_ms: 60_000,
            backoff_ms: 1_000,
            backoff_cap_ms: 300_000,
            max_attempts: 8,
            timeout: Duration::from_secs(10),
            lease_ms: 60_000,
            batch: 16,
            page: 500,
        }
    }
}

/// The wait after `failed` failed attempts: `backoff_ms * 2^(failed-1)`,
/// at most `backoff_cap_ms`.
pub fn backoff_ms(s: &Settings, failed: u32) -> i64 {
    let doublings = failed.saturating_sub(1).min(32);
    s.backoff_ms
        .saturating_mul(1_i64 << doublings)
        .min(s.backoff_cap_ms)
}

/// MLflow's `datetime.isoformat()` of a UTC time:
/// `2026-11-02T09:30:05.123000+00:00`.
pub fn iso_time(ms: i64) -> String {
    const DAY: i64 = 86_400_000;
    let (y, mo, d) = ferry_core::civil_from_days(ms.div_euclid(DAY));
    let t = ms.rem_euclid(DAY);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1_000 % 60,
        t % 1_000
    )
}

fn tags(t: &[(String, String)]) -> Value {
    Value::Object(
        t.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The event a change is, and its `data` (MLflow's payload for the
/// registry's events: versions as strings, tags as an object).
pub fn payload(change: &RegistryChange) -> Option<(Event, Value)> {
    Some(match change {
        RegistryChange::ModelCreated {
            name,
            description,
            tags: t,
        } => (
            Event::RegisteredModelCreated,
            json!({"name": name, "tags": tags(t), "description": description}),
        ),
        RegistryChange::VersionCreated {
            name,
            version,
            source,
            run_id,
            description,
            tags: t,
        } => (
            Event::ModelVersionCreated,
            json!({
                "name": name, "version": version.to_string(), "source": source,
                "run_id": run_id, "tags": tags(t), "description": description,
            }),
        ),
        RegistryChange::AliasSet {
            name,
            alias,
            version,
            ..
        } => (
            Event::ModelVersionAliasCreated,
            json!({"name": name, "alias": alias, "version": version.to_string()}),
        ),
        RegistryChange::AliasDeleted { name, alias, .. } => (
            Event::ModelVersionAliasDeleted,
            json!({"name": name, "alias": alias}),
        ),
        RegistryChange::Rollout {
            deployment_id,
            kind,
            model,
            candidate,
            stable,
            strategy,
            reason,
        } => {
            let event = match kind.as_str() {
                "started" => Event::RolloutStarted,
                "promoted" => Event::RolloutPromoted,
                "rolled_back" => Event::RolloutRolledBack,
                "aborted" => Event::RolloutAborted,
                _ => return None,
            };
            (
                event,
                json!({
                    "model": model, "deployment_id": deployment_id,
                    "candidate_version": candidate.to_string(),
                    "stable_version": stable.map(|s| s.to_string()),
                    "strategy": strategy, "reason": reason,
                }),
            )
        }
    })
}

/// The event and the exact body every attempt of its delivery posts.
pub fn body(e: &RegistryEvent) -> Option<(Event, String)> {
    let (event, data) = payload(&e.change)?;
    let (entity, action) = event.parts();
    let v = json!({
        "entity": entity,
        "action": action,
        "timestamp": iso_time(e.at_ms),
        "data": data,
        "workspace": e.workspace,
    });
    Some((event, v.to_string()))
}

/// The id every attempt of one event's delivery to one endpoint carries:
/// a UUID (version 8) from the two, the same whichever server enqueues it.
pub fn delivery_id(endpoint: &str, event_id: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"ferry webhook delivery\0");
    h.update(endpoint.as_bytes());
    h.update(b"\0");
    h.update(event_id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.finalize().as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// `v1,<base64 HMAC-SHA256(secret, "{delivery_id}.{timestamp}.{body}")>`,
/// as MLflow's `_generate_hmac_signature`.
pub fn signature(secret: &[u8], delivery_id: &str, timestamp: &str, body: &str) -> String {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    m.update(delivery_id.as_bytes());
    m.update(b".");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    format!("v1,{sig}")
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub enqueued: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

/// Posts one signed body; the receiver's status, or why there was none.
/// (Blocking: run off the async threads.)
pub type Poster =
    dyn Fn(&str, &[u8], &[(&str, String)], Duration) -> Result<u16, String> + Send + Sync;

/// The background task of `ferry server` with `deliver:` endpoints.
pub struct Deliverer {
    store: Arc<dyn MetadataStore>,
    endpoints: Vec<Endpoint>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    holder: String,
    post: Arc<Poster>,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn MetadataStore>,
        endpoints: Vec<Endpoint>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let holder = format!(
            "{}{}{}",
            host.chars().take(40).collect::<String>(),
            if host.is_empty() { "" } else { ":" },
            ferry_core::RunId::generate().short()
        );
        Self {
            store,
            endpoints,
            clock,
            settings,
            holder,
            post: Arc::new(ferry_client::post_webhook_status),
        }
    }

    /// Posts through `post` instead of HTTP (tests).
    pub fn with_poster(mut self, post: Arc<Poster>) -> Self {
        self.post = post;
        self
    }

    /// Who this deliverer is in the leases and attempts it records.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Every second (`Settings::tick`) a round, until `stop`; a failing
    /// store is logged and tried again next round.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let names: Vec<&str> = self.endpoints.iter().map(|e| e.name.as_str()).collect();
        tracing::info!(endpoints = ?names, holder = %self.holder, "delivering webhooks");
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "webhook deliveries: the store failed; trying again");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.settings.tick) => {}
            }
        }
    }

    /// Enqueues the new events, then posts what is due.
    pub async fn round(&self) -> ferry_metadata::Result<Round> {
        let enqueued = self.enqueue().await?;
        let mut r = self.deliver().await?;
        r.enqueued = enqueued;
        Ok(r)
    }

    /// Reads each endpoint's events since its cursor (less the overlap,
    /// never before its start) and enqueues those it takes; how many were
    /// new.
    pub async fn enqueue(&self) -> ferry_metadata::Result<usize> {
        if self.endpoints.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let mut from = Vec::with_capacity(self.endpoints.len());
        for ep in &self.endpoints {
            let c = self.store.webhook_cursor(&ep.name, now).await?;
            from.push(
                c.started_ms
                    .max(c.scanned_ms.saturating_sub(self.settings.overlap_ms)),
            );
        }
        let mut since = from.iter().copied().min().unwrap_or(now);
        let base = self.settings.page.max(1);
        let mut page = base;
        let mut new = 0;
        loop {
            let events = self.store.registry_events(since, page).await?;
            for e in &events {
                let Some((event, body)) = body(e) else {
                    continue;
                };
                for (ep, from) in self.endpoints.iter().zip(&from) {
                    if e.at_ms < *from || !ep.events.contains(&event) {
                        continue;
                    }
                    let d = NewWebhookDelivery {
                        endpoint: ep.name.clone(),
                        event_id: e.id.clone(),
                        delivery_id: delivery_id(&ep.name, &e.id),
                        event: event.name(),
                        event_ms: e.at_ms,
                        body: body.clone(),
                        now_ms: now,
                    };
                    if self.store.enqueue_delivery(&d).await? {
                        new += 1;
                    }
                }
            }
            // A full page: read on from its last time (the events at that
            // time again, which enqueue nothing twice). A full page all at
            // one millisecond would read itself again: read a page twice as
            // large from that time instead, so no event is skipped however
            // many share it.
            match events.last() {
                Some(last) if events.len() >= page && last.at_ms > since => {
                    since = last.at_ms;
                    page = base;
                }
                Some(_) if events.len() >= page => page = page.saturating_mul(2),
                _ => break,
            }
        }
        for ep in &self.endpoints {
            self.store.advance_webhook_cursor(&ep.name, now).await?;
        }
        Ok(new)
    }

    /// Claims the due deliveries and posts them, at once; each attempt
    /// recorded with its outcome.
    pub async fn deliver(&self) -> ferry_metadata::Result<Round> {
        let names: Vec<String> = self.endpoints.iter().map(|e| e.name.clone()).collect();
        let claimed = self
            .store
            .claim_deliveries(
                &names,
                &self.holder,
                self.clock.now_ms(),
                self.settings.lease_ms,
                self.settings.batch,
            )
            .await?;
        let attempts = claimed.into_iter().filter_map(|d| {
            let ep = self.endpoints.iter().find(|e| e.name == d.endpoint)?;
            Some(self.attempt(ep, d))
        });
        let mut round = Round::default();
        for outcome in futures_util::future::join_all(attempts).await {
            match outcome? {
                Some(AttemptOutcome::Delivered) => round.delivered += 1,
                Some(AttemptOutcome::Retry { .. }) => round.retrying += 1,
                Some(AttemptOutcome::Failed) => round.failed += 1,
                None => {}
            }
        }
        Ok(round)
    }

    /// One attempt of a claimed delivery (`None`: the lease was lost, and
    /// the attempt not recorded).
    async fn attempt(
        &self,
        ep: &Endpoint,
        d: WebhookDelivery,
    ) -> ferry_metadata::Result<Option<AttemptOutcome>> {
        let at_ms = self.clock.now_ms();
        let timestamp = at_ms.div_euclid(1_000).to_string();
        let sig = signature(&ep.secret.0, &d.delivery_id, &timestamp, &d.body);
        let (url, body, id, post) = (
            ep.url.clone(),
            d.body.clone(),
            d.delivery_id.clone(),
            self.post.clone(),
        );
        let timeout = self.settings.timeout;
        let started = std::time::Instant::now();
        let answer = tokio::task::spawn_blocking(move || {
            let headers = [(DELIVERY_ID, id), (TIMESTAMP, timestamp), (SIGNATURE, sig)];
            post(&url, body.as_bytes(), &headers, timeout)
        })
        .await
        .unwrap_or_else(|e| Err(format!("the delivery's thread failed: {e}")));
        let duration_ms = started.elapsed().as_millis().min(i64::MAX as u128) as i64;
        let (status, error) = match answer {
            Ok(s) if (200..300).contains(&s) => (Some(i64::from(s)), None),
            Ok(s) if (300..400).contains(&s) => (
                Some(i64::from(s)),
                Some(format!("HTTP {s}: a redirect, which is not followed")),
            ),
            Ok(s) => (Some(i64::from(s)), Some(format!("HTTP {s}"))),
            Err(e) => (None, Some(e)),
        };
        let tried = d.attempts + 1;
        let outcome = if error.is_none() {
            AttemptOutcome::Delivered
        } else if tried >= self.settings.max_attempts {
            AttemptOutcome::Failed
        } else {
            AttemptOutcome::Retry {
                next_attempt_ms: self.clock.now_ms() + backoff_ms(&self.settings, tried),
            }
        };
        match (&outcome, &error) {
            (AttemptOutcome::Failed, Some(e)) => tracing::warn!(
                endpoint = %ep.name, event = %d.event, delivery = %d.delivery_id, attempts = tried, error = %e,
                "webhook delivery failed: not tried again"
            ),
            (_, Some(e)) => tracing::info!(
                endpoint = %ep.name, event = %d.event, delivery = %d.delivery_id, attempt = tried, error = %e,
                "webhook delivery attempt failed: tried again later"
            ),
            _ => tracing::debug!(
                endpoint = %ep.name, event = %d.event, delivery = %d.delivery_id, attempt = tried,
                "webhook delivered"
            ),
        }
        let recorded = self
            .store
            .record_attempt(&AttemptRecord {
                endpoint: d.endpoint.clone(),
                event_id: d.event_id.clone(),
                holder: self.holder.clone(),
                at_ms,
                duration_ms,
                status,
                error,
                outcome,
            })
            .await?;
        if !recorded {
            tracing::warn!(endpoint = %ep.name, delivery = %d.delivery_id, "a webhook delivery's lease lapsed during its attempt; another server retries it");
        }
        Ok(recorded.then_some(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_mlflows() {
        // Computed independently, by MLflow itself:
        // python -c 'from mlflow.webhooks.delivery import _generate_hmac_signature as g;
        //   print(g("whsec-test-0123456789", "5f0c8f2e-1a2b-4c3d-8e9f-0123456789ab",
        //   "1767225600", "{\"entity\": \"model_version\"}"))'
        // (and by hand: base64(hmac.new(secret, f"{id}.{ts}.{body}", sha256).digest())).
        let sig = signature(
            b"whsec-test-0123456789",
            "5f0c8f2e-1a2b-4c3d-8e9f-0123456789ab",
            "1767225600",
            "{\"entity\": \"model_version\"}",
        );
        assert_eq!(sig, "v1,YXSKKt7J+NnEGcn5n1c1mnzx3HWXHlVb+8obnzZ0EPw=");
        assert_ne!(
            signature(
                b"whsec-test-0123456789",
                "5f0c8f2e-1a2b-4c3d-8e9f-0123456789ab",
                "1767225601",
                "{\"entity\": \"model_version\"}",
            ),
            sig,
            "the timestamp is signed"
        );
        assert_eq!(
            format!("{:?}", SigningSecret::new("s3cret")),
            "SigningSecret(<redacted>)"
        );
    }

    #[test]
    fn delivery_ids_are_stable_per_endpoint_and_event() {
        let a = delivery_id("ci", "model_version:m:1:5");
        assert_eq!(a, delivery_id("ci", "model_version:m:1:5"));
        assert_ne!(a, delivery_id("audit", "model_version:m:1:5"));
        assert_ne!(a, delivery_id("ci", "model_version:m:2:5"));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 8);
    }

    #[test]
    fn times_are_pythons_isoformat_in_utc() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            iso_time(1_767_225_600_123),
            "2026-01-01T00:00:00.123000+00:00"
        );
        assert_eq!(
            iso_time(1_772_451_005_007),
            "2026-03-02T11:30:05.007000+00:00"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Settings::default();
        let waits: Vec<i64> = (1..=10).map(|n| backoff_ms(&s, n)).collect();
        assert_eq!(
            waits,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000
            ]
        );
        assert_eq!(backoff_ms(&s, u32::MAX), 300_000);
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_taken() {
        for ok in [
            "https://ci.example.com/ferry-events",
            "https://ci.example.com:8443/x?token=abc",
            "http://127.0.0.1:9000/hook",
            "http://127.8.0.1/hook",
            "http://localhost:8080",
            "http://[::1]:9000/hook",
            "https://[2001:db8::1]/hook",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://ci.example.com/hook", "http:// to another machine"),
            ("http://10.0.0.5/hook", "http:// to another machine"),
            (
                "http://169.254.169.254/latest/meta-data",
                "http:// to another machine",
            ),
            ("http://0.0.0.0:80/", "http:// to another machine"),
            ("http://[::ffff:127.0.0.1]/", "http:// to another machine"),
            ("http://127.0.0.1.evil.com/", "http:// to another machine"),
            ("HTTPS://ci.example.com/", "not an https:// URL"),
            ("ftp://ci.example.com/", "not an https:// URL"),
            ("file:///etc/passwd", "not an https:// URL"),
            ("ci.example.com/hook", "not a URL"),
            ("https://user:pw@ci.example.com/", "credentials"),
            ("http://127.0.0.1@evil.com/", "credentials"),
            ("https:///hook", "no host"),
            ("https://ci.example.com:99999/", "port"),
            ("https://ci.example.com/a b", "spaces"),
            ("https://[::1/", "unclosed"),
        ] {
            let e = check_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(
                !e.contains("example") && !e.contains("evil"),
                "no URL in the error: {e}"
            );
        }
        assert!(valid_name("ci-2_prod"));
        for bad in ["", "CI", "c i", "a/b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        for e in Event::ALL {
            assert_eq!(Event::parse(&e.name()), Some(e));
        }
        assert_eq!(Event::parse("model_version.deleted"), None);
    }

    fn event(change: RegistryChange) -> RegistryEvent {
        RegistryEvent {
            id: "x".into(),
            at_ms: 1_767_225_600_123,
            workspace: "research".into(),
            change,
        }
    }

    fn shown(change: RegistryChange) -> (String, Value) {
        let (e, body) = body(&event(change)).unwrap();
        (e.name(), serde_json::from_str(&body).unwrap())
    }

    #[test]
    fn payloads_are_mlflows() {
        let (e, v) = shown(RegistryChange::ModelCreated {
            name: "churn".into(),
            description: Some("predicts churn".into()),
            tags: vec![("team".into(), "ml".into())],
        });
        assert_eq!(e, "registered_model.created");
        insta::assert_json_snapshot!(v, @r#"
        {
          "entity": "registered_model",
          "action": "created",
          "timestamp": "2026-01-01T00:00:00.123000+00:00",
          "data": {
            "name": "churn",
            "tags": {
              "team": "ml"
            },
            "description": "predicts churn"
          },
          "workspace": "research"
        }
        "#);
        let (e, v) = shown(RegistryChange::VersionCreated {
            name: "churn".into(),
            version: 3,
            source: "models:/m-0123".into(),
            run_id: Some("abcd1234".into()),
            description: None,
            tags: vec![("stage".into(), "candidate".into())],
        });
        assert_eq!(e, "model_version.created");
        insta::assert_json_snapshot!(v, @r#"
        {
          "entity": "model_version",
          "action": "created",
          "timestamp": "2026-01-01T00:00:00.123000+00:00",
          "data": {
            "name": "churn",
            "version": "3",
            "source": "models:/m-0123",
            "run_id": "abcd1234",
            "tags": {
              "stage": "candidate"
            },
            "description": null
          },
          "workspace": "research"
        }
        "#);
        let (e, v) = shown(RegistryChange::AliasSet {
            name: "churn".into(),
            alias: "production".into(),
            version: 3,
            previous: Some(2),
            reason: Some("canary passed".into()),
        });
        assert_eq!(e, "model_version_alias.created");
        insta::assert_json_snapshot!(v["data"], @r#"
        {
          "name": "churn",
          "alias": "production",
          "version": "3"
        }
        "#);
        let (e, v) = shown(RegistryChange::AliasDeleted {
            name: "churn".into(),
            alias: "staging".into(),
            previous: Some(2),
            reason: None,
        });
        assert_eq!(e, "model_version_alias.deleted");
        insta::assert_json_snapshot!(v["data"], @r#"
        {
          "name": "churn",
          "alias": "staging"
        }
        "#);
        let rollout = |kind: &str| RegistryChange::Rollout {
            deployment_id: "0d1a26e67d8f".into(),
            kind: kind.into(),
            model: "churn".into(),
            candidate: 3,
            stable: Some(2),
            strategy: "canary".into(),
            reason: Some("error rate 4.1% > 1%".into()),
        };
        let (e, v) = shown(rollout("rolled_back"));
        assert_eq!(e, "rollout.rolled_back");
        insta::assert_json_snapshot!(v, @r#"
        {
          "entity": "rollout",
          "action": "rolled_back",
          "timestamp": "2026-01-01T00:00:00.123000+00:00",
          "data": {
            "model": "churn",
            "deployment_id": "0d1a26e67d8f",
            "candidate_version": "3",
            "stable_version": "2",
            "strategy": "canary",
            "reason": "error rate 4.1% > 1%"
          },
          "workspace": "research"
        }
        "#);
        for (kind, name) in [
            ("started", "rollout.started"),
            ("promoted", "rollout.promoted"),
            ("aborted", "rollout.aborted"),
        ] {
            assert_eq!(shown(rollout(kind)).0, name);
        }
        assert!(body(&event(rollout("advanced"))).is_none());
    }
}
