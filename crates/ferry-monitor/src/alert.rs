//! Alerts: what a monitor's change of state is told as (a Slack-compatible
//! JSON body, `text` and `blocks`, with the event under `ferry`), signed
//! so the receiver can tell it came from this ferry, and sent to the
//! webhook the monitor names.
//!
//! The signature is HMAC-SHA256 with the shared secret over
//! `"{timestamp}.{body}"`, sent as `X-Ferry-Signature: v1=<hex>` beside
//! `X-Ferry-Timestamp: <unix seconds>`; a receiver recomputes it over the
//! bytes it got and refuses an old timestamp (a replay).

use ferry_metadata::{AlertState, MonitorEvent, Notice};
use hmac::{KeyInit, Mac};
use serde_json::json;

pub const SIGNATURE_HEADER: &str = "X-Ferry-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Ferry-Timestamp";

/// The body of an alert about `event`.
pub fn body(notice: Notice, event: &MonitorEvent, state: &AlertState) -> serde_json::Value {
    let version = event
        .version
        .map_or_else(String::new, |v| format!(" version {v}"));
    let head = match notice {
        Notice::Failing => format!(
            ":rotating_light: {}{version}: {} is failing",
            event.model, event.check
        ),
        Notice::StillFailing => format!(
            ":rotating_light: {}{version}: {} is still failing (since {})",
            event.model,
            event.check,
            iso(state.since_ms)
        ),
        Notice::Recovered => format!(
            ":white_check_mark: {}{version}: {} recovered",
            event.model, event.check
        ),
    };
    json!({
        "text": format!("{head}: {}", event.summary),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{head}*\n{}", event.summary)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("window {} to {} · event {}", iso(event.window_start_ms), iso(event.window_end_ms), event.event_id)}]}
        ],
        "ferry": {"notice": notice.as_str(), "since_ms": state.since_ms, "event": event},
    })
}

/// `2026-11-26T14:05:30Z`.
pub fn iso(ms: i64) -> String {
    let s = ms.div_euclid(1000);
    let (y, m, d) = ferry_core::civil_from_days(s.div_euclid(86_400));
    let t = s.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// `v1=<hex>`: HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &[u8], timestamp_s: i64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .expect("HMAC takes a key of any length");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + 64);
    out.push_str("v1=");
    for b in tag.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `signature` is [`sign`]'s for these bytes (compared in
/// constant time).
pub fn verify(secret: &[u8], timestamp_s: i64, body: &[u8], signature: &str) -> bool {
    let want = sign(secret, timestamp_s, body);
    want.len() == signature.len()
        && want
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Where alerts go: a webhook over HTTP, or a test's recorder.
pub trait Notifier: Send + Sync {
    fn post(&self, url: &str, body: &[u8], headers: &[(&str, String)]) -> Result<(), String>;
}

/// Posts to the webhook (5 s at most, no redirect followed).
pub struct Webhook;

impl Notifier for Webhook {
    fn post(&self, url: &str, body: &[u8], headers: &[(&str, String)]) -> Result<(), String> {
        ferry_client::post_webhook_with(url, body, headers)
    }
}

/// Sends `body` to `url`, signed with `secret` when there is one.
pub fn send(
    notifier: &dyn Notifier,
    url: &str,
    secret: Option<&[u8]>,
    body: &serde_json::Value,
    now_ms: i64,
) -> Result<(), String> {
    let bytes = body.to_string().into_bytes();
    let ts = now_ms.div_euclid(1000);
    let mut headers = vec![(TIMESTAMP_HEADER, ts.to_string())];
    if let Some(secret) = secret {
        headers.push((SIGNATURE_HEADER, sign(secret, ts, &bytes)));
    }
    notifier.post(url, &bytes, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha256_over_the_timestamp_and_the_bytes() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(b"Jefe", 0, b"");
        assert_eq!(sig.len(), 67);
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let s = sign(b"k", 1_700_000_000, b"{\"text\":\"x\"}");
        assert!(verify(b"k", 1_700_000_000, b"{\"text\":\"x\"}", &s));
        assert!(
            !verify(b"k", 1_700_000_001, b"{\"text\":\"x\"}", &s),
            "another time"
        );
        assert!(
            !verify(b"other", 1_700_000_000, b"{\"text\":\"x\"}", &s),
            "another key"
        );
        assert!(
            !verify(b"k", 1_700_000_000, b"{\"text\":\"y\"}", &s),
            "other bytes"
        );
        assert_eq!(iso(1_795_701_930_000), "2026-11-26T14:05:30Z");
    }
}
