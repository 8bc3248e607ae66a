//! `StringNormalizer` (ai.onnx) evaluated as onnxruntime evaluates it
//! (`string_normalizer.cc`): stop words are dropped, then the case changed.
//!
//! - The input is `[C]` or `[1, C]` strings (C > 0); anything else is an
//!   error, as in onnxruntime (scikit-learn exports reshape the `[N, 1]` input
//!   to `[N]` first).
//! - Stop words are whole strings. Compared case-sensitively, or else after
//!   mapping both sides to upper case (`case_change_action` UPPER) or lower
//!   case (LOWER and NONE). Dropped elements shrink the output; when every
//!   element is dropped the output is one empty string, `[1]` (or `[1, 1]`).
//! - Case changes map one character to one character, the way glibc's
//!   `towlower`/`towupper` do in onnxruntime's default locale (`en_US.UTF-8`):
//!   Unicode's simple case mappings, so `ß` stays `ß` in upper case, `İ`
//!   becomes `i`, and a final `Σ` becomes `σ` (never `ς`). `C` and `POSIX`
//!   change ASCII letters only; other locales are refused at load (glibc's
//!   tables for them are not ours to guess: Turkish maps `i` to `İ`).
//!   Checked against onnxruntime 1.32 on glibc 2.36 for every code point:
//!   equal but for the 55 letters Unicode 16 added case pairs for, which
//!   Rust's tables know and glibc 2.36's (Unicode 15) do not.

use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseAction {
    Lower,
    Upper,
    None,
}

impl CaseAction {
    pub fn parse(s: &str) -> Result<CaseAction, String> {
        match s {
            "LOWER" => Ok(CaseAction::Lower),
            "UPPER" => Ok(CaseAction::Upper),
            "NONE" => Ok(CaseAction::None),
            other => Err(format!(
                "unknown case_change_action `{other}` (expected LOWER, UPPER or NONE)"
            )),
        }
    }
}

/// Which characters a case change maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseTable {
    /// Unicode's simple case mappings (glibc's UTF-8 locales).
    Unicode,
    /// ASCII letters only (glibc's `C` locale).
    Ascii,
}

impl CaseTable {
    /// The table of a `locale` attribute (none: onnxruntime's default,
    /// `en_US.UTF-8`).
    pub fn for_locale(locale: Option<&str>) -> Result<CaseTable, String> {
        let Some(name) = locale else {
            return Ok(CaseTable::Unicode);
        };
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "en_us.utf-8" | "en_us.utf8" | "c.utf-8" | "c.utf8" => Ok(CaseTable::Unicode),
            "c" | "posix" => Ok(CaseTable::Ascii),
            _ => Err(format!(
                "locale `{name}` is not supported: ferry-onnx changes case as onnxruntime does in en_US.UTF-8 (the default), C.UTF-8, C or POSIX"
            )),
        }
    }
}

/// The lower case of one character, as glibc's `towlower`.
pub fn lower_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    // The one character whose full mapping has two characters ("i̇") but
    // whose simple mapping is one.
    if c == '\u{130}' {
        return 'i';
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// The upper case of one character, as glibc's `towupper`.
pub fn upper_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        // Full mappings of several characters (`ß` -> "SS", `ﬁ` -> "FI") have
        // no simple mapping, but for the Greek letters with ypogegrammeni,
        // whose simple upper case is the titlecase letter with
        // prosgegrammeni.
        _ => match u32::from(c) {
            0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
                char::from_u32(u32::from(c) + 8).unwrap_or(c)
            }
            0x1FB3 => '\u{1FBC}',
            0x1FC3 => '\u{1FCC}',
            0x1FF3 => '\u{1FFC}',
            _ => c,
        },
    }
}

fn change_case(s: &str, action: CaseAction, table: CaseTable) -> String {
    match (action, table) {
        (CaseAction::None, _) => s.to_owned(),
        (CaseAction::Lower, CaseTable::Ascii) => s.to_ascii_lowercase(),
        (CaseAction::Upper, CaseTable::Ascii) => s.to_ascii_uppercase(),
        (CaseAction::Lower, CaseTable::Unicode) if s.is_ascii() => s.to_ascii_lowercase(),
        (CaseAction::Upper, CaseTable::Unicode) if s.is_ascii() => s.to_ascii_uppercase(),
        (CaseAction::Lower, CaseTable::Unicode) => s.chars().map(lower_char).collect(),
        (CaseAction::Upper, CaseTable::Unicode) => s.chars().map(upper_char).collect(),
    }
}

#[derive(Debug, Clone)]
pub struct StringNormalizer {
    action: CaseAction,
    table: CaseTable,
    /// `None`: stop words compared as they are; else the case both sides are
    /// mapped to before comparing.
    compare: Option<CaseAction>,
    stopwords: HashSet<String>,
}

impl StringNormalizer {
    /// The attributes of a node; an error names the bad one.
    pub fn new(
        action: CaseAction,
        case_sensitive: bool,
        locale: Option<&str>,
        stopwords: Vec<String>,
    ) -> Result<StringNormalizer, String> {
        let table = CaseTable::for_locale(locale)?;
        let compare = (!case_sensitive).then_some(if action == CaseAction::Upper {
            CaseAction::Upper
        } else {
            CaseAction::Lower
        });
        let mut set = HashSet::with_capacity(stopwords.len());
        for word in stopwords {
            if word.is_empty() {
                return Err("`stopwords` has an empty string".to_owned());
            }
            let key = match compare {
                Some(c) => change_case(&word, c, table),
                None => word.clone(),
            };
            if !set.insert(key) {
                return Err(format!(
                    "`stopwords` has `{word}` twice{}",
                    if case_sensitive {
                        ""
                    } else {
                        " (compared without case)"
                    }
                ));
            }
        }
        Ok(StringNormalizer {
            action,
            table,
            compare,
            stopwords: set,
        })
    }

