//! Where stages run: the top-level `executor:` (`local`, the default, or
//! `kubernetes`), the top-level `kubernetes:` (the namespace, image,
//! service account, the secrets that give pods the remote's credentials, and
//! the placement every stage gets) and a stage's own `kubernetes:` (its
//! image and placement: node selector and tolerations). Decoded with the
//! rest of the spec; every name that becomes a Kubernetes object's field is
//! checked here against Kubernetes' own syntax, so a bad one is an error
//! naming its line, not an API server's 422 in the middle of a run.

use crate::diag::Sink;
use crate::load::{Sp, map_entries, string, string_list};
use crate::node::{Kind, Node};
use std::collections::BTreeMap;

pub const KUBERNETES_KEYS: &[&str] = &[
    "namespace",
    "image",
    "service_account",
    "env_from",
    "remote",
    "node_selector",
    "tolerations",
];
pub const STAGE_KUBERNETES_KEYS: &[&str] = &["image", "node_selector", "tolerations"];
pub const TOLERATION_KEYS: &[&str] = &["key", "operator", "value", "effect", "seconds"];

/// What runs a pipeline's stage commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// Processes on this machine.
    #[default]
    Local,
    /// A Kubernetes Job per stage that must run.
    Kubernetes,
}

impl ExecutorKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "kubernetes" => Some(Self::Kubernetes),
            _ => None,
        }
    }
}

/// The top-level `kubernetes:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Kubernetes {
    /// The namespace Jobs are made in (the kubeconfig's when `None`).
    pub namespace: Option<String>,
    /// The image stage pods run (ferry and a Python toolchain).
    pub image: Option<String>,
    pub service_account: Option<String>,
    /// Secrets whose keys become the pods' variables (the remote's
    /// credentials), by name: never a value.
    pub env_from: Vec<String>,
    /// The remote stage files travel through (the default remote when `None`).
    pub remote: Option<String>,
    /// Every stage's placement; a stage's own adds to it.
    pub placement: Placement,
}

/// Where a stage's pod may go and what it runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Placement {
    pub image: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
}

impl Placement {
    /// `self` with `over` on top: its image if it has one, its selector
    /// labels over these, its tolerations after these.
    pub fn merged(&self, over: Option<&Placement>) -> Placement {
        let Some(over) = over else {
            return self.clone();
        };
        let mut node_selector = self.node_selector.clone();
        node_selector.extend(over.node_selector.clone());
        Placement {
            image: over.image.clone().or_else(|| self.image.clone()),
            node_selector,
            tolerations: self
                .tolerations
                .iter()
                .chain(&over.tolerations)
                .cloned()
                .collect(),
        }
    }
}

/// A pod toleration, as Kubernetes spells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Exists` or `Equal`.
    pub operator: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; all when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// Whether `s` is a DNS-1123 label (a namespace, a service account's and
/// most objects' names): lowercase letters, digits and `-`, at most 63,
/// starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a DNS-1123 subdomain (a Secret's name): labels joined by dots.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A label's value: at most 63 of letters, digits, `-`, `_`, `.`, starting
/// and ending with a letter or digit (or empty).
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// A label's key: an optional DNS subdomain prefix and `/`, then a name as
/// a value but not empty.
fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns_subdomain(p))
        && !name.is_empty()
        && is_label_value(name)
}

