//! Phase one: YAML text to a tree of nodes that knows where each came from.
//!
//! serde-saphyr does the YAML (anchors, aliases, `<<` merge keys); this module
//! only captures its output with locations, so that phase two can report every
//! problem at once instead of stopping at the first like a serde derive would.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// 1-based line and column of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone)]
pub struct Key {
    pub pos: Pos,
    pub name: String,
}

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

fn pos_of<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// The kind of a node, without its position (positions come from `Spanned`).
struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = Kind;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Kind, E> {
        Ok(Kind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
        d.deserialize_any(KindVisitor)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Kind, E> {
        Ok(Kind::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Kind, E> {
        Ok(Kind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Kind, E> {
        Ok(i64::try_from(v).map_or(Kind::Float(v as f64), Kind::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Kind, E> {
        Ok(Kind::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
        Ok(Kind::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Kind, E> {
        Ok(Kind::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kind, A::Error> {
        let mut out = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            out.push(n);
        }
        Ok(Kind::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kind, A::Error> {
        let mut out: Vec<(Key, Node)> = Vec::new();
        while let Some(k) = map.next_key::<Spanned<KeyText>>()? {
            let v = map.next_value::<Node>()?;
            let key = Key {
                pos: pos_of(&k),
                name: k.value.0,
            };
            // A key given twice: the later one wins, as YAML merge keys need
            // (explicit keys override merged ones).
            if let Some(slot) = out.iter_mut().find(|(ek, _)| ek.name == key.name) {
                *slot = (key, v);
            } else {
                out.push((key, v));
            }
        }
        Ok(Kind::Map(out))
    }
}

struct KindSeed(Kind);

impl<'de> Deserialize<'de> for KindSeed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor).map(KindSeed)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<KindSeed>::deserialize(d)?;
        Ok(Node {
            pos: pos_of(&s),
            kind: s.value.0,
        })
    }
}

/// A mapping key as text, whatever scalar it was written as: asked for as
/// a string, so a key such as `y`, `no` or `on` stays the name it was
/// written as (YAML 1.1 would read it as a boolean).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(KindVisitor)? {
            Kind::Str(s) => Ok(KeyText(s)),
            Kind::Int(i) => Ok(KeyText(i.to_string())),
            Kind::Float(f) => Ok(KeyText(f.to_string())),
            Kind::Bool(b) => Ok(KeyText(b.to_string())),
            Kind::Null => Ok(KeyText("null".into())),
            other => Err(de::Error::custom(format!(
                "mapping keys must be scalars, found {}",
                other.type_name()
            ))),
        }
    }
}

/// A YAML syntax error, with where it is.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses YAML text into a node tree. An empty document is `null`.
pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    if text.trim().is_empty() {
        return Ok(Node {
            pos: Pos { line: 1, column: 1 },
            kind: Kind::Null,
        });
    }
    serde_saphyr::from_str::<Node>(text).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or(Pos { line: 1, column: 1 });
        let full = e.to_string();
        // serde-saphyr renders a snippet of its own; keep its first line only,
        // ferry draws the snippet itself.
        let first = full.lines().next().unwrap_or("invalid YAML").trim();
        let first = first.strip_prefix("error:").unwrap_or(first).trim();
        // Drop a leading "line N column M:": ferry prints the position itself.
        let message = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
            Some((_, rest)) => rest.to_owned(),
            None => first.to_owned(),
        };
        SyntaxError { pos, message }
    })
}

impl Node {
    /// The value as JSON, for params and fingerprints.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Int(i) => J::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Kind::Str(s) => J::String(s.clone()),
            Kind::Seq(v) => J::Array(v.iter().map(Node::to_json).collect()),
            Kind::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Follows a dotted path through mappings.
    pub fn get_path(&self, path: &str) -> Option<&Node> {
        let mut cur = self;
        for part in path.split('.') {
            let Kind::Map(m) = &cur.kind else { return None };
            cur = &m.iter().find(|(k, _)| k.name == part)?.1;
        }
        Some(cur)
    }
}

/// A key's path below `path` (`stages.train.cmd`), as errors name it; the
/// top level's keys are themselves.
pub fn key_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_stay_the_text_they_were_written_as() {
        let n = parse_yaml("y: 1\non: 2\nno: 3\n1.50: 4\nname: 5\n")
            .unwrap_or_else(|e| panic!("{}", e.message));
        let Kind::Map(m) = n.kind else {
            panic!("a mapping")
        };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(keys, ["y", "on", "no", "1.50", "name"]);
    }

    use super::*;

    #[test]
    fn positions_and_merge_keys() {
        let text = "defaults: &d\n  retries: 2\n  cmd: a\nstages:\n  s:\n    <<: *d\n    cmd: b\n";
        let n = parse_yaml(text).unwrap();
        let s = n.get_path("stages.s").unwrap();
        let Kind::Map(m) = &s.kind else { panic!() };
        let names: Vec<_> = m.iter().map(|(k, _)| k.name.as_str()).collect();
        assert!(names.contains(&"retries"), "{names:?}");
        assert!(names.contains(&"cmd"));
        let cmd = s.get_path("cmd").unwrap();
        assert!(matches!(&cmd.kind, Kind::Str(s) if s == "b"), "{cmd:?}");
        assert_eq!(cmd.pos.line, 7);
        assert_eq!(
            n.get_path("defaults.retries").unwrap().pos,
            Pos {
                line: 2,
                column: 12
            }
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1);
        assert!(!e.message.is_empty());
    }
}