    pub fn has_stopwords(&self) -> bool {
        !self.stopwords.is_empty()
    }

    /// The output shape for an input shape, and the number of strings
    /// normalized: `[C]` or `[1, C]` with C > 0.
    pub fn check_shape(shape: &[usize]) -> Result<usize, String> {
        match *shape {
            [c] if c > 0 => Ok(c),
            [1, c] if c > 0 => Ok(c),
            _ => Err(format!(
                "StringNormalizer takes [C] or [1, C] strings with C > 0 (as onnxruntime), got shape {shape:?}"
            )),
        }
    }

    /// The strings kept, their case changed; at least one (an empty string
    /// when every one is a stop word).
    pub fn normalize(&self, input: &[String]) -> Vec<String> {
        let mut out: Vec<String> = if self.stopwords.is_empty() {
            input
                .iter()
                .map(|s| change_case(s, self.action, self.table))
                .collect()
        } else if let Some(compare) = self.compare {
            input
                .iter()
                .filter_map(|s| {
                    let key = change_case(s, compare, self.table);
                    if self.stopwords.contains(&key) {
                        None
                    } else if self.action == CaseAction::None {
                        Some(s.clone())
                    } else {
                        // The compare case is the output case for LOWER and UPPER.
                        Some(key)
                    }
                })
                .collect()
        } else {
            input
                .iter()
                .filter(|s| !self.stopwords.contains(s.as_str()))
                .map(|s| change_case(s, self.action, self.table))
                .collect()
        };
        if out.is_empty() {
            out.push(String::new());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn simple_case_mappings_as_glibc() {
        let lower: String = "İSTANBUL ΣΟΦΟΣ ǅ ᾈ ᾼ Ⅻ K".chars().map(lower_char).collect();
        assert_eq!(lower, "istanbul σοφοσ ǆ ᾀ ᾳ ⅻ k");
        let upper: String = "straße ﬁne ǅ ᾀ ᾳ ῃ ῳ ŉ ǰ ᾈ ı ſ"
            .chars()
            .map(upper_char)
            .collect();
        assert_eq!(upper, "STRAßE ﬁNE Ǆ ᾈ ᾼ ῌ ῼ ŉ ǰ ᾈ I S");
        assert_eq!(upper_char('ꭰ'), 'Ꭰ');
        assert_eq!(lower_char('😀'), '😀');
    }

    #[test]
    fn lower_and_upper_without_stopwords_keep_every_element() {
        let n = StringNormalizer::new(CaseAction::Lower, false, None, vec![]).unwrap();
        assert_eq!(
            n.normalize(&strings(&["Hello", "CAFÉ", ""])),
            ["hello", "café", ""]
        );
        let n = StringNormalizer::new(CaseAction::Upper, true, Some("C"), vec![]).unwrap();
        assert_eq!(n.normalize(&strings(&["café"])), ["CAFé"]);
    }

    #[test]
    fn stopwords_case_insensitive_compare_in_the_output_case() {
        let n = StringNormalizer::new(CaseAction::Upper, false, None, strings(&["the", "Straße"]))
            .unwrap();
        assert_eq!(
            n.normalize(&strings(&["The", "x", "STRASSE", "STRAßE"])),
            ["X", "STRASSE"]
        );
        // NONE keeps the original strings; the comparison is in lower case.
        let n = StringNormalizer::new(CaseAction::None, false, None, strings(&["THE"])).unwrap();
        assert_eq!(n.normalize(&strings(&["the", "Tea", "tHe"])), ["Tea"]);
    }

    #[test]
    fn stopwords_case_sensitive_then_case_change() {
        let n = StringNormalizer::new(CaseAction::Upper, true, None, strings(&["the"])).unwrap();
        assert_eq!(n.normalize(&strings(&["the", "The"])), ["THE"]);
    }

    #[test]
    fn all_stopwords_give_one_empty_string() {
        let n =
            StringNormalizer::new(CaseAction::Lower, false, None, strings(&["a", "b"])).unwrap();
        assert_eq!(n.normalize(&strings(&["A", "b", "B"])), [""]);
    }

    #[test]
    fn shapes_as_onnxruntime() {
        assert_eq!(StringNormalizer::check_shape(&[3]), Ok(3));
        assert_eq!(StringNormalizer::check_shape(&[1, 2]), Ok(2));
        for bad in [&[0usize][..], &[2, 1], &[1, 0], &[1, 1, 1], &[]] {
            let err = StringNormalizer::check_shape(bad).unwrap_err();
            assert!(err.contains("[1, C]"), "{err}");
        }
    }

    #[test]
    fn bad_attributes_are_errors() {
        let err = StringNormalizer::new(CaseAction::Lower, false, None, strings(&["a", "A"]))
            .unwrap_err();
        assert!(err.contains("twice"), "{err}");
        // Case-sensitive, "a" and "A" are two words.
        assert!(StringNormalizer::new(CaseAction::Lower, true, None, strings(&["a", "A"])).is_ok());
        let err = StringNormalizer::new(CaseAction::Lower, true, None, strings(&[""])).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = StringNormalizer::new(CaseAction::Lower, true, Some("tr_TR.UTF-8"), vec![])
            .unwrap_err();
        assert!(err.contains("tr_TR.UTF-8"), "{err}");
        assert!(CaseAction::parse("lower").is_err());
        assert_eq!(
            CaseTable::for_locale(Some("en_US.utf8")),
            Ok(CaseTable::Unicode)
        );
    }
}
