//! Validated names and ids. Each is checked once, in `new`/`FromStr`, and is
//! valid wherever it travels afterwards.

use std::fmt;
use std::str::FromStr;

/// `s` as a DNS label's part (what Kubernetes and Argo objects, and
/// workflow files, are named with): lowercase letters and digits, every run
/// of other characters one `-`, none at either end, at most `max` long.
pub fn slug(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod slug_tests {
    #[test]
    fn a_slug_is_a_label_part() {
        assert_eq!(super::slug("Train_Model v2", 63), "train-model-v2");
        assert_eq!(super::slug("__a__", 63), "a");
        assert_eq!(super::slug("abcdef", 3), "abc");
        assert_eq!(super::slug("ab-cd", 3), "ab");
        assert_eq!(super::slug("---", 63), "");
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name is empty")]
    Empty { kind: &'static str },
    #[error("{kind} name `{name}` is longer than {max} characters")]
    TooLong {
        kind: &'static str,
        name: String,
        max: usize,
    },
    #[error("{kind} name `{name}` has the character `{ch}`; use letters, digits, `_`, `-` and `.`")]
    BadChar {
        kind: &'static str,
        name: String,
        ch: char,
    },
}

fn check_name(kind: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.chars().count() > max {
        return Err(NameError::TooLong {
            kind,
            name: s.to_owned(),
            max,
        });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NameError::BadChar {
            kind,
            name: s.to_owned(),
            ch,
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$m:meta])* $ty:ident, $kind:literal, $max:literal) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check_name($kind, &s, $max)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The name of a pipeline stage, a key under `stages:` in ferry.yaml.
    StageName,
    "stage",
    128
);
name_type!(
    /// The name of a registered model, e.g. `iris`.
    ModelName,
    "model",
    256
);

/// A run id: 32 lowercase hex characters of a random UUID, the same shape as
/// MLflow's run ids. Random from the first character, so short prefixes
/// (`ferry runs show 3f2a`) are unique in practice.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Parses a full id. Prefix matching is the store's job.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(s.to_ascii_lowercase()))
    }
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(8)]
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({})", self.0)
    }
}

/// An MLflow experiment id: a non-negative integer, which MLflow's REST API
/// carries as a string. Parsed once where it comes in (a request to the
/// MLflow API, a server's answer, a store row), never read back from text
/// with a default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExperimentId(i64);

impl ExperimentId {
    /// MLflow's `Default` experiment, which every store has.
    pub const DEFAULT: ExperimentId = ExperimentId(0);

    /// The id `id`; `None` when it is negative.
    pub fn new(id: i64) -> Option<Self> {
        (id >= 0).then_some(Self(id))
    }
    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("experiment id `{0}` is not a non-negative integer")]
pub struct ExperimentIdError(pub String);

impl FromStr for ExperimentId {
    type Err = ExperimentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| ExperimentIdError(s.to_owned()))
    }
}

impl fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A reference to a model version: `name/3` (a version) or `name@alias`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelRef {
    Version(ModelName, u64),
    Alias(ModelName, String),
    Latest(ModelName),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefParseError {
    #[error("invalid model reference `{0}`: expected `name`, `name/VERSION` or `name@ALIAS`")]
    Shape(String),
    #[error(transparent)]
    Name(#[from] NameError),
}

impl ModelRef {
    pub fn model(&self) -> &ModelName {
        match self {
            ModelRef::Version(m, _) | ModelRef::Alias(m, _) | ModelRef::Latest(m) => m,
        }
    }
}

impl FromStr for ModelRef {
    type Err = ModelRefParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((name, alias)) = s.split_once('@') {
            check_name("alias", alias, 256).map_err(|_| ModelRefParseError::Shape(s.to_owned()))?;
            return Ok(ModelRef::Alias(ModelName::new(name)?, alias.to_owned()));
        }
        if let Some((name, version)) = s.split_once('/') {
            let v = version
                .strip_prefix('v')
                .unwrap_or(version)
                .parse::<u64>()
                .map_err(|_| ModelRefParseError::Shape(s.to_owned()))?;
            return Ok(ModelRef::Version(ModelName::new(name)?, v));
        }
        Ok(ModelRef::Latest(ModelName::new(s)?))
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Version(m, v) => write!(f, "{m}/{v}"),
            ModelRef::Alias(m, a) => write!(f, "{m}@{a}"),
            ModelRef::Latest(m) => write!(f, "{m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiment_ids_are_parsed_once() {
        let id: ExperimentId = "12".parse().unwrap();
        assert_eq!((id.get(), id.to_string()), (12, "12".to_owned()));
        for bad in ["", "x", "-1", "1.5", " 1"] {
            assert_eq!(
                bad.parse::<ExperimentId>().unwrap_err().to_string(),
                format!("experiment id `{bad}` is not a non-negative integer")
            );
        }
    }

    #[test]
    fn names_are_validated() {
        assert!(StageName::new("train").is_ok());
        assert!(StageName::new("train-1.v2_x").is_ok());
        assert_eq!(
            StageName::new("").unwrap_err(),
            NameError::Empty { kind: "stage" }
        );
        assert!(matches!(
            StageName::new("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
    }

    #[test]
    fn model_refs_parse() {
        let m = ModelName::new("iris").unwrap();
        assert_eq!(
            "iris/3".parse::<ModelRef>().unwrap(),
            ModelRef::Version(m.clone(), 3)
        );
        assert_eq!(
            "iris@production".parse::<ModelRef>().unwrap(),
            ModelRef::Alias(m.clone(), "production".into())
        );
        assert_eq!("iris".parse::<ModelRef>().unwrap(), ModelRef::Latest(m));
        assert!("iris/x".parse::<ModelRef>().is_err());
        assert!("iris@".parse::<ModelRef>().is_err());
    }

    #[test]
    fn run_ids_differ_from_the_first_characters() {
        let a = RunId::generate();
        let b = RunId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a.short(), b.short());
        assert!(RunId::parse(a.as_str()).is_some());
        assert!(RunId::parse("xyz").is_none());
    }
}
