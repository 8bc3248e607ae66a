//! Phase two: the node tree to a validated [`Pipeline`], collecting every
//! problem on the way (unknown keys, wrong types, graph errors) in one pass.

use crate::diag::{Diagnostic, Diagnostics, Sink, suggest};
use crate::node::{Key, Kind, Node, Pos, key_path, parse_yaml};
use crate::pipeline::{
    Check, CheckKind, DRIFT_METHODS, Gate, Pipeline, PythonEnv, Register, Stage, path_within,
};
use ferry_core::{ModelName, StageName};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Keys ferry.yaml accepts at the top level (besides `x-*` extension keys,
/// which are ignored and are the place for YAML anchors).
pub const TOP_KEYS: &[&str] = &[
    "name",
    "workspace",
    "params",
    "env",
    "stages",
    "gates",
    "register",
    "remotes",
    "cache",
    "cost",
    "monitor",
    "on",
    "deploy",
    "executor",
    "kubernetes",
];
/// `cache:` keys: how restores put files into the work tree.
pub const CACHE_KEYS: &[&str] = &["link"];
/// A remote's keys: its URL, whether it is the default, and its settings.
pub const REMOTE_KEYS: &[&str] = &[
    "url",
    "default",
    "endpoint",
    "region",
    "allow_http",
    "profile",
    "push",
];
pub const STAGE_KEYS: &[&str] = &[
    "cmd",
    "desc",
    "deps",
    "outs",
    "params",
    "metrics",
    "timeout",
    "retries",
    "check",
    "data",
    "expect",
    "reference",
    "current",
    "report",
    "html",
    "warn_only",
    "method",
    "threshold",
    "drift_share",
    "columns",
    "resources",
    "max_cost",
    "kubernetes",
];
pub const ENV_KEYS: &[&str] = &["python"];
pub const PYTHON_KEYS: &[&str] = &["requirements", "interpreter"];
pub const GATE_KEYS: &[&str] = &["name", "expr"];
pub const REGISTER_KEYS: &[&str] = &["model", "artifact", "alias", "signature"];
pub const SIGNATURE_KEYS: &[&str] = &["inputs", "from", "exclude"];

/// How the loader sees the project's files. The loader does no IO of its own.
pub trait Files {
    /// The text of a file relative to the project root; `Ok(None)` if absent.
    fn read(&self, path: &str) -> Result<Option<String>, String>;
    fn exists(&self, path: &str) -> bool;
}

/// Loads and validates a pipeline spec. `spec_file` is the name used in
/// messages; `default_name` names the pipeline when the spec does not.
pub fn load(
    spec_file: &str,
    spec_text: &str,
    default_name: &str,
    files: &dyn Files,
) -> Result<Pipeline, Diagnostics> {
    let mut sources = vec![(spec_file.to_owned(), spec_text.to_owned())];
    let mut sink = Sink::new(spec_file);
    let root = match parse_yaml(spec_text) {
        Ok(n) => n,
        Err(e) => {
            sink.err(e.pos, "", format!("invalid YAML: {}", e.message));
            return Err(Diagnostics::new(sink.items, sources));
        }
    };
    let raw = decode(&root, &mut sink);

    // The params file: read it only when something can use it.
    let params_file = raw
        .params_file
        .as_ref()
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| "params.yaml".to_owned());
    let mut params_sink_items = Vec::new();
    let params_root = match files.read(&params_file) {
        Ok(Some(text)) => {
            let parsed = parse_yaml(&text);
            sources.push((params_file.clone(), text));
            match parsed {
                Ok(n) if matches!(n.kind, Kind::Map(_) | Kind::Null) => Some(n),
                Ok(n) => {
                    params_sink_items.push(Diagnostic {
                        file: params_file.clone(),
                        pos: n.pos,
                        key_path: String::new(),
                        message: format!(
                            "a params file must be a mapping, found {}",
                            n.kind.type_name()
                        ),
                        hint: None,
                    });
                    None
                }
                Err(e) => {
                    params_sink_items.push(Diagnostic {
                        file: params_file.clone(),
                        pos: e.pos,
                        key_path: String::new(),
                        message: format!("invalid YAML: {}", e.message),
                        hint: None,
                    });
                    None
                }
            }
        }
        Ok(None) => {
            if let Some((_, pos)) = &raw.params_file {
                sink.err(
                    *pos,
                    "params",
                    format!("the params file `{params_file}` does not exist"),
                );
            }
            None
        }
        Err(e) => {
            sink.err(
                Pos { line: 1, column: 1 },
                "params",
                format!("cannot read `{params_file}`: {e}"),
            );
            None
        }
    };
    let params_ok = params_sink_items.is_empty();
    let mut v = Validator {
        sink,
        spec_text,
        params_file: &params_file,
        params: params_root.as_ref(),
        params_ok,
        files,
    };
    let pipeline = v.validate(raw, default_name);
    let mut items = v.sink.items;
    items.extend(params_sink_items);
    match pipeline {
        Some(p) if items.is_empty() => Ok(p),
        _ => Err(Diagnostics::new(items, sources)),
    }
}

pub(crate) type Sp<T> = (T, Pos);

#[derive(Default)]
struct RawSpec {
    name: Option<Sp<String>>,
    workspace: Option<Sp<String>>,
    params_file: Option<Sp<String>>,
    env: Option<Sp<RawPython>>,
    stages: Vec<RawStage>,
    gates: Vec<RawGate>,
    register: Option<RawRegister>,
    remotes: Vec<crate::RemoteConfig>,
    link: ferry_core::LinkMode,
    cost: crate::cost::RawCost,
    monitor: crate::monitor::RawMonitor,
    on: Option<crate::Triggers>,
    deploy: Option<Sp<crate::DeployPolicy>>,
    executor: Option<Sp<crate::ExecutorKind>>,
    kubernetes: Option<Sp<crate::Kubernetes>>,
}

struct RawPython {
    requirements: Option<Sp<String>>,
    interpreter: Option<Sp<String>>,
}

struct RawStage {
    name: Sp<String>,
    cmd: Option<Sp<String>>,
    desc: Option<String>,
    deps: Vec<Sp<String>>,
    outs: Vec<Sp<String>>,
    params: Vec<Sp<String>>,
    metrics: Option<Sp<String>>,
    timeout: Option<Sp<Duration>>,
    retries: Option<u32>,
    resources: Option<Sp<ferry_cost::Requested>>,
    max_cost: Option<Sp<f64>>,
    placement: Option<crate::Placement>,
    check: Option<Sp<String>>,
    check_keys: Vec<(String, Pos)>,
    data: Option<Sp<String>>,
    expect: Option<Sp<String>>,
    reference: Option<Sp<String>>,
    current: Option<Sp<String>>,
    report: Option<Sp<String>>,
    html: Option<Sp<String>>,
    warn_only: bool,
    method: Option<Sp<String>>,
    threshold: Option<f64>,
    thresholds: Vec<(String, f64)>,
    drift_share: Option<Sp<f64>>,
    columns: Vec<Sp<String>>,
}

/// A check stage's input: its path, and where the stage names it.
type CheckInput = (String, Option<Pos>);

struct ValidCheck {
    check: Check,
    inputs: Vec<CheckInput>,
}

impl ValidCheck {
    fn inputs(&self) -> Vec<CheckInput> {
        self.inputs.clone()
    }
}

