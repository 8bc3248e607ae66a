//! MLflow's search grammar, parsed into a typed query that a store compiles
//! to its own language.
//!
//! * run filters: `metrics.acc > 0.5 and params.lr = '0.01' and
//!   tags.mlflow.parentRunId = 'abc' and attributes.status = 'FINISHED'
//!   and datasets.digest IN ('a', 'b')`: clauses joined by `AND` only;
//! * registry filters: `name LIKE 'iris%'`, `tags.team = 'ml'`,
//!   `run_id = '…'`, `version_number > 2`;
//! * `order_by`: `metrics.acc DESC`, `attributes.start_time`.
//!
//! Keys may be quoted with backticks or double quotes (`` metrics.`my acc` ``).
//! Pure: no IO. Errors carry the message the MLflow client expects to show.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Metric(String),
    Param(String),
    Tag(String),
    Attribute(Attr),
    Dataset(DatasetField),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    RunId,
    RunName,
    Status,
    StartTime,
    EndTime,
    UserId,
    ArtifactUri,
    LifecycleStage,
    /// Registry: a registered model's or version's name.
    Name,
    /// Registry: a version number.
    VersionNumber,
    /// Registry: a version's source.
    Source,
    CreationTime,
    LastUpdatedTime,
    /// Logged models: the model's id.
    ModelId,
    /// Logged models: the model's type.
    ModelType,
    /// Experiments: the experiment's id.
    ExperimentId,
}

impl Attr {
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Attr::StartTime
                | Attr::EndTime
                | Attr::VersionNumber
                | Attr::CreationTime
                | Attr::LastUpdatedTime
                | Attr::ExperimentId
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetField {
    Name,
    Digest,
    Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Comparator::Eq => "=",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
            Comparator::Like => "LIKE",
            Comparator::ILike => "ILIKE",
            Comparator::In => "IN",
            Comparator::NotIn => "NOT IN",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Str(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub entity: Entity,
    pub op: Comparator,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub ascending: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SearchError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, SearchError> {
    Err(SearchError(msg.into()))
}

/// Which grammar: runs (prefixed keys) or the registry (bare `name`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    Runs,
    RegisteredModels,
    ModelVersions,
    /// MLflow 3 logged models: `name`, `model_id`, `source_run_id`, `status`, …
    LoggedModels,
    /// Experiments: `name`, `creation_time`, `last_update_time`, tags; and
    /// `experiment_id` to order by.
    Experiments,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, SearchError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' => {
                let q = c;
                let mut j = i + 1;
                let mut val = String::new();
                loop {
                    if j >= b.len() {
                        return err(format!("Invalid filter '{s}': unterminated string"));
                    }
                    if b[j] == q {
                        // A doubled quote is an escaped quote.
                        if j + 1 < b.len() && b[j + 1] == q {
                            val.push(q as char);
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    let ch = s[j..].chars().next().unwrap_or(' ');
                    val.push(ch);
                    j += ch.len_utf8();
                }
                // A quoted string right after `entity.` is a key, not a value.
                if let Some(Tok::Ident(prev)) = out.last_mut()
                    && prev.ends_with('.')
                {
                    prev.push_str(&val);
                    i = j + 1;
                    continue;
                }
                out.push(Tok::Str(val));
                i = j + 1;
            }
            b'`' => {
                let end = s[i + 1..].find('`').ok_or_else(|| {
                    SearchError(format!("Invalid filter '{s}': unterminated backtick"))
                })?;
                let key = &s[i + 1..i + 1 + end];
                match out.last_mut() {
                    Some(Tok::Ident(prev)) if prev.ends_with('.') => prev.push_str(key),
                    _ => out.push(Tok::Ident(key.to_owned())),
                }
                i += end + 2;
            }
            b'(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b'=' | b'!' | b'<' | b'>' => {
                let mut j = i;
                while j < b.len() && matches!(b[j], b'=' | b'!' | b'<' | b'>') {
                    j += 1;
                }
                let op = match &s[i..j] {
                    "=" | "==" => "=",
                    "!=" => "!=",
                    "<" => "<",
                    "<=" => "<=",
                    ">" => ">",
                    ">=" => ">=",
                    other => {
                        return err(format!(
                            "Invalid comparator '{other}' not one of '{{'<', '>=', '<=', '=', '>', '!='}}'"
                        ));
                    }
                };
                out.push(Tok::Op(op));
                i = j;
            }
            _ if c.is_ascii_digit()
                || ((c == b'-' || c == b'+' || c == b'.')
                    && b.get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == b'.')) =>
            {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'.' | b'-' | b'+'))
                {
                    j += 1;
                }
                let text = &s[i..j];
                let n: f64 = text.parse().map_err(|_| {
                    SearchError(format!("Invalid filter '{s}': bad number '{text}'"))
                })?;
                out.push(Tok::Num(n));
                i = j;
            }
            _ => {
                let mut j = i;
                while j < b.len()
                    && !b[j].is_ascii_whitespace()
                    && !matches!(
                        b[j],
                        b'=' | b'!' | b'<' | b'>' | b'(' | b')' | b',' | b'\'' | b'"' | b'`'
                    )
                {
                    j += 1;
                }
                if j == i {
                    return err(format!("Invalid filter '{s}': unexpected character"));
                }
                out.push(Tok::Ident(s[i..j].to_owned()));
                i = j;
            }
        }
    }
    Ok(out)
}