/// An image reference: no whitespace, no control characters, not empty, no
/// leading `-` (it is an argument nowhere, but a pod spec's field).
fn is_image(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && !s.starts_with('-')
        && s.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// The top-level `executor:`.
pub(crate) fn decode_executor(v: &Node, sink: &mut Sink<'_>) -> Option<Sp<ExecutorKind>> {
    let (s, pos) = string(v, "executor", sink)?;
    match ExecutorKind::parse(&s) {
        Some(k) => Some((k, pos)),
        None => {
            sink.err_hint(
                pos,
                "executor",
                format!("unknown executor `{s}`"),
                "write `local` (processes on this machine) or `kubernetes` (a Job per stage)",
            );
            None
        }
    }
}

/// The top-level `kubernetes:`, with where its `remote:` is (where it is
/// when it has none).
pub(crate) fn decode_kubernetes(v: &Node, sink: &mut Sink<'_>) -> Option<Sp<Kubernetes>> {
    let entries = map_entries(v, "kubernetes", KUBERNETES_KEYS, sink)?;
    let mut k8s = Kubernetes::default();
    let mut remote_pos = v.pos;
    for (k, x) in entries {
        let p = format!("kubernetes.{}", k.name);
        match k.name.as_str() {
            "namespace" => k8s.namespace = named(x, &p, sink, is_dns_label, "a DNS label"),
            "service_account" => {
                k8s.service_account = named(x, &p, sink, is_dns_subdomain, "a DNS subdomain")
            }
            "remote" => {
                k8s.remote = string(x, &p, sink).map(|s| s.0);
                remote_pos = x.pos;
            }
            "env_from" => {
                for (i, (name, pos)) in string_list(x, &p, sink).into_iter().enumerate() {
                    if is_dns_subdomain(&name) {
                        k8s.env_from.push(name);
                    } else {
                        sink.err_hint(
                            pos,
                            &format!("{p}[{i}]"),
                            format!("`{name}` is not a Secret's name"),
                            "a Secret's name: lowercase letters, digits, `-` and `.`",
                        );
                    }
                }
            }
            _ => placement_key(&mut k8s.placement, &k.name, x, &p, sink),
        }
    }
    Some((k8s, remote_pos))
}

/// A stage's `kubernetes:`.
pub(crate) fn decode_stage_kubernetes(
    v: &Node,
    path: &str,
    sink: &mut Sink<'_>,
) -> Option<Placement> {
    let entries = map_entries(v, path, STAGE_KUBERNETES_KEYS, sink)?;
    let mut placement = Placement::default();
    for (k, x) in entries {
        let p = format!("{path}.{}", k.name);
        placement_key(&mut placement, &k.name, x, &p, sink);
    }
    Some(placement)
}

/// `image`, `node_selector` or `tolerations`, into `placement`.
fn placement_key(placement: &mut Placement, key: &str, x: &Node, p: &str, sink: &mut Sink<'_>) {
    match key {
        "image" => placement.image = named(x, p, sink, is_image, "an image reference"),
        "node_selector" => placement.node_selector = node_selector(x, p, sink),
        "tolerations" => placement.tolerations = tolerations(x, p, sink),
        // Unknown keys: map_entries reported them.
        _ => {}
    }
}

/// A string at `p` that `ok` accepts.
fn named(
    x: &Node,
    p: &str,
    sink: &mut Sink<'_>,
    ok: fn(&str) -> bool,
    what: &str,
) -> Option<String> {
    let (s, pos) = string(x, p, sink)?;
    if ok(&s) {
        Some(s)
    } else {
        sink.err(pos, p, format!("`{s}` is not {what}"));
        None
    }
}

fn node_selector(x: &Node, p: &str, sink: &mut Sink<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Kind::Map(m) = &x.kind else {
        sink.err(
            x.pos,
            p,
            format!(
                "expected a mapping of node labels to values, found {}",
                x.kind.type_name()
            ),
        );
        return out;
    };
    for (k, v) in m {
        let kp = format!("{p}.{}", k.name);
        if !is_label_key(&k.name) {
            sink.err(k.pos, &kp, format!("`{}` is not a label key", k.name));
            continue;
        }
        if let Some((val, pos)) = string(v, &kp, sink) {
            if is_label_value(&val) {
                out.insert(k.name.clone(), val);
            } else {
                sink.err(pos, &kp, format!("`{val}` is not a label value"));
            }
        }
    }
    out
}

fn tolerations(x: &Node, p: &str, sink: &mut Sink<'_>) -> Vec<Toleration> {
    let Kind::Seq(items) = &x.kind else {
        sink.err(
            x.pos,
            p,
            format!(
                "expected a list of tolerations, found {}",
                x.kind.type_name()
            ),
        );
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| toleration(item, &format!("{p}[{i}]"), sink))
        .collect()
}

fn toleration(item: &Node, p: &str, sink: &mut Sink<'_>) -> Option<Toleration> {
    let entries = map_entries(item, p, TOLERATION_KEYS, sink)?;
    let mut t = Toleration {
        key: None,
        operator: "Equal".into(),
        value: None,
        effect: None,
        toleration_seconds: None,
    };
    let mut ok = true;
    for (k, x) in entries {
        let kp = format!("{p}.{}", k.name);
        match k.name.as_str() {
            "key" => t.key = named(x, &kp, sink, is_label_key, "a label key"),
            "value" => t.value = named(x, &kp, sink, is_label_value, "a label value"),
            "operator" => match string(x, &kp, sink) {
                Some((s, _)) if s == "Exists" || s == "Equal" => t.operator = s,
                Some((s, pos)) => {
                    sink.err(pos, &kp, format!("operator `{s}`: write Exists or Equal"));
                    ok = false;
                }
                None => ok = false,
            },
            "effect" => match string(x, &kp, sink) {
                Some((s, _)) if ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&&*s) => {
                    t.effect = Some(s)
                }
                Some((s, pos)) => {
                    sink.err(
                        pos,
                        &kp,
                        format!("effect `{s}`: write NoSchedule, PreferNoSchedule or NoExecute"),
                    );
                    ok = false;
                }
                None => ok = false,
            },
            "seconds" => match x.kind {
                Kind::Int(n) if n >= 0 => t.toleration_seconds = Some(n),
                _ => {
                    sink.err(x.pos, &kp, "expected a whole number of seconds");
                    ok = false;
                }
            },
            _ => {}
        }
    }
    if t.operator == "Exists" && t.value.is_some() {
        sink.err(item.pos, p, "an `Exists` toleration takes no `value`");
        ok = false;
    }
    if t.operator == "Equal" && t.key.is_none() {
        sink.err_hint(
            item.pos,
            p,
            "an `Equal` toleration needs a `key`",
            "add `key:`, or `operator: Exists` to tolerate every taint",
        );
        ok = false;
    }
    ok.then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names_follow_kubernetes_syntax() {
        assert!(is_dns_label("ml-team"));
        assert!(!is_dns_label("ML"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("s3-credentials.v1"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(is_label_key("cloud.google.com/gke-accelerator"));
        assert!(is_label_key("pool"));
        assert!(!is_label_key("/pool"));
        assert!(!is_label_key("a b"));
        assert!(is_label_value("nvidia-tesla-t4"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
        assert!(is_image("ghcr.io/acme/ferry:1.2@sha256:abc"));
        assert!(!is_image("a b"));
        assert!(!is_image("--privileged"));
    }

    #[test]
    fn a_stage_placement_goes_over_the_pipeline_one() {
        let base = Placement {
            image: Some("base".into()),
            node_selector: BTreeMap::from([("pool".into(), "cpu".into())]),
            tolerations: vec![],
        };
        let stage = Placement {
            image: None,
            node_selector: BTreeMap::from([("pool".into(), "gpu".into())]),
            tolerations: vec![Toleration {
                key: Some("nvidia.com/gpu".into()),
                operator: "Exists".into(),
                value: None,
                effect: Some("NoSchedule".into()),
                toleration_seconds: None,
            }],
        };
        let m = base.merged(Some(&stage));
        assert_eq!(m.image.as_deref(), Some("base"));
        assert_eq!(m.node_selector["pool"], "gpu");
        assert_eq!(m.tolerations.len(), 1);
        assert_eq!(base.merged(None), base);
    }
}