/// The canonical command line of a check stage: what it shows and what its
/// fingerprint covers (`warn_only` changes no output, so it is not in it).
fn check_cmd(c: &ValidCheck) -> String {
    let c = &c.check;
    let mut s = match &c.kind {
        CheckKind::Data { data, expect } => format!("ferry check data {data} --expect {expect}"),
        CheckKind::Drift {
            reference,
            current,
            method,
            threshold,
            thresholds,
            drift_share,
            columns,
        } => {
            let mut s = format!(
                "ferry check drift --reference {reference} --current {current} --drift-share {drift_share}"
            );
            if let Some(m) = method {
                s.push_str(&format!(" --method {m}"));
            }
            if let Some(t) = threshold {
                s.push_str(&format!(" --threshold {t}"));
            }
            for (c, t) in thresholds {
                s.push_str(&format!(" --threshold {c}={t}"));
            }
            if !columns.is_empty() {
                s.push_str(&format!(" --columns {}", columns.join(",")));
            }
            s
        }
    };
    s.push_str(&format!(" --json > {}", c.report));
    if let Some(h) = &c.html {
        s.push_str(&format!(" --html {h}"));
    }
    s
}

struct RawGate {
    name: Option<String>,
    expr: Sp<String>,
}

struct RawRegister {
    pos: Pos,
    model: Option<Sp<String>>,
    artifact: Option<Sp<String>>,
    alias: Option<Sp<String>>,
    signature: Option<crate::SignatureSpec>,
}

/// `register.signature`: either `inputs`, a list of columns in the order the
/// model takes them, each a name (a `double` column) or a one-key mapping
/// `name: type` with one of MLflow's column types; or `from`, a table whose
/// columns (but those in `exclude`) are the inputs, with their types, read
/// when the version is registered.
fn signature(node: &Node, sink: &mut Sink<'_>) -> Option<crate::SignatureSpec> {
    let path = "register.signature";
    let m = map_entries(node, path, SIGNATURE_KEYS, sink)?;
    let get = |key: &str| m.iter().find(|(k, _)| k.name == key).map(|(_, v)| v);
    if let Some(from) = get("from") {
        if get("inputs").is_some() {
            sink.err_hint(
                node.pos,
                path,
                "`inputs` and `from` are both set",
                "list the columns, or name a table to take them from, not both",
            );
            return None;
        }
        return signature_from(from, get("exclude"), sink);
    }
    if let Some(e) = get("exclude") {
        sink.err(
            e.pos,
            "register.signature.exclude",
            "`exclude` goes with `from`",
        );
    }
    let Some(inputs) = get("inputs") else {
        sink.err_hint(
            node.pos,
            path,
            "missing key `inputs` or `from`",
            "e.g. `inputs: [sepal_length, sepal_width]` or `from: work/train.csv`",
        );
        return None;
    };
    signature_inputs(inputs, sink)
}

/// `from:` a table inside the project, but its `exclude` columns.
fn signature_from(
    from: &Node,
    exclude: Option<&Node>,
    sink: &mut Sink<'_>,
) -> Option<crate::SignatureSpec> {
    let table = string(from, "register.signature.from", sink)?;
    if table.0.starts_with('/') || table.0.split(['/', '\\']).any(|p| p == "..") {
        sink.err(
            table.1,
            "register.signature.from",
            format!("`{}` is not a path inside the project", table.0),
        );
        return None;
    }
    let exclude = exclude
        .map(|e| string_list(e, "register.signature.exclude", sink))
        .unwrap_or_default();
    Some(crate::SignatureSpec::From {
        table: table.0,
        exclude: exclude.into_iter().map(|e| e.0).collect(),
    })
}

/// `inputs:`, the columns in the model's order, each named once.
fn signature_inputs(inputs: &Node, sink: &mut Sink<'_>) -> Option<crate::SignatureSpec> {
    use ferry_mlmodel::Column;
    let Kind::Seq(items) = &inputs.kind else {
        sink.err(
            inputs.pos,
            "register.signature.inputs",
            format!(
                "expected a list of columns, found {}",
                inputs.kind.type_name()
            ),
        );
        return None;
    };
    let mut cols: Vec<Column> = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let kp = format!("register.signature.inputs[{i}]");
        let Some((name, ty, pos)) = input_column(item, &kp, sink) else {
            ok = false;
            continue;
        };
        if name.is_empty() {
            sink.err(pos, &kp, "a column needs a name");
            ok = false;
        } else if cols.iter().any(|c| c.name == name) {
            sink.err(pos, &kp, format!("the column `{name}` is listed twice"));
            ok = false;
        }
        match ty {
            Some(ty) => cols.push(Column {
                name,
                ty,
                required: true,
            }),
            None => ok = false,
        }
    }
    if cols.is_empty() && ok {
        sink.err(
            inputs.pos,
            "register.signature.inputs",
            "a signature needs at least one column",
        );
        return None;
    }
    ok.then_some(crate::SignatureSpec::Columns(ferry_mlmodel::Signature {
        inputs: cols,
    }))
}

/// One of `inputs:` (at `kp`): a name (a `double` column) or `name: type`,
/// with the type `None` when it is not one of MLflow's (reported); `None`
/// (reported) for anything else.
fn input_column(
    item: &Node,
    kp: &str,
    sink: &mut Sink<'_>,
) -> Option<(String, Option<ferry_mlmodel::ColType>, Pos)> {
    use ferry_mlmodel::ColType;
    match &item.kind {
        Kind::Str(n) => Some((n.clone(), Some(ColType::Double), item.pos)),
        Kind::Map(e) if e.len() == 1 => {
            let (k, v) = &e[0];
            let ty = match &v.kind {
                Kind::Str(t) => ColType::from_name(t).or_else(|| {
                    sink.err_hint(
                        v.pos,
                        kp,
                        format!("unknown column type `{t}`"),
                        format!("MLflow's column types: {}", ColType::NAMES.join(", ")),
                    );
                    None
                }),
                other => {
                    sink.err(
                        v.pos,
                        kp,
                        format!("expected a column type, found {}", other.type_name()),
                    );
                    None
                }
            };
            Some((k.name.clone(), ty, k.pos))
        }
        other => {
            sink.err_hint(
                item.pos,
                kp,
                format!(
                    "expected a column name or `name: type`, found {}",
                    other.type_name()
                ),
                "e.g. `- petal_length` or `- species: string`",
            );
            None
        }
    }
}

/// Checks a mapping's keys against `known`, reporting the unknown ones with a
/// suggestion, and returns the entries.
pub(crate) fn map_entries<'n>(
    node: &'n Node,
    path: &str,
    known: &[&str],
    sink: &mut Sink<'_>,
) -> Option<&'n [(Key, Node)]> {
    let Kind::Map(m) = &node.kind else {
        sink.err(
            node.pos,
            path,
            format!("expected a mapping, found {}", node.kind.type_name()),
        );
        return None;
    };
    for (k, _) in m {
        if known.contains(&k.name.as_str()) || (path.is_empty() && k.name.starts_with("x-")) {
            continue;
        }
        let msg = format!("unknown key `{}`", k.name);
        match suggest(&k.name, known.iter().copied()) {
            Some(s) => sink.err_hint(
                k.pos,
                &key_path(path, &k.name),
                msg,
                format!("did you mean `{s}`?"),
            ),
            None => sink.err_hint(
                k.pos,
                &key_path(path, &k.name),
                msg,
                format!("known keys here: {}", known.join(", ")),
            ),
        }
    }
    Some(m)
}