fn entity(ident: &str, grammar: Grammar) -> Result<Entity, SearchError> {
    let (prefix, key) = match ident.split_once('.') {
        Some((p, k)) => (p.to_ascii_lowercase(), k.to_owned()),
        None => (String::new(), ident.to_owned()),
    };
    if key.is_empty() && !prefix.is_empty() {
        return err(format!(
            "Invalid identifier '{ident}': a key is missing after '{prefix}.'"
        ));
    }
    let attr = |name: &str| -> Result<Attr, SearchError> {
        Ok(match (grammar, name) {
            (Grammar::Runs, "run_id" | "run_uuid") => Attr::RunId,
            // MLflow's aliases: `created` for the start time, `run name`
            // (quoted) for the run's name.
            (Grammar::Runs, "run_name" | "run name" | "Run name" | "Run Name") => Attr::RunName,
            (Grammar::Runs, "status") => Attr::Status,
            (Grammar::Runs, "start_time" | "created" | "Created") => Attr::StartTime,
            (Grammar::Runs, "end_time") => Attr::EndTime,
            (Grammar::Runs, "user_id") => Attr::UserId,
            (Grammar::Runs, "artifact_uri") => Attr::ArtifactUri,
            (Grammar::Runs, "lifecycle_stage") => Attr::LifecycleStage,
            (Grammar::RegisteredModels | Grammar::ModelVersions | Grammar::Experiments, "name") => {
                Attr::Name
            }
            (Grammar::Experiments, "experiment_id") => Attr::ExperimentId,
            (Grammar::Experiments, "last_update_time") => Attr::LastUpdatedTime,
            (Grammar::ModelVersions, "run_id") => Attr::RunId,
            (Grammar::ModelVersions, "version_number") => Attr::VersionNumber,
            (Grammar::ModelVersions, "source_path" | "source") => Attr::Source,
            (Grammar::LoggedModels, "name") => Attr::Name,
            (Grammar::LoggedModels, "model_id") => Attr::ModelId,
            (Grammar::LoggedModels, "source_run_id") => Attr::RunId,
            (Grammar::LoggedModels, "status") => Attr::Status,
            (Grammar::LoggedModels, "model_type") => Attr::ModelType,
            (_, "creation_timestamp" | "creation_time") if grammar != Grammar::Runs => {
                Attr::CreationTime
            }
            (_, "last_updated_timestamp") if grammar != Grammar::Runs => Attr::LastUpdatedTime,
            _ => return err(format!("Invalid attribute key '{name}' specified")),
        })
    };
    Ok(match prefix.as_str() {
        "metric" | "metrics" if grammar == Grammar::Runs => Entity::Metric(key),
        "param" | "params" | "parameter" | "parameters"
            if matches!(grammar, Grammar::Runs | Grammar::LoggedModels) =>
        {
            Entity::Param(key)
        }
        "tag" | "tags" => Entity::Tag(key),
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute(attr(&key)?),
        "dataset" | "datasets" if grammar == Grammar::Runs => Entity::Dataset(match key.as_str() {
            "name" => DatasetField::Name,
            "digest" => DatasetField::Digest,
            "context" => DatasetField::Context,
            _ => {
                return err(format!(
                    "Invalid dataset key '{key}' specified; use name, digest or context"
                ));
            }
        }),
        // A bare identifier is an attribute, in every grammar, as in
        // MLflow's `SearchUtils._get_identifier`: `status = 'FAILED'`.
        "" => Entity::Attribute(attr(&key)?),
        _ => {
            return err(format!(
                "Invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ));
        }
    })
}

/// The most clauses a filter may join with AND (each becomes a condition,
/// and usually a join, in the store's query).
pub const MAX_CLAUSES: usize = 100;
/// The most values an `IN (...)` list may hold.
pub const MAX_LIST_VALUES: usize = 1000;

/// Parses a `filter` string; empty means no filter.
pub fn parse_filter(s: &str, grammar: Grammar) -> Result<Vec<Clause>, SearchError> {
    let toks = lex(s)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (id, entity) = match &toks[i] {
            Tok::Ident(id) => (id.clone(), entity(id, grammar)?),
            // A quoted bare key (`"run name" = 'x'`) is an attribute's name
            // as it stands, dots and all.
            Tok::Str(key) if matches!(toks.get(i + 1), Some(Tok::Op(_) | Tok::Ident(_))) => {
                (key.clone(), entity(&format!("attributes.{key}"), grammar)?)
            }
            _ => return err(format!("Invalid filter '{s}': expected an identifier")),
        };
        i += 1;
        let op = match (toks.get(i), toks.get(i + 1)) {
            (Some(Tok::Op(o)), _) => {
                i += 1;
                match *o {
                    "=" => Comparator::Eq,
                    "!=" => Comparator::Ne,
                    "<" => Comparator::Lt,
                    "<=" => Comparator::Le,
                    ">" => Comparator::Gt,
                    _ => Comparator::Ge,
                }
            }
            (Some(Tok::Ident(w)), next) => {
                let w = w.to_ascii_uppercase();
                i += 1;
                match (w.as_str(), next) {
                    ("LIKE", _) => Comparator::Like,
                    ("ILIKE", _) => Comparator::ILike,
                    ("IN", _) => Comparator::In,
                    ("NOT", Some(Tok::Ident(n))) if n.eq_ignore_ascii_case("IN") => {
                        i += 1;
                        Comparator::NotIn
                    }
                    _ => return err(format!("Invalid comparator '{w}' in filter '{s}'")),
                }
            }
            _ => {
                return err(format!(
                    "Invalid filter '{s}': expected a comparator after '{id}'"
                ));
            }
        };
        let value = match toks.get(i) {
            Some(Tok::Num(n)) => {
                i += 1;
                Value::Num(*n)
            }
            Some(Tok::Str(v)) => {
                i += 1;
                Value::Str(v.clone())
            }
            Some(Tok::LParen) => {
                i += 1;
                let mut items = Vec::new();
                loop {
                    if items.len() == MAX_LIST_VALUES {
                        return err(format!(
                            "Invalid filter: an IN list holds at most {MAX_LIST_VALUES} values"
                        ));
                    }
                    match toks.get(i) {
                        Some(Tok::Str(v)) => items.push(v.clone()),
                        Some(Tok::Num(n)) => items.push(n.to_string()),
                        _ => {
                            return err(format!(
                                "Invalid filter '{s}': expected a quoted value in the list"
                            ));
                        }
                    }
                    i += 1;
                    match toks.get(i) {
                        Some(Tok::Comma) => i += 1,
                        Some(Tok::RParen) => {
                            i += 1;
                            break;
                        }
                        _ => return err(format!("Invalid filter '{s}': expected ',' or ')'")),
                    }
                }
                Value::List(items)
            }
            Some(Tok::Ident(w)) => {
                return err(format!(
                    "Invalid filter '{s}': the value '{w}' must be quoted"
                ));
            }
            _ => return err(format!("Invalid filter '{s}': a value is missing")),
        };
        let clause = Clause { entity, op, value };
        check(&clause, s)?;
        if out.len() == MAX_CLAUSES {
            return err(format!(
                "Invalid filter: at most {MAX_CLAUSES} clauses can be joined with AND"
            ));
        }
        out.push(clause);
        match toks.get(i) {
            None => {}
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("and") => {
                i += 1;
                if i >= toks.len() {
                    return err(format!("Invalid filter '{s}': nothing after AND"));
                }
            }
            Some(Tok::Ident(w)) if w.eq_ignore_ascii_case("or") => {
                return err(format!(
                    "Invalid filter '{s}': only AND is supported, not OR"
                ));
            }
            Some(_) => {
                return err(format!(
                    "Invalid filter '{s}': expected AND between clauses"
                ));
            }
        }
    }
    Ok(out)
}

fn check(c: &Clause, s: &str) -> Result<(), SearchError> {
    use Comparator::*;
    let numeric = matches!(c.entity, Entity::Metric(_))
        || matches!(c.entity, Entity::Attribute(a) if a.is_numeric());
    let ok_ops: &[Comparator] = if numeric {
        &[Eq, Ne, Lt, Le, Gt, Ge]
    } else if matches!(c.entity, Entity::Attribute(Attr::RunId))
        || matches!(c.entity, Entity::Dataset(_))
    {
        &[Eq, Ne, Like, ILike, In, NotIn]
    } else {
        &[Eq, Ne, Like, ILike]
    };
    if !ok_ops.contains(&c.op) {
        return err(format!(
            "Invalid comparator '{}' for this key in filter '{s}'; allowed: {}",
            c.op,
            ok_ops
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match (&c.value, numeric, c.op) {
        (Value::Num(_), true, _) => Ok(()),
        (_, true, _) => err(format!(
            "Invalid filter '{s}': expected a number for a numeric key"
        )),
        (Value::List(_), false, In | NotIn) => Ok(()),
        (Value::List(_), false, _) => err(format!(
            "Invalid filter '{s}': a list goes with IN or NOT IN"
        )),
        (_, false, In | NotIn) => err(format!(
            "Invalid filter '{s}': IN needs a list like ('a', 'b')"
        )),
        (Value::Str(_), false, _) => Ok(()),
        (Value::Num(_), false, _) => err(format!(
            "Invalid filter '{s}': string values must be quoted"
        )),
    }
}

/// Parses `order_by` entries like `metrics.acc DESC`.
pub fn parse_order_by(items: &[String], grammar: Grammar) -> Result<Vec<OrderBy>, SearchError> {
    items
        .iter()
        .map(|item| {
            let toks = lex(item)?;
            let (id, dir) = match toks.as_slice() {
                [Tok::Ident(id)] => (id.clone(), None),
                [Tok::Ident(id), Tok::Ident(d)] => (id.clone(), Some(d.to_ascii_uppercase())),
                _ => return err(format!("Invalid order_by clause '{item}'")),
            };
            let ascending = match dir.as_deref() {
                None | Some("ASC") => true,
                Some("DESC") => false,
                Some(d) => {
                    return err(format!(
                        "Invalid ordering key in order_by clause '{item}': '{d}'"
                    ));
                }
            };
            let id = if grammar == Grammar::Runs && !id.contains('.') {
                format!("attributes.{id}")
            } else {
                id
            };
            let e = entity(&id, grammar)?;
            if matches!(e, Entity::Dataset(_)) {
                return err(format!(
                    "Invalid order_by clause '{item}': datasets cannot be ordered by"
                ));
            }
            Ok(OrderBy {
                entity: e,
                ascending,
            })
        })
        .collect()
}

/// SQL LIKE semantics on a value, for stores that filter in memory.
pub fn like(value: &str, pattern: &str, case_insensitive: bool) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('%') => (0..=v.len()).any(|k| go(&v[k..], &p[1..])),
            Some('_') => !v.is_empty() && go(&v[1..], &p[1..]),
            Some(c) => v.first() == Some(c) && go(&v[1..], &p[1..]),
        }
    }
    let (v, p) = if case_insensitive {
        (value.to_lowercase(), pattern.to_lowercase())
    } else {
        (value.to_owned(), pattern.to_owned())
    };
    go(
        &v.chars().collect::<Vec<_>>(),
        &p.chars().collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn filters_are_bounded() {
        use super::*;
        let clauses = |n: usize| vec!["params.a = 'x'"; n].join(" AND ");
        assert_eq!(
            parse_filter(&clauses(MAX_CLAUSES), Grammar::Runs).map(|c| c.len()),
            Ok(MAX_CLAUSES)
        );
        let e = parse_filter(&clauses(5000), Grammar::Runs)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Invalid filter: at most 100 clauses can be joined with AND")
        );
        let list = |n: usize| format!("attributes.run_id IN ({})", vec!["'r'"; n].join(", "));
        assert!(parse_filter(&list(MAX_LIST_VALUES), Grammar::Runs).is_ok());
        let e = parse_filter(&list(MAX_LIST_VALUES + 1), Grammar::Runs)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("Invalid filter: an IN list holds at most 1000 values")
        );
    }

    use super::*;

    fn runs(s: &str) -> Result<Vec<Clause>, SearchError> {
        parse_filter(s, Grammar::Runs)
    }

    #[test]
    fn the_benchmark_filter() {
        let f = runs("metrics.acc > 0.5 and params.lr = '0.01'").unwrap();
        assert_eq!(
            f,
            vec![
                Clause {
                    entity: Entity::Metric("acc".into()),
                    op: Comparator::Gt,
                    value: Value::Num(0.5)
                },
                Clause {
                    entity: Entity::Param("lr".into()),
                    op: Comparator::Eq,
                    value: Value::Str("0.01".into())
                },
            ]
        );
    }

    #[test]
    fn keys_quotes_and_comparators() {
        let f = runs("tags.mlflow.parentRunId = 'abc' AND metrics.`my acc` <= -1e-3 AND params.\"a b\" ILIKE '%x%'").unwrap();
        assert_eq!(f[0].entity, Entity::Tag("mlflow.parentRunId".into()));
        assert_eq!(f[1].entity, Entity::Metric("my acc".into()));
        assert_eq!(f[1].value, Value::Num(-0.001));
        assert_eq!(f[2].entity, Entity::Param("a b".into()));
        assert_eq!(f[2].op, Comparator::ILike);
        let f = runs("attributes.run_id IN ('a', 'b') and datasets.digest NOT IN ('x') and attributes.start_time >= 17").unwrap();
        assert_eq!(f[0].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(f[1].op, Comparator::NotIn);
        assert_eq!(f[2].entity, Entity::Attribute(Attr::StartTime));
        assert_eq!(
            runs("run.status = 'it''s'").unwrap()[0].value,
            Value::Str("it's".into())
        );
        assert!(runs("").unwrap().is_empty());
    }

    #[test]
    fn bad_filters_are_errors_with_mlflow_messages() {
        let e = runs("metrics.acc >>> 1").unwrap_err();
        assert!(e.0.starts_with("Invalid comparator '>>>'"), "{e}");
        assert!(
            runs("metrics.a > 1 OR metrics.b > 1")
                .unwrap_err()
                .0
                .contains("only AND")
        );
        assert!(runs("params.lr > 1").is_err(), "params compare as strings");
        assert!(runs("metrics.acc = 'x'").is_err());
        assert!(runs("params.lr = 0.1").is_err(), "unquoted string value");
        assert!(
            runs("foo.bar = 'x'")
                .unwrap_err()
                .0
                .contains("Invalid entity type")
        );
        assert!(
            runs("attributes.nope = 'x'")
                .unwrap_err()
                .0
                .contains("Invalid attribute key")
        );
        assert!(runs("metrics.acc >").is_err());
        assert!(runs("metrics.acc > 1 and").is_err());
        assert!(runs("params.x = 'unterminated").is_err());
    }

    #[test]
    fn bare_identifiers_are_run_attributes() {
        // MLflow reads a key without a prefix as `attributes.<key>`, with
        // the same keys (and its aliases `created` and `run name`).
        for (f, attr) in [
            ("status = 'FAILED'", Attr::Status),
            ("run_name = 'x'", Attr::RunName),
            ("start_time > 1700000000000", Attr::StartTime),
            ("end_time <= 5", Attr::EndTime),
            ("user_id = 'me'", Attr::UserId),
            ("artifact_uri LIKE '%/artifacts'", Attr::ArtifactUri),
            ("run_id IN ('a', 'b')", Attr::RunId),
            ("created >= 1", Attr::StartTime),
            ("Created >= 1", Attr::StartTime),
            ("`Run name` = 'x'", Attr::RunName),
            ("\"run name\" = 'x'", Attr::RunName),
        ] {
            let c = runs(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(c[0].entity, Entity::Attribute(attr), "{f}");
            let prefixed = runs(&format!("attributes.{}", f.replace('`', "")));
            if !f.contains('"') && !f.contains('`') {
                assert_eq!(prefixed, Ok(c), "{f}: bare and prefixed agree");
            }
        }
        let f = runs("status = 'FINISHED' and metrics.acc > 0.5 and run_name LIKE 'r%'").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[1].entity, Entity::Metric("acc".into()));
        let e = runs("nope = 'x'").unwrap_err();
        assert!(
            e.0.starts_with("Invalid attribute key 'nope' specified"),
            "{e}"
        );
        assert!(
            runs("start_time > 'yesterday'").is_err(),
            "numeric attribute"
        );
        assert!(runs("status > 'A'").is_err(), "string attribute");
        assert!(runs("acc > 0.5").is_err(), "a metric needs its prefix");
    }

    #[test]
    fn experiment_grammar() {
        let f = parse_filter(
            "name LIKE 'e%' and tags.team = 'ml' and creation_time > 5 and last_update_time < 9",
            Grammar::Experiments,
        )
        .unwrap();
        assert_eq!(f[0].entity, Entity::Attribute(Attr::Name));
        assert_eq!(f[2].entity, Entity::Attribute(Attr::CreationTime));
        assert_eq!(f[3].entity, Entity::Attribute(Attr::LastUpdatedTime));
        let o = parse_order_by(
            &["name ASC".into(), "experiment_id DESC".into()],
            Grammar::Experiments,
        )
        .unwrap();
        assert_eq!(
            o,
            vec![
                OrderBy {
                    entity: Entity::Attribute(Attr::Name),
                    ascending: true
                },
                OrderBy {
                    entity: Entity::Attribute(Attr::ExperimentId),
                    ascending: false
                },
            ]
        );
        assert!(parse_order_by(&["status".into()], Grammar::Experiments).is_err());
        assert!(parse_filter("metrics.x > 1", Grammar::Experiments).is_err());
    }

    #[test]
    fn registry_grammar() {
        let f = parse_filter(
            "name LIKE 'iris%' and tags.team = 'ml'",
            Grammar::RegisteredModels,
        )
        .unwrap();
        assert_eq!(f[0].entity, Entity::Attribute(Attr::Name));
        assert_eq!(f[1].entity, Entity::Tag("team".into()));
        let f = parse_filter(
            "name = 'iris' and run_id = 'abc' and version_number > 1",
            Grammar::ModelVersions,
        )
        .unwrap();
        assert_eq!(f.len(), 3);
        assert!(parse_filter("metrics.x > 1", Grammar::RegisteredModels).is_err());
    }

    #[test]
    fn logged_model_grammar() {
        let f = parse_filter(
            "source_run_id = 'abc' and name = 'model' and params.C = '1'",
            Grammar::LoggedModels,
        )
        .unwrap();
        assert_eq!(f[0].entity, Entity::Attribute(Attr::RunId));
        assert_eq!(f[2].entity, Entity::Param("C".into()));
    }

    #[test]
    fn order_by() {
        let o = parse_order_by(
            &[
                "metrics.acc DESC".into(),
                "start_time".into(),
                "params.`a b` asc".into(),
            ],
            Grammar::Runs,
        )
        .unwrap();
        assert_eq!(
            o[0],
            OrderBy {
                entity: Entity::Metric("acc".into()),
                ascending: false
            }
        );
        assert_eq!(o[1].entity, Entity::Attribute(Attr::StartTime));
        assert_eq!(
            o[2],
            OrderBy {
                entity: Entity::Param("a b".into()),
                ascending: true
            }
        );
        assert!(parse_order_by(&["metrics.acc sideways".into()], Grammar::Runs).is_err());
        let o = parse_order_by(&["name DESC".into()], Grammar::RegisteredModels).unwrap();
        assert_eq!(o[0].entity, Entity::Attribute(Attr::Name));
    }

    #[test]
    fn like_matches_sql() {
        assert!(like("iris-model", "iris%", false));
        assert!(!like("Iris-model", "iris%", false));
        assert!(like("Iris-model", "iris%", true));
        assert!(like("abc", "a_c", false));
        assert!(!like("abcd", "a_c", false));
    }
}