pub(crate) fn string(node: &Node, path: &str, sink: &mut Sink<'_>) -> Option<Sp<String>> {
    match &node.kind {
        Kind::Str(s) => Some((s.clone(), node.pos)),
        Kind::Int(i) => Some((i.to_string(), node.pos)),
        Kind::Float(f) => Some((f.to_string(), node.pos)),
        Kind::Bool(b) => Some((b.to_string(), node.pos)),
        other => {
            sink.err(
                node.pos,
                path,
                format!("expected a string, found {}", other.type_name()),
            );
            None
        }
    }
}

/// A list of strings; a single string is a list of one.
pub(crate) fn string_list(node: &Node, path: &str, sink: &mut Sink<'_>) -> Vec<Sp<String>> {
    match &node.kind {
        Kind::Null => Vec::new(),
        Kind::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| string(n, &format!("{path}[{i}]"), sink))
            .collect(),
        _ => string(node, path, sink).into_iter().collect(),
    }
}

/// `90`, `"90s"`, `"10m"`, `"1h30m"`, `"500ms"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The spec's top level into a [`RawSpec`], every misshapen key reported.
fn decode(root: &Node, sink: &mut Sink<'_>) -> RawSpec {
    let mut raw = RawSpec::default();
    if matches!(root.kind, Kind::Null) {
        // An empty ferry.yaml: a project that only versions data.
        return raw;
    }
    let Some(top) = map_entries(root, "", TOP_KEYS, sink) else {
        return raw;
    };
    for (k, v) in top {
        match k.name.as_str() {
            "name" => raw.name = string(v, "name", sink),
            "workspace" => raw.workspace = string(v, "workspace", sink),
            "params" => raw.params_file = string(v, "params", sink),
            "env" => decode_env(v, &mut raw.env, sink),
            "stages" => match &v.kind {
                Kind::Map(m) => {
                    for (name, body) in m {
                        raw.stages.push(decode_stage(name, body, sink));
                    }
                }
                Kind::Null => {}
                other => sink.err(
                    v.pos,
                    "stages",
                    format!(
                        "expected a mapping of stage names to stages, found {}",
                        other.type_name()
                    ),
                ),
            },
            "gates" => decode_gates(v, &mut raw.gates, sink),
            "remotes" => raw.remotes = decode_remotes(v, sink),
            "cache" => raw.link = decode_cache(v, sink),
            "cost" => raw.cost = crate::cost::decode_cost(v, sink),
            "monitor" => raw.monitor = crate::monitor::decode_monitor(v, sink),
            "on" => raw.on = crate::monitor::decode_on(v, sink),
            "deploy" => raw.deploy = crate::monitor::decode_deploy(v, sink).map(|d| (d, v.pos)),
            "executor" => raw.executor = crate::cluster::decode_executor(v, sink),
            "kubernetes" => raw.kubernetes = crate::cluster::decode_kubernetes(v, sink),
            "register" => {
                if let Some(r) = decode_register(v, sink) {
                    raw.register = Some(r);
                }
            }
            _ => {}
        }
    }
    raw
}

/// `remotes:`, a mapping of names to `{url, default, endpoint, region,
/// allow_http, profile}`; each problem reported at its key.
fn decode_remotes(node: &Node, sink: &mut Sink<'_>) -> Vec<crate::RemoteConfig> {
    let m = match &node.kind {
        Kind::Map(m) => m,
        Kind::Null => return Vec::new(),
        other => {
            sink.err(
                node.pos,
                "remotes",
                format!(
                    "expected a mapping of remote names, found {}",
                    other.type_name()
                ),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (name, body) in m {
        let path = format!("remotes.{}", name.name);
        if let Some(e) = crate::remote::validate_name(&name.name) {
            sink.err(name.pos, &path, e);
        }
        let Some(entries) = map_entries(body, &path, REMOTE_KEYS, sink) else {
            continue;
        };
        let mut r = crate::RemoteConfig {
            name: name.name.clone(),
            url: String::new(),
            default: false,
            options: Default::default(),
        };
        let mut url_pos = None;
        for (k, v) in entries {
            let p = format!("{path}.{}", k.name);
            let Some((value, pos)) = string(v, &p, sink) else {
                continue;
            };
            match k.name.as_str() {
                "url" => {
                    url_pos = Some(pos);
                    if let Err(e) =
                        crate::remote::Location::parse(&value, std::path::Path::new("/"))
                    {
                        sink.err(pos, &p, e);
                    }
                    r.url = value;
                }
                "default" => match value.as_str() {
                    "true" => r.default = true,
                    "false" => {}
                    _ => sink.err(pos, &p, format!("expected true or false, found `{value}`")),
                },
                key if !REMOTE_KEYS.contains(&key) => {
                    // Reported as unknown already; a credential also says where it goes.
                    if let Some(e) = crate::remote::secret_refusal(key) {
                        sink.err(pos, &p, e);
                    }
                }
                key => {
                    if let Some(e) = crate::remote::validate_option(key, &value) {
                        sink.err(pos, &p, e);
                    }
                    r.options.insert(key.to_owned(), value);
                }
            }
        }
        if url_pos.is_none() {
            sink.err(body.pos, &path, "missing key `url`");
        }
        out.push(r);
    }
    let defaults: Vec<&(Key, Node)> = m
        .iter()
        .filter(|(n, _)| out.iter().any(|r| r.default && r.name == n.name))
        .collect();
    if defaults.len() > 1 {
        sink.err(
            defaults[1].0.pos,
            &format!("remotes.{}.default", defaults[1].0.name),
            format!(
                "`{}` is the default remote already: only one may be",
                defaults[0].0.name
            ),
        );
    }
    out
}

/// `cache:`: its `link` mode (`copy` when absent).
fn decode_cache(node: &Node, sink: &mut Sink<'_>) -> ferry_core::LinkMode {
    let Some(entries) = map_entries(node, "cache", CACHE_KEYS, sink) else {
        return ferry_core::LinkMode::default();
    };
    let mut link = ferry_core::LinkMode::default();
    for (_, v) in entries.iter().filter(|(k, _)| k.name == "link") {
        if let Some((value, pos)) = string(v, "cache.link", sink) {
            match value.parse() {
                Ok(m) => link = m,
                Err(e) => sink.err(pos, "cache.link", e),
            }
        }
    }
    link
}

/// `env:` (its `python:`, which needs `requirements`) into `env`.
fn decode_env(v: &Node, env: &mut Option<Sp<RawPython>>, sink: &mut Sink<'_>) {
    let Some(entries) = map_entries(v, "env", ENV_KEYS, sink) else {
        return;
    };
    for (_, py) in entries.iter().filter(|(k, _)| k.name == "python") {
        if let Some(m) = map_entries(py, "env.python", PYTHON_KEYS, sink) {
            let mut p = RawPython {
                requirements: None,
                interpreter: None,
            };
            for (k, v) in m {
                let path = format!("env.python.{}", k.name);
                match k.name.as_str() {
                    "requirements" => p.requirements = string(v, &path, sink),
                    "interpreter" => p.interpreter = string(v, &path, sink),
                    _ => {}
                }
            }
            if p.requirements.is_none() {
                sink.err(py.pos, "env.python", "missing key `requirements`");
            }
            *env = Some((p, py.pos));
        }
    }
}

/// `gates:`, a list of expressions or `{name, expr}`, onto `gates`.
fn decode_gates(v: &Node, gates: &mut Vec<RawGate>, sink: &mut Sink<'_>) {
    let items = match &v.kind {
        Kind::Seq(items) => items,
        Kind::Null => return,
        other => {
            sink.err(
                v.pos,
                "gates",
                format!(
                    "expected a list of expressions, found {}",
                    other.type_name()
                ),
            );
            return;
        }
    };
    for (i, g) in items.iter().enumerate() {
        let path = format!("gates[{i}]");
        if !matches!(g.kind, Kind::Map(_)) {
            if let Some(expr) = string(g, &path, sink) {
                gates.push(RawGate { name: None, expr });
            }
            continue;
        }
        let Some(m) = map_entries(g, &path, GATE_KEYS, sink) else {
            continue;
        };
        let mut name = None;
        let mut expr = None;
        for (k, v) in m {
            let p = format!("{path}.{}", k.name);
            match k.name.as_str() {
                "name" => name = string(v, &p, sink).map(|s| s.0),
                "expr" => expr = string(v, &p, sink),
                _ => {}
            }
        }
        match expr {
            Some(expr) => gates.push(RawGate { name, expr }),
            None => sink.err(g.pos, &path, "missing key `expr`"),
        }
    }
}

/// `register:` (model, artifact, alias, signature).
fn decode_register(v: &Node, sink: &mut Sink<'_>) -> Option<RawRegister> {
    let m = map_entries(v, "register", REGISTER_KEYS, sink)?;
    let mut r = RawRegister {
        pos: v.pos,
        model: None,
        artifact: None,
        alias: None,
        signature: None,
    };
    for (k, val) in m {
        let p = format!("register.{}", k.name);
        match k.name.as_str() {
            "model" => r.model = string(val, &p, sink),
            "artifact" => r.artifact = string(val, &p, sink),
            "alias" => r.alias = string(val, &p, sink),
            "signature" => r.signature = signature(val, sink),
            _ => {}
        }
    }
    Some(r)
}

/// A stage's mapping into a [`RawStage`]: its command keys, its check
/// keys, and whether it has a command or a check (one of them).
fn decode_stage(name: &Key, body: &Node, sink: &mut Sink<'_>) -> RawStage {
    let base = format!("stages.{}", name.name);
    let mut st = RawStage::new(name);
    let Some(m) = map_entries(body, &base, STAGE_KEYS, sink) else {
        return st;
    };
    for (k, v) in m {
        let path = format!("{base}.{}", k.name);
        if !st.command_key(k, v, &path, sink) {
            st.check_key(k, v, &path, sink);
        }
    }
    let has_cmd = m.iter().any(|(k, _)| k.name == "cmd");
    let has_check = m.iter().any(|(k, _)| k.name == "check");
    if has_cmd && has_check {
        sink.err_hint(
            body.pos,
            &base,
            "a stage has either `cmd` or `check`, not both",
            "`check: data` and `check: drift` are run by ferry itself",
        );
    } else if !has_cmd && !has_check {
        sink.err_hint(
            body.pos,
            &base,
            "missing key `cmd`",
            "give a shell command, or `check: data` / `check: drift` for a built-in data check",
        );
    }
    if !has_check && let Some((key, pos)) = st.check_keys.first() {
        sink.err_hint(
            *pos,
            &format!("{base}.{key}"),
            format!("`{key}` belongs to check stages"),
            "add `check: data` or `check: drift`",
        );
    }
    st
}

impl RawStage {
    /// A stage named `name` with none of its keys yet.
    fn new(name: &Key) -> RawStage {
        RawStage {
            name: (name.name.clone(), name.pos),
            cmd: None,
            desc: None,
            deps: Vec::new(),
            outs: Vec::new(),
            params: Vec::new(),
            metrics: None,
            timeout: None,
            resources: None,
            max_cost: None,
            placement: None,
            retries: None,
            check: None,
            check_keys: Vec::new(),
            data: None,
            expect: None,
            reference: None,
            current: None,
            report: None,
            html: None,
            warn_only: false,
            method: None,
            threshold: None,
            thresholds: Vec::new(),
            drift_share: None,
            columns: Vec::new(),
        }
    }

    /// The key `k` (at `path`) if it is one of any stage's (`cmd`,
    /// `deps`, `timeout`, `check`, ...); `false` when it is not.
    fn command_key(&mut self, k: &Key, v: &Node, path: &str, sink: &mut Sink<'_>) -> bool {
        match k.name.as_str() {
            "cmd" => {
                self.cmd = match &v.kind {
                    Kind::Seq(_) => {
                        let parts = string_list(v, path, sink);
                        (!parts.is_empty()).then(|| {
                            (
                                parts
                                    .iter()
                                    .map(|p| p.0.as_str())
                                    .collect::<Vec<_>>()
                                    .join(" && "),
                                v.pos,
                            )
                        })
                    }
                    _ => string(v, path, sink),
                };
            }
            "desc" => self.desc = string(v, path, sink).map(|s| s.0),
            "deps" => self.deps = string_list(v, path, sink),
            "outs" => self.outs = string_list(v, path, sink),
            "params" => self.params = string_list(v, path, sink),
            "metrics" => self.metrics = string(v, path, sink),
            "timeout" => {
                if let Some((s, pos)) = string(v, path, sink) {
                    match parse_duration(&s) {
                        Some(d) if !d.is_zero() => self.timeout = Some((d, pos)),
                        _ => sink.err_hint(
                            pos,
                            path,
                            format!("invalid duration `{s}`"),
                            "write seconds (`90`) or a duration like `30s`, `10m`, `1h30m`",
                        ),
                    }
                }
            }
            "check" => self.check = string(v, path, sink),
            "resources" => self.resources = crate::cost::decode_resources(v, path, sink),
            "max_cost" => self.max_cost = crate::cost::decode_max_cost(v, path, sink),
            "kubernetes" => self.placement = crate::cluster::decode_stage_kubernetes(v, path, sink),
            "retries" => match &v.kind {
                Kind::Int(n) if (0..=100).contains(n) => self.retries = Some(*n as u32),
                Kind::Int(n) => sink.err(
                    v.pos,
                    path,
                    format!("retries must be between 0 and 100, found {n}"),
                ),
                other => sink.err(
                    v.pos,
                    path,
                    format!("expected an integer, found {}", other.type_name()),
                ),
            },
            _ => return false,
        }
        true
    }

    /// The key `k` (at `path`) if it is one of a check stage's (`data`,
    /// `reference`, `threshold`, `warn_only`, ...), noted in `check_keys`.
    fn check_key(&mut self, k: &Key, v: &Node, path: &str, sink: &mut Sink<'_>) {
        match k.name.as_str() {
            "data" | "expect" | "reference" | "current" | "report" | "html" | "method" => {
                self.check_keys.push((k.name.clone(), k.pos));
                let val = string(v, path, sink);
                match k.name.as_str() {
                    "data" => self.data = val,
                    "expect" => self.expect = val,
                    "reference" => self.reference = val,
                    "current" => self.current = val,
                    "report" => self.report = val,
                    "html" => self.html = val,
                    _ => self.method = val,
                }
            }
            "warn_only" => {
                self.check_keys.push((k.name.clone(), k.pos));
                match &v.kind {
                    Kind::Bool(b) => self.warn_only = *b,
                    other => sink.err(
                        v.pos,
                        path,
                        format!("expected true or false, found {}", other.type_name()),
                    ),
                }
            }
            "threshold" if matches!(v.kind, Kind::Map(_)) => {
                self.check_keys.push((k.name.clone(), k.pos));
                if let Kind::Map(m) = &v.kind {
                    for (col, x) in m {
                        let p = format!("{path}.{}", col.name);
                        match &x.kind {
                            Kind::Int(n) if *n > 0 => {
                                self.thresholds.push((col.name.clone(), *n as f64))
                            }
                            Kind::Float(f) if *f > 0.0 => {
                                self.thresholds.push((col.name.clone(), *f))
                            }
                            _ => sink.err(x.pos, &p, "expected a positive number"),
                        }
                    }
                }
            }
            "threshold" | "drift_share" => {
                self.check_keys.push((k.name.clone(), k.pos));
                self.number_key(&k.name, v, path, sink);
            }
            "columns" => {
                self.check_keys.push((k.name.clone(), k.pos));
                self.columns = string_list(v, path, sink);
            }
            _ => {}
        }
    }

    /// `threshold` (positive) or `drift_share` (a share) as one number.
    fn number_key(&mut self, key: &str, v: &Node, path: &str, sink: &mut Sink<'_>) {
        let f = match &v.kind {
            Kind::Int(n) => Some(*n as f64),
            Kind::Float(f) => Some(*f),
            other => {
                sink.err(
                    v.pos,
                    path,
                    format!("expected a number, found {}", other.type_name()),
                );
                None
            }
        };
        match (key, f) {
            ("threshold", Some(f)) if f > 0.0 => self.threshold = Some(f),
            ("drift_share", Some(f)) if (0.0..=1.0).contains(&f) => {
                self.drift_share = Some((f, v.pos))
            }
            (key, Some(f)) => sink.err(
                v.pos,
                path,
                format!(
                    "{key} must be {}, found {f}",
                    if key == "threshold" {
                        "positive"
                    } else {
                        "a share between 0 and 1"
                    }
                ),
            ),
            _ => {}
        }
    }
}

/// Normalises a project-relative path, or says why it is not one.
pub fn normalize_path(p: &str) -> Result<String, String> {
    let t = p.trim();
    if t.is_empty() {
        return Err("empty path".into());
    }
    if t.starts_with('/') || t.starts_with('~') || t.contains('\\') || t.contains('\0') {
        return Err(format!("`{p}` must be a path relative to the project root"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in t.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{p}` points outside the project"));
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(format!(
            "`{p}` names the project root itself; name a file or folder in it"
        ));
    }
    if parts[0] == ".ferry" || parts[0] == ".git" {
        return Err(format!(
            "`{p}` is inside `{}`, which ferry and git own",
            parts[0]
        ));
    }
    Ok(parts.join("/"))
}

/// A validated stage, where it is, and where each of its deps and outs is.
type Placed = (Stage, Pos, Vec<Pos>, Vec<Pos>);

/// The check stages that stage `i` (not a check itself) runs after: those
/// that check a table it reads (it does not run at all when such a check
/// fails).
fn checked_first(stages: &[Placed], i: usize) -> Vec<usize> {
    if stages[i].0.check.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (j, c) in stages.iter().enumerate() {
        let Some(ch) = &c.0.check else { continue };
        let checked = match &ch.kind {
            CheckKind::Data { data, .. } => data,
            CheckKind::Drift { current, .. } => current,
        };
        let reads = stages[i]
            .0
            .deps
            .iter()
            .any(|d| path_within(d, checked) || path_within(checked, d));
        if reads && j != i && !c.0.upstream.iter().any(|u| u == &stages[i].0.name) {
            out.push(j);
        }
    }
    out
}

struct Validator<'a> {
    sink: Sink<'a>,
    spec_text: &'a str,
    params_file: &'a str,
    params: Option<&'a Node>,
    params_ok: bool,
    files: &'a dyn Files,
}

impl Validator<'_> {
    fn path(&mut self, (p, pos): &Sp<String>, key_path: &str) -> Option<String> {
        match normalize_path(p) {
            Ok(n) => Some(n),
            Err(e) => {
                self.sink.err(*pos, key_path, e);
                None
            }
        }
    }

    /// Validates a check stage's keys into a [`Check`] (with its input paths).
    fn check(
        &mut self,
        rs: &RawStage,
        kind: &Sp<String>,
        base: &str,
        name: &StageName,
    ) -> Option<ValidCheck> {
        const DATA_KEYS: [&str; 2] = ["data", "expect"];
        const DRIFT_KEYS: [&str; 6] = [
            "reference",
            "current",
            "method",
            "threshold",
            "drift_share",
            "columns",
        ];
        let other: &[&str] = match kind.0.as_str() {
            "data" => &DRIFT_KEYS,
            "drift" => &DATA_KEYS,
            k => {
                self.sink.err_hint(kind.1, &format!("{base}.check"), format!("unknown check `{k}`"), "checks: `data` (validate against a suite) and `drift` (compare with a reference)");
                return None;
            }
        };
        let mut ok = true;
        for (key, pos) in &rs.check_keys {
            if other.contains(&key.as_str()) {
                self.sink.err(
                    *pos,
                    &format!("{base}.{key}"),
                    format!("`{key}` does not apply to `check: {}`", kind.0),
                );
                ok = false;
            }
        }
        let (ck, inputs) = if kind.0 == "data" {
            let data = self.check_input(&rs.data, "data", kind, base);
            let expect = self.check_input(&rs.expect, "expect", kind, base);
            let (Some(d), Some(e)) = (data, expect) else {
                return None;
            };
            (
                CheckKind::Data {
                    data: d.0.clone(),
                    expect: e.0.clone(),
                },
                vec![d, e],
            )
        } else {
            self.drift_check(rs, kind, base, &mut ok)?
        };
        let report = match &rs.report {
            Some(r) => self.path(r, &format!("{base}.report"))?,
            None => format!("reports/{name}.json"),
        };
        let html = match &rs.html {
            Some(h) => Some(self.path(h, &format!("{base}.html"))?),
            None => None,
        };
        ok.then_some(ValidCheck {
            check: Check {
                kind: ck,
                report,
                html,
                warn_only: rs.warn_only,
            },
            inputs,
        })
    }

    /// A check stage's input `key` (`v`): a path in the project, not a
    /// glob (a pipeline tracks a file's or a folder's content).
    fn check_input(
        &mut self,
        v: &Option<Sp<String>>,
        key: &str,
        kind: &Sp<String>,
        base: &str,
    ) -> Option<CheckInput> {
        let Some(sp) = v else {
            self.sink
                .err(kind.1, base, format!("`check: {}` needs `{key}`", kind.0));
            return None;
        };
        if sp.0.contains(['*', '?', '[']) {
            self.sink.err_hint(
                sp.1,
                &format!("{base}.{key}"),
                format!("`{}` is a glob", sp.0),
                "in a pipeline, name a file or folder: ferry tracks its content",
            );
            return None;
        }
        self.path(sp, &format!("{base}.{key}"))
            .map(|p| (p, Some(sp.1)))
    }

    /// A drift check: its two tables and its method (an unknown one clears
    /// `ok`).
    fn drift_check(
        &mut self,
        rs: &RawStage,
        kind: &Sp<String>,
        base: &str,
        ok: &mut bool,
    ) -> Option<(CheckKind, Vec<CheckInput>)> {
        let r = self.check_input(&rs.reference, "reference", kind, base);
        let c = self.check_input(&rs.current, "current", kind, base);
        if let Some((m, pos)) = &rs.method
            && !DRIFT_METHODS.contains(&m.as_str())
        {
            self.sink.err_hint(
                *pos,
                &format!("{base}.method"),
                format!("unknown method `{m}`"),
                format!("methods: {}", DRIFT_METHODS.join(", ")),
            );
            *ok = false;
        }
        let (Some(r), Some(c)) = (r, c) else {
            return None;
        };
        Some((
            CheckKind::Drift {
                reference: r.0.clone(),
                current: c.0.clone(),
                method: rs.method.as_ref().map(|m| m.0.clone()),
                threshold: rs.threshold,
                thresholds: rs.thresholds.clone(),
                drift_share: rs.drift_share.map_or(0.5, |d| d.0),
                columns: rs.columns.iter().map(|c| c.0.clone()).collect(),
            },
            vec![r, c],
        ))
    }

    fn param_keys(&self) -> Vec<String> {
        fn walk(n: &Node, prefix: &str, out: &mut Vec<String>) {
            if let Kind::Map(m) = &n.kind {
                for (k, v) in m {
                    let key = key_path(prefix, &k.name);
                    out.push(key.clone());
                    walk(v, &key, out);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(p) = self.params {
            walk(p, "", &mut out);
        }
        out
    }

    fn param_missing(&mut self, key: &str, pos: Pos, key_path: &str) {
        if !self.params_ok {
            return; // the params file's own error says it all
        }
        let msg = if self.params.is_none() {
            format!(
                "param `{key}` is used but `{}` does not exist",
                self.params_file
            )
        } else {
            format!("param `{key}` is not in `{}`", self.params_file)
        };
        let keys = self.param_keys();
        match suggest(key, keys.iter().map(String::as_str)) {
            Some(s) => self
                .sink
                .err_hint(pos, key_path, msg, format!("did you mean `{s}`?")),
            None => self.sink.err(pos, key_path, msg),
        }
    }

    /// Replaces `${key}` with param values; `$${` writes a literal `${`.
    fn interpolate(
        &mut self,
        cmd: &str,
        pos: Pos,
        key_path: &str,
        used: &mut BTreeMap<String, serde_json::Value>,
    ) -> String {
        let mut out = String::with_capacity(cmd.len());
        let mut rest = cmd;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(body) = tail.strip_prefix("${") {
                match body.find('}') {
                    Some(end) => {
                        let key = body[..end].trim();
                        match self.params.and_then(|p| p.get_path(key)) {
                            Some(n) if !key.is_empty() => {
                                let j = n.to_json();
                                out.push_str(&render_value(&j));
                                used.insert(key.to_owned(), j);
                            }
                            _ => self.param_missing(key, pos, key_path),
                        }
                        rest = &body[end + 1..];
                    }
                    None => {
                        self.sink
                            .err(pos, key_path, "unterminated `${` in the command");
                        out.push_str(tail);
                        rest = "";
                    }
                }
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }

    /// The column of byte `offset` inside the string scalar at `pos`.
    fn expr_pos(&self, pos: Pos, offset: usize) -> Pos {
        let line = self
            .spec_text
            .lines()
            .nth(pos.line.saturating_sub(1) as usize)
            .unwrap_or("");
        let quoted = line
            .chars()
            .nth(pos.column.saturating_sub(1) as usize)
            .is_some_and(|c| c == '"' || c == '\'');
        Pos {
            line: pos.line,
            column: pos.column + offset as u64 + u64::from(quoted),
        }
    }

    /// The decoded spec into a [`Pipeline`]: its environment, each stage,
    /// their outs and the edges between them (in an order without cycles),
    /// the gates and the registration. `None` when something is wrong (all
    /// of it in the sink).
    fn validate(&mut self, mut raw: RawSpec, default_name: &str) -> Option<Pipeline> {
        let remotes = raw.remotes.clone();
        let asked: Vec<crate::cost::StageCostKeys> = raw
            .stages
            .iter()
            .map(|s| (s.name.0.clone(), s.resources.clone(), s.max_cost))
            .collect();
        let cost = crate::cost::settle(std::mem::take(&mut raw.cost), &asked, &mut self.sink);
        let name = raw
            .name
            .as_ref()
            .map_or_else(|| default_name.to_owned(), |n| n.0.clone());
        let workspace = match &raw.workspace {
            Some((w, pos)) if !ferry_cost::budget::valid_name(w) => {
                self.sink.err(
                    *pos,
                    "workspace",
                    format!("`{w}` is not a workspace name: letters, digits, `.`, `_` and `-`, at most 64"),
                );
                String::new()
            }
            Some((w, _)) => w.clone(),
            None => "default".to_owned(),
        };
        let params_file = match &raw.params_file {
            Some(p) => self.path(p, "params").unwrap_or_else(|| p.0.clone()),
            None => "params.yaml".to_owned(),
        };
        let env = raw.env.as_ref().and_then(|(py, _)| self.python_env(py));

        // Stages, one at a time.
        // None at all is a project that only versions data (`ferry add`).
        let mut stages: Vec<Placed> = raw.stages.iter().filter_map(|rs| self.stage(rs)).collect();
        self.one_producer(&stages);
        self.link(&mut stages);

        // Cycles, then a topological order that keeps the written order.
        let order = self.topo_order(&stages);
        let gates = raw
            .gates
            .iter()
            .enumerate()
            .filter_map(|(i, g)| self.gate(i, g, &stages))
            .collect();
        let register = raw
            .register
            .as_ref()
            .and_then(|r| self.register(r, &stages));

        let monitor = self.monitor(std::mem::take(&mut raw.monitor), register.as_ref());
        let triggers = raw.on.take();
        let deploy = raw.deploy.take().map(|(d, pos)| {
            if register.is_none() {
                self.sink.err_hint(
                    pos,
                    "deploy",
                    "`deploy:` needs `register:`",
                    "a rollout deploys the version a run registers",
                );
            }
            d
        });

        let (executor, kubernetes) = self.executor(&mut raw, &remotes);
        let order = order?;
        let mut slots: Vec<Option<Stage>> = stages.into_iter().map(|s| Some(s.0)).collect();
        let stages = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Some(Pipeline {
            name,
            params_file,
            params: self.params.map_or(serde_json::Value::Null, Node::to_json),
            env,
            stages,
            gates,
            register,
            remotes,
            link: raw.link,
            cost,
            workspace,
            monitor,
            triggers,
            deploy,
            executor,
            kubernetes,
        })
    }

    /// `monitor:` settled: its model (`register.model` unless given) and
    /// its reference data (`reference:`, else the table the registered
    /// signature is read from).
    /// `executor:` and `kubernetes:` settled: stages run as Jobs move their
    /// files through a remote, so one must be configured (the one
    /// `kubernetes.remote` names, if it does).
    fn executor(
        &mut self,
        raw: &mut RawSpec,
        remotes: &[crate::RemoteConfig],
    ) -> (crate::ExecutorKind, Option<crate::Kubernetes>) {
        let kubernetes = raw.kubernetes.take();
        if let Some((k, pos)) = &kubernetes
            && let Some(name) = &k.remote
            && !remotes.iter().any(|r| &r.name == name)
        {
            self.sink.err_hint(
                *pos,
                "kubernetes.remote",
                format!("no remote named `{name}`"),
                "name one of `remotes:`, the one stage pods move files through",
            );
        }
        let executor = match raw.executor.take() {
            Some((crate::ExecutorKind::Kubernetes, pos)) if remotes.is_empty() => {
                self.sink.err_hint(
                    pos,
                    "executor",
                    "`executor: kubernetes` needs a remote",
                    "add `remotes:` (an S3 or GCS bucket): stage pods fetch their inputs and push their outputs there",
                );
                crate::ExecutorKind::Kubernetes
            }
            Some((e, _)) => e,
            None => crate::ExecutorKind::Local,
        };
        (executor, kubernetes.map(|k| k.0))
    }

    fn monitor(
        &mut self,
        raw: crate::monitor::RawMonitor,
        register: Option<&Register>,
    ) -> Option<crate::Monitor> {
        let mut m = raw.monitor?;
        m.model = match (&raw.model, register) {
            (Some((name, pos)), _) => match ModelName::new(name) {
                Ok(n) => n.to_string(),
                Err(e) => {
                    self.sink.err(*pos, "monitor.model", e.to_string());
                    return None;
                }
            },
            (None, Some(r)) => r.model.to_string(),
            (None, None) => {
                self.sink.err_hint(
                    raw.pos.unwrap_or_default(),
                    "monitor.model",
                    "which model does the monitor watch?",
                    "give `model:`, or `register:` the model it names",
                );
                return None;
            }
        };
        m.reference = match &raw.reference {
            Some(r) => self.path(r, "monitor.reference"),
            None => register.and_then(|r| match &r.signature {
                Some(crate::SignatureSpec::From { table, .. }) => Some(table.clone()),
                _ => None,
            }),
        };
        Some(m)
    }

    /// `env.python`: its requirements file must exist.
    fn python_env(&mut self, py: &RawPython) -> Option<PythonEnv> {
        let req = py.requirements.as_ref()?;
        let requirements = self.path(req, "env.python.requirements")?;
        if !self.files.exists(&requirements) {
            self.sink.err(
                req.1,
                "env.python.requirements",
                format!("the requirements file `{requirements}` does not exist"),
            );
        }
        Some(PythonEnv {
            requirements,
            python: py
                .interpreter
                .as_ref()
                .map_or_else(|| "python3".to_owned(), |p| p.0.clone()),
        })
    }

    /// One stage: its name, params, command (params interpolated, or a
    /// check's own), deps and outs (a check's inputs and reports among
    /// them, and the metrics file), none both read and written. `None`
    /// when its name is not one.
    fn stage(&mut self, rs: &RawStage) -> Option<Placed> {
        let base = format!("stages.{}", rs.name.0);
        let sname = match StageName::new(&rs.name.0) {
            Ok(n) => n,
            Err(e) => {
                self.sink.err(rs.name.1, &base, e.to_string());
                return None;
            }
        };
        let mut params = BTreeMap::new();
        for (i, (key, pos)) in rs.params.iter().enumerate() {
            let kp = format!("{base}.params[{i}]");
            match self.params.and_then(|p| p.get_path(key)) {
                Some(n) => {
                    params.insert(key.clone(), n.to_json());
                }
                None => self.param_missing(key, *pos, &kp),
            }
        }
        let mut cmd = match &rs.cmd {
            Some((c, pos)) => self.interpolate(c, *pos, &format!("{base}.cmd"), &mut params),
            None => String::new(),
        };
        let (mut deps, mut dep_pos) = self.deps(rs, &base);
        let (mut outs, mut out_pos) = self.outs(rs, &base);
        let check = rs
            .check
            .as_ref()
            .and_then(|c| self.check(rs, c, &base, &sname));
        if let Some(c) = &check {
            cmd = check_cmd(c);
            for (p, pos) in c.inputs() {
                if !deps.contains(&p) {
                    deps.push(p);
                    dep_pos.push(pos.unwrap_or(rs.name.1));
                }
            }
            for p in std::iter::once(c.check.report.clone()).chain(c.check.html.clone()) {
                if !outs.contains(&p) {
                    outs.push(p);
                    out_pos.push(rs.name.1);
                }
            }
        }
        let metrics = rs
            .metrics
            .as_ref()
            .and_then(|m| self.path(m, &format!("{base}.metrics")));
        if let (Some(m), Some((_, pos))) = (&metrics, &rs.metrics)
            && !outs.contains(m)
        {
            outs.push(m.clone());
            out_pos.push(*pos);
        }
        for (i, d) in deps.iter().enumerate() {
            if let Some(o) = outs.iter().find(|o| path_within(d, o) || path_within(o, d)) {
                self.sink.err(
                    dep_pos[i],
                    &format!("{base}.deps"),
                    format!("`{d}` is both read and written by stage `{sname}` (out `{o}`)"),
                );
            }
        }
        Some((
            Stage {
                name: sname,
                desc: rs.desc.clone(),
                cmd,
                deps,
                outs,
                params,
                metrics,
                timeout: rs.timeout.map(|t| t.0),
                retries: rs.retries.unwrap_or(0),
                resources: rs.resources.as_ref().map(|r| r.0.clone()),
                max_cost: rs.max_cost.map(|m| m.0),
                placement: rs.placement.clone(),
                upstream: Vec::new(),
                check: check.map(|c| c.check),
            },
            rs.name.1,
            dep_pos,
            out_pos,
        ))
    }

    /// A stage's deps as project paths, each once, with where each is.
    fn deps(&mut self, rs: &RawStage, base: &str) -> (Vec<String>, Vec<Pos>) {
        let mut deps = Vec::new();
        let mut dep_pos = Vec::new();
        for (i, d) in rs.deps.iter().enumerate() {
            if let Some(p) = self.path(d, &format!("{base}.deps[{i}]"))
                && !deps.contains(&p)
            {
                deps.push(p);
                dep_pos.push(d.1);
            }
        }
        (deps, dep_pos)
    }

    /// A stage's outs as project paths (one listed twice is an error), with
    /// where each is.
    fn outs(&mut self, rs: &RawStage, base: &str) -> (Vec<String>, Vec<Pos>) {
        let mut outs = Vec::new();
        let mut out_pos = Vec::new();
        for (i, o) in rs.outs.iter().enumerate() {
            if let Some(p) = self.path(o, &format!("{base}.outs[{i}]")) {
                if outs.contains(&p) {
                    self.sink.err(
                        o.1,
                        &format!("{base}.outs[{i}]"),
                        format!("`{p}` is listed twice"),
                    );
                } else {
                    outs.push(p);
                    out_pos.push(o.1);
                }
            }
        }
        (outs, out_pos)
    }

    /// Outs: each written by one stage, none inside another stage's out.
    fn one_producer(&mut self, stages: &[Placed]) {
        for i in 0..stages.len() {
            for (oi, o) in stages[i].0.outs.iter().enumerate() {
                for j in 0..stages.len() {
                    if i == j {
                        continue;
                    }
                    for o2 in &stages[j].0.outs {
                        let pos = stages[i].3[oi];
                        let kp = format!("stages.{}.outs", stages[i].0.name);
                        if o == o2 && i > j {
                            self.sink.err(
                                pos,
                                &kp,
                                format!(
                                    "`{o}` is also an out of stage `{}`; each out has one producer",
                                    stages[j].0.name
                                ),
                            );
                        } else if o != o2 && path_within(o, o2) {
                            self.sink.err(
                                pos,
                                &kp,
                                format!(
                                    "`{o}` is inside `{o2}`, an out of stage `{}`",
                                    stages[j].0.name
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Edges: each stage's upstream, the stages that produce its deps and
    /// the check stages that check what it reads. A dep that does not
    /// exist and that no stage produces is an error.
    fn link(&mut self, stages: &mut [Placed]) {
        let mut producers: Vec<(String, usize)> = Vec::new();
        for (i, s) in stages.iter().enumerate() {
            for o in &s.0.outs {
                producers.push((o.clone(), i));
            }
        }
        for i in 0..stages.len() {
            let mut up = BTreeSet::new();
            for (di, d) in stages[i].0.deps.clone().iter().enumerate() {
                let prods: Vec<usize> = producers
                    .iter()
                    .filter(|(o, j)| *j != i && (path_within(d, o) || path_within(o, d)))
                    .map(|(_, j)| *j)
                    .collect();
                let own_out = stages[i]
                    .0
                    .outs
                    .iter()
                    .any(|o| path_within(d, o) || path_within(o, d));
                // Data recorded with `ferry add` may be absent until it is
                // checked out: its pointer file (`<dep>.ferry`) vouches for it.
                let pointed = self.files.exists(&format!("{d}.ferry"));
                if prods.is_empty() && !own_out && !self.files.exists(d) && !pointed {
                    let pos = stages[i].2[di];
                    let kp = format!("stages.{}.deps[{di}]", stages[i].0.name);
                    let all_outs: Vec<&str> = producers.iter().map(|(o, _)| o.as_str()).collect();
                    let msg = format!("dependency `{d}` does not exist and no stage produces it");
                    match suggest(d, all_outs.into_iter().filter(|o| *o != d)) {
                        Some(s) => self.sink.err_hint(
                            pos,
                            &kp,
                            msg,
                            format!("did you mean `{s}`, an out of another stage?"),
                        ),
                        None => self.sink.err(pos, &kp, msg),
                    }
                }
                up.extend(prods);
            }
            up.extend(checked_first(stages, i));
            stages[i].0.upstream = up.iter().map(|j| stages[*j].0.name.clone()).collect();
        }
    }

    /// The gate `g` (the `i`-th): its expression, and the values it reads
    /// (`metrics.*`, a param that exists, a check stage's `checks.*`, a
    /// valid model reference).
    fn gate(&mut self, i: usize, g: &RawGate, stages: &[Placed]) -> Option<Gate> {
        let kp = format!("gates[{i}]");
        let expr = match ferry_gates::parse(&g.expr.0) {
            Ok(expr) => expr,
            Err(e) => {
                let pos = self.expr_pos(g.expr.1, e.offset);
                self.sink
                    .err(pos, &kp, format!("invalid gate expression: {}", e.message));
                return None;
            }
        };
        for p in expr.paths() {
            match p.first().map(String::as_str) {
                Some("metrics") if p.len() >= 2 => {}
                Some("params") if p.len() >= 2 => {
                    let key = p[1..].join(".");
                    if self.params.and_then(|n| n.get_path(&key)).is_none() {
                        self.param_missing(&key, g.expr.1, &kp);
                    }
                }
                Some("checks") if p.len() >= 3 => {
                    let is_check = stages.iter().any(|(st, ..)| st.name.as_str() == p[1] && st.check.is_some());
                    if !is_check {
                        let checks: Vec<&str> = stages.iter().filter(|(st, ..)| st.check.is_some()).map(|(st, ..)| st.name.as_str()).collect();
                        self.sink.err_hint(g.expr.1, &kp, format!("`{}`: no check stage `{}`", p.join("."), p[1]), if checks.is_empty() { "the pipeline has no `check:` stage".to_owned() } else { format!("check stages: {}", checks.join(", ")) });
                    }
                }
                _ => self.sink.err_hint(g.expr.1, &kp, format!("unknown value `{}`", p.join(".")), "gates read `metrics.<key>`, `params.<key>`, `checks.<stage>.<key>`, or `model(\"name@alias\").metrics.<key>`"),
            }
        }
        for r in expr.model_refs() {
            if let Err(e) = r.parse::<ferry_core::ModelRef>() {
                self.sink.err(g.expr.1, &kp, e.to_string());
            }
        }
        Some(Gate {
            name: g.name.clone().unwrap_or_else(|| g.expr.0.clone()),
            source: g.expr.0.clone(),
            expr,
        })
    }

    /// `register:`: a valid model name and alias, and an artifact that is
    /// (inside) some stage's out, its producer.
    fn register(&mut self, r: &RawRegister, stages: &[Placed]) -> Option<Register> {
        let model = match &r.model {
            Some((m, pos)) => match ModelName::new(m) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.sink.err(*pos, "register.model", e.to_string());
                    None
                }
            },
            None => {
                self.sink.err(r.pos, "register", "missing key `model`");
                None
            }
        };
        let artifact = match &r.artifact {
            Some(a) => self.path(a, "register.artifact").map(|p| (p, a.1)),
            None => {
                self.sink.err(r.pos, "register", "missing key `artifact`");
                None
            }
        };
        let alias = r.alias.as_ref().and_then(|(a, pos)| {
            match format!("m@{a}").parse::<ferry_core::ModelRef>() {
                Ok(_) => Some(a.clone()),
                Err(_) => {
                    self.sink.err(
                        *pos,
                        "register.alias",
                        format!("invalid alias `{a}`: use letters, digits, `_`, `-` and `.`"),
                    );
                    None
                }
            }
        });
        let (artifact, apos) = artifact?;
        let producer = stages
            .iter()
            .find(|s| s.0.outs.iter().any(|o| path_within(&artifact, o)));
        let Some(producer) = producer else {
            self.sink.err_hint(
                apos,
                "register.artifact",
                format!("`{artifact}` is not an out of any stage"),
                "list the model file under some stage's `outs:`",
            );
            return None;
        };
        Some(Register {
            model: model?,
            artifact,
            alias,
            producer: producer.0.name.clone(),
            signature: r.signature.clone(),
        })
    }

    fn topo_order(&mut self, stages: &[Placed]) -> Option<Vec<usize>> {
        let index: HashMap<&str, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.0.name.as_str(), i))
            .collect();
        let ups: Vec<Vec<usize>> = stages
            .iter()
            .map(|s| {
                s.0.upstream
                    .iter()
                    .filter_map(|u| index.get(u.as_str()).copied())
                    .collect()
            })
            .collect();
        // 0 = unvisited, 1 = on the stack, 2 = done
        let mut state = vec![0u8; stages.len()];
        let mut order = Vec::new();
        let mut reported: BTreeSet<Vec<usize>> = BTreeSet::new();
        let mut ok = true;
        fn visit(
            i: usize,
            ups: &[Vec<usize>],
            state: &mut [u8],
            stack: &mut Vec<usize>,
            order: &mut Vec<usize>,
            cycles: &mut Vec<Vec<usize>>,
        ) {
            state[i] = 1;
            stack.push(i);
            for &u in &ups[i] {
                match state[u] {
                    0 => visit(u, ups, state, stack, order, cycles),
                    1 => {
                        let at = stack.iter().position(|&x| x == u).unwrap_or(0);
                        cycles.push(stack[at..].to_vec());
                    }
                    _ => {}
                }
            }
            stack.pop();
            state[i] = 2;
            order.push(i);
        }
        let mut cycles = Vec::new();
        for i in 0..stages.len() {
            if state[i] == 0 {
                visit(
                    i,
                    &ups,
                    &mut state,
                    &mut Vec::new(),
                    &mut order,
                    &mut cycles,
                );
            }
        }
        for mut c in cycles {
            ok = false;
            // Name the cycle from its first-declared stage, in the direction data flows.
            c.reverse();
            let start = c
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| **s)
                .map_or(0, |(i, _)| i);
            c.rotate_left(start);
            if !reported.insert({
                let mut k = c.clone();
                k.sort_unstable();
                k
            }) {
                continue;
            }
            let mut names: Vec<&str> = c.iter().map(|&i| stages[i].0.name.as_str()).collect();
            names.push(names[0]);
            let first = c[0];
            self.sink.err(
                stages[first].1,
                &format!("stages.{}", stages[first].0.name),
                format!("the stages form a cycle: {}", names.join(" -> ")),
            );
        }
        ok.then_some(order)
    }
}

/// A param value as it is written into a command.
pub fn render_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
