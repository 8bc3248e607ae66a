//! `Tokenizer` (com.microsoft) evaluated as onnxruntime evaluates it
//! (`contrib_ops/cpu/tokenizer.cc`), with onnxruntime's RE2 regular
//! expressions run by the `regex` crate's engine (`regex-automata`).
//!
//! - Input `[C]` or `[N, C]` strings; output the input's shape plus one axis
//!   of `T` tokens, `T` the most tokens of any string (plus the start and end
//!   marks `\x02` and `\x03` with `mark`); shorter rows end with `pad_value`
//!   (after the end mark). When no string has a token, `T` is 0 (no marks).
//! - `tokenexp`: the tokens are the successive leftmost-longest matches of the
//!   expression (RE2 with `longest_match`: `a|ab` takes `ab`, `a+?` takes all
//!   the `a`s). A match shorter than `mincharnum` characters (an empty one
//!   among them) is no token, and the search goes on one character after its
//!   start. `tokenexp` `.` gives one token per character (newlines too).
//! - `separators`: each is an expression; the string is split at the matches
//!   of the first, each piece at the matches of the second, and so on,
//!   dropping pieces shorter than `mincharnum` characters. One empty
//!   separator gives one token per character.
//!
//! The expressions are RE2's, translated for `regex-syntax`
//! ([`translate_re2`]): `\w`, `\d`, `\s`, `\b` and `\B` are ASCII as in RE2
//! (`\s` without `\v`), `\Q...\E` quotes, escaped punctuation is itself,
//! `{` is a literal unless it starts a repetition, and a `[` inside a class
//! is a literal. What RE2 refuses is refused at load, with RE2's reason:
//! the `(?u)` of scikit-learn's default pattern `(?u)\b\w\w+\b` among it
//! (skl2onnx exports that pattern as `[a-zA-Z0-9_]+`), `\C`, lookarounds,
//! backreferences. `\pL`, `\p{Greek}` and `(?i)` use Unicode's tables (the
//! `regex` crate's Unicode version, which may be newer than RE2's).

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};

/// The start and end marks of `mark`.
const START_MARK: &str = "\u{2}";
const END_MARK: &str = "\u{3}";

/// An RE2 expression with RE2's leftmost-longest searches.
#[derive(Debug, Clone)]
pub struct Re2 {
    /// Leftmost-first: where the leftmost match starts.
    first: Regex,
    /// All matches: from that start, the longest one.
    longest: Regex,
}

impl Re2 {
    pub fn new(pattern: &str) -> Result<Re2, String> {
        let translated = translate_re2(pattern)?;
        // UTF-8 mode off in the syntax only so that RE2's ASCII `\B` may be
        // written (`(?-u:\B)`); every class stays one of whole characters,
        // and empty matches never split a character.
        let syntax = syntax::Config::new().utf8(false);
        let build = |kind: MatchKind| {
            meta::Builder::new()
                .syntax(syntax)
                .configure(meta::Config::new().match_kind(kind).utf8_empty(true))
                .build(&translated)
                .map_err(|e| format!("cannot compile `{pattern}`: {e}"))
        };
        Ok(Re2 {
            first: build(MatchKind::LeftmostFirst)?,
            longest: build(MatchKind::All)?,
        })
    }

    /// The leftmost-longest match in `hay[start..]` (the text before `start`
    /// is context for `\b` and `^`), as byte offsets into `hay`.
    pub fn find_at(&self, hay: &str, start: usize) -> Option<(usize, usize)> {
        if start > hay.len() {
            return None;
        }
        let m = self.first.search(&Input::new(hay).range(start..))?;
        let anchored = Input::new(hay).range(m.start()..).anchored(Anchored::Yes);
        let end = self
            .longest
            .search(&anchored)
            .map_or(m.end(), |l| l.end().max(m.end()));
        Some((m.start(), end))
    }
}

/// How a tokenizer splits.
#[derive(Debug, Clone)]
enum Mode {
    Chars,
    Expression(Re2),
    Separators(Vec<Re2>),
}

#[derive(Debug, Clone)]
pub struct Tokenizer {
    mark: bool,
    pad: String,
    mincharnum: usize,
    mode: Mode,
}

/// The tokens of a batch: `shape` is the input's plus the token axis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub shape: Vec<usize>,
    pub values: Vec<String>,
}

impl Tokenizer {
    /// The attributes of a node (`separators` or else `tokenexp`, as
    /// onnxruntime reads them); an error names the bad one.
    pub fn new(
        mark: bool,
        pad_value: String,
        mincharnum: i64,
        separators: Option<Vec<String>>,
        tokenexp: Option<String>,
    ) -> Result<Tokenizer, String> {
        if mincharnum <= 0 {
            return Err(format!("`mincharnum` is {mincharnum}, it must be positive"));
        }
        let mincharnum = usize::try_from(mincharnum).unwrap_or(usize::MAX);
        let mode = match (separators, tokenexp) {
            (Some(seps), _) => {
                if seps.is_empty() {
                    return Err("`separators` is empty".to_owned());
                }
                if seps.len() == 1 && seps[0].is_empty() {
                    Mode::Chars
                } else {
                    let compiled = seps
                        .iter()
                        .map(|s| Re2::new(s).map_err(|e| format!("separator: {e}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    Mode::Separators(compiled)
                }
            }
            (None, Some(exp)) => {
                if exp.is_empty() {
                    return Err("`tokenexp` is empty".to_owned());
                }
                if exp == "." {
                    Mode::Chars
                } else {
                    Mode::Expression(Re2::new(&exp).map_err(|e| format!("tokenexp: {e}"))?)
                }
            }
            (None, None) => {
                return Err("neither `separators` nor `tokenexp` is set".to_owned());
            }
        };
        if matches!(mode, Mode::Chars) && mincharnum > 1 {
            return Err(format!(
                "`mincharnum` is {mincharnum}, more than 1 with one token per character"
            ));
        }
        Ok(Tokenizer {
            mark,
            pad: pad_value,
            mincharnum,
            mode,
        })
    }

    /// Tokenizes `[C]` or `[N, C]` strings.
    pub fn tokenize(&self, shape: &[usize], input: &[String]) -> Result<Tokens, String> {
        if !matches!(shape.len(), 1 | 2) {
            return Err(format!(
                "Tokenizer takes [C] or [N, C] strings, got shape {shape:?}"
            ));
        }
        let mut rows: Vec<Vec<&str>> = Vec::with_capacity(input.len());
        for s in input {
            let mut row = Vec::new();
            self.tokens_of(s, &mut row);
            rows.push(row);
        }
        let most = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut out_shape = shape.to_vec();
        if most == 0 {
            out_shape.push(0);
            return Ok(Tokens {
                shape: out_shape,
                values: Vec::new(),
            });
        }
        let width = most + if self.mark { 2 } else { 0 };
        out_shape.push(width);
        let mut values = Vec::with_capacity(rows.len() * width);
        for row in &rows {
            if self.mark {
                values.push(START_MARK.to_owned());
            }
            values.extend(row.iter().map(|t| (*t).to_owned()));
            if self.mark {
                values.push(END_MARK.to_owned());
            }
            values.extend(std::iter::repeat_n(self.pad.clone(), most - row.len()));
        }
        Ok(Tokens {
            shape: out_shape,
            values,
        })
    }

    /// The tokens of one string, appended to `out`.
    pub fn tokens_of<'s>(&self, s: &'s str, out: &mut Vec<&'s str>) {
        match &self.mode {
            Mode::Chars => {
                out.extend(s.char_indices().map(|(i, c)| &s[i..i + c.len_utf8()]));
            }
            Mode::Expression(re) => {
                let mut start = 0;
                while let Some((a, b)) = re.find_at(s, start) {
                    let token = s.get(a..b).unwrap_or("");
                    if token.chars().count() >= self.mincharnum {
                        out.push(token);
                        start = b;
                    } else {
                        start = a + char_len_at(s, a);
                    }
                }
            }
            Mode::Separators(seps) => {
                let mut pieces = vec![s];
                let mut next = Vec::new();
                for sep in seps {
                    for piece in pieces.drain(..) {
                        self.split(sep, piece, &mut next);
                    }
                    std::mem::swap(&mut pieces, &mut next);
                }
                out.extend(pieces);
            }
        }
    }

    /// Splits `piece` at the matches of `sep` (the piece is the whole text
    /// for `^` and `\b`), keeping the parts of `mincharnum` characters or
    /// more.
    fn split<'s>(&self, sep: &Re2, piece: &'s str, out: &mut Vec<&'s str>) {
        let mut start = 0;
        loop {
            match sep.find_at(piece, start) {
                Some((a, b)) => {
                    let token = piece.get(start..a).unwrap_or("");
                    if token.chars().count() >= self.mincharnum {
                        out.push(token);
                    }
                    start = if b > a { b } else { a + char_len_at(piece, a) };
                }
                None => {
                    // onnxruntime's trailing piece (none once an empty
                    // separator matched at the very end).
                    let token = piece.get(start..).unwrap_or("");
                    if token.chars().count() >= self.mincharnum {
                        out.push(token);
                    }
                    return;
                }
            }
        }
    }
}

/// The length in bytes of the character at `i` (1 at the end, where
/// onnxruntime reads the terminating NUL).
fn char_len_at(s: &str, i: usize) -> usize {
    s.get(i..)
        .and_then(|t| t.chars().next())
        .map_or(1, char::len_utf8)
}

// --- RE2 syntax ----------------------------------------------------------------

/// RE2's `\w`, `\d` and `\s` as the members of a class.
const WORD: &str = "0-9A-Za-z_";
const DIGIT: &str = "0-9";
const SPACE: &str = "\\t\\n\\x0C\\r ";

/// Rewrites an RE2 expression (onnxruntime's options: UTF-8, Perl classes,
/// longest match) into the `regex` crate's syntax with the same meaning, or
/// says why RE2 would refuse it.
pub fn translate_re2(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    let why = |what: String| format!("RE2 (onnxruntime) refuses `{pattern}`: {what}");
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err(why("trailing `\\`".to_owned()));
                };
                i += 2;
                match e {
                    'w' => out.push_str(&format!("[{WORD}]")),
                    'W' => out.push_str(&format!("[^{WORD}]")),
                    'd' => out.push_str(&format!("[{DIGIT}]")),
                    'D' => out.push_str(&format!("[^{DIGIT}]")),
                    's' => out.push_str(&format!("[{SPACE}]")),
                    'S' => out.push_str(&format!("[^{SPACE}]")),
                    'b' => out.push_str("(?-u:\\b)"),
                    'B' => out.push_str("(?-u:\\B)"),
                    'A' | 'z' => {
                        out.push('\\');
                        out.push(e);
                    }
                    'Q' => {
                        // Literal text up to `\E` (or the end).
                        while i < chars.len() {
                            if chars[i] == '\\' && chars.get(i + 1) == Some(&'E') {
                                i += 2;
                                break;
                            }
                            push_literal(&mut out, chars[i]);
                            i += 1;
                        }
                    }
                    'E' => {} // a stray `\E` is nothing in RE2
                    'C' => return Err(why("`\\C` (any byte) is not supported".to_owned())),
                    _ => i = escape(&chars, i, e, &mut out, false).map_err(why)?,
                }
            }
            '[' => {
                i = class(&chars, i, &mut out).map_err(why)?;
            }
            '(' => {
                i = group(&chars, i, &mut out).map_err(why)?;
            }
            '{' => {
                // A repetition `{n}`, `{n,}` or `{n,m}`; else a literal.
                let rest: String = chars[i..].iter().take(24).collect();
                match repetition_len(&rest) {
                    Some(len) => {
                        out.push_str(&rest[..len]);
                        i += rest[..len].chars().count();
                    }
                    None => {
                        out.push_str("\\{");
                        i += 1;
                    }
                }
            }
            '}' => {
                out.push_str("\\}");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A literal character, escaped if it means something.
fn push_literal(out: &mut String, c: char) {
    if c.is_ascii() && !c.is_ascii_alphanumeric() && c != ' ' {
        out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
    } else {
        out.push(c);
    }
}

/// The length in bytes of an RE2 repetition at the start of `s` (`{n}`,
/// `{n,}`, `{n,m}`), if there is one.
fn repetition_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix('{')?;
    let close = body.find('}')?;
    let inner = &body[..close];
    let (lo, hi) = match inner.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (inner, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || hi.is_some_and(|h| !h.is_empty() && !digits(h)) {
        return None;
    }
    Some(close + 2)
}

/// An escape other than the classes and assertions (after `\e`, at `i`):
/// character escapes, hexadecimal and octal codes, Unicode classes,
/// punctuation. Returns the index after it.
fn escape(
    chars: &[char],
    mut i: usize,
    e: char,
    out: &mut String,
    in_class: bool,
) -> Result<usize, String> {
    match e {
        'a' | 'f' | 'n' | 'r' | 't' | 'v' => {
            out.push('\\');
            out.push(e);
        }
        'x' => {
            // `\xHH` or `\x{H...}`: the same in both.
            out.push_str("\\x");
            if chars.get(i) == Some(&'{') {
                while i < chars.len() {
                    out.push(chars[i]);
                    i += 1;
                    if chars[i - 1] == '}' {
                        break;
                    }
                }
            } else {
                for _ in 0..2 {
                    if let Some(&h) = chars.get(i) {
                        out.push(h);
                        i += 1;
                    }
                }
            }
        }
        '0'..='7' => {
            // Octal: `\0` and up to two more digits, or `\1`-`\7` followed by
            // one or two (a lone `\1` is a backreference, refused).
            let mut digits = String::from(e);
            while digits.len() < 3 && chars.get(i).is_some_and(|d| ('0'..='7').contains(d)) {
                digits.push(chars[i]);
                i += 1;
            }
            if e != '0' && digits.len() == 1 {
                return Err(format!("backreference `\\{e}` is not supported"));
            }
            let code = u32::from_str_radix(&digits, 8).unwrap_or(0);
            out.push_str(&format!("\\x{{{code:X}}}"));
        }
        '8' | '9' => return Err(format!("backreference `\\{e}` is not supported")),
        'p' | 'P' => {
            out.push('\\');
            out.push(e);
            match chars.get(i) {
                Some('{') => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == '}')
                        .ok_or("unclosed `\\p{`")?;
                    let name: String = chars[i + 1..i + close].iter().collect();
                    // RE2 negates with `\p{^Greek}`.
                    match name.strip_prefix('^') {
                        Some(n) => {
                            out.pop();
                            out.push(if e == 'p' { 'P' } else { 'p' });
                            out.push_str(&format!("{{{n}}}"));
                        }
                        None => out.push_str(&format!("{{{name}}}")),
                    }
                    i += close + 1;
                }
                Some(&n) if n.is_ascii_alphabetic() => {
                    out.push(n);
                    i += 1;
                }
                _ => return Err(format!("bad `\\{e}` class")),
            }
        }
        _ if e.is_ascii() && !e.is_ascii_alphanumeric() => push_literal(out, e),
        _ if in_class => return Err(format!("invalid escape `\\{e}` in a class")),
        _ => return Err(format!("invalid escape `\\{e}`")),
    }
    Ok(i)
}

/// A bracketed class starting at `i` (`[`); returns the index after it.
fn class(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    out.push('[');
    i += 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    // A `]` first is a member.
    if chars.get(i) == Some(&']') {
        out.push_str("\\]");
        i += 1;
    }
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("missing `]`".to_owned());
        };
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '[' => {
                // `[:alpha:]` (ASCII in both), else a literal `[`.
                let rest: String = chars[i..].iter().take(16).collect();
                match rest.find(":]").filter(|_| rest.starts_with("[:")) {
                    Some(end) => {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                    }
                    None => {
                        out.push_str("\\[");
                        i += 1;
                    }
                }
            }
            '\\' => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err("trailing `\\`".to_owned());
                };
                i += 2;
                match e {
                    'w' => out.push_str(WORD),
                    'd' => out.push_str(DIGIT),
                    's' => out.push_str(SPACE),
                    'W' => out.push_str(&format!("[^{WORD}]")),
                    'D' => out.push_str(&format!("[^{DIGIT}]")),
                    'S' => out.push_str(&format!("[^{SPACE}]")),
                    _ => i = escape(chars, i, e, out, true)?,
                }
            }
            // Set operators in the regex crate, literals in RE2.
            '&' | '~' => {
                out.push('\\');
                out.push(c);
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push_str("\\-");
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// A group starting at `i` (`(`): `(?flags)` and `(?flags:` may use only
/// RE2's flags `i`, `m`, `s` and `U`. Returns the index after its opening.
fn group(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    out.push('(');
    i += 1;
    if chars.get(i) != Some(&'?') {
        return Ok(i);
    }
    out.push('?');
    i += 1;
    match chars.get(i) {
        // Named groups.
        Some('P') if chars.get(i + 1) == Some(&'<') => return Ok(i),
        Some('<') if !matches!(chars.get(i + 1), Some('=' | '!')) => return Ok(i),
        _ => {}
    }
    let mut seen_flag = false;
    while let Some(&c) = chars.get(i) {
        match c {
            'i' | 'm' | 's' | 'U' | '-' => {
                out.push(c);
                seen_flag = true;
                i += 1;
            }
            ')' | ':' if seen_flag || c == ':' => {
                out.push(c);
                return Ok(i + 1);
            }
            'u' => {
                return Err("invalid perl operator `(?u` (RE2 has no `u` flag, and its `\\w` and `\\b` are ASCII)\nhint: export with the skl2onnx option `tokenexp` set to an RE2 pattern, e.g. `\\b\\w\\w+\\b`, or `[\\pL\\pN_][\\pL\\pN_]+` for Unicode words".to_owned());
            }
            _ => {
                let shown: String = chars[..(i + 1).min(chars.len())].iter().collect();
                return Err(format!(
                    "invalid perl operator `{}` (RE2 takes the flags i, m, s and U only; no lookaround)",
                    shown.rfind("(?").map_or(shown.as_str(), |k| &shown[k..])
                ));
            }
        }
    }
    Err("missing `)`".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(t: &Tokenizer, s: &str) -> Vec<String> {
        let mut out = Vec::new();
        t.tokens_of(s, &mut out);
        out.into_iter().map(str::to_owned).collect()
    }

    fn exp(pattern: &str, mincharnum: i64) -> Tokenizer {
        Tokenizer::new(false, "#".into(), mincharnum, None, Some(pattern.into())).unwrap()
    }

    #[test]
    fn leftmost_longest_as_re2() {
        assert_eq!(tokens(&exp("a|ab|abc", 1), "abc ab a"), ["abc", "ab", "a"]);
        assert_eq!(tokens(&exp("a+?", 1), "aaa"), ["aaa"]);
        assert_eq!(tokens(&exp("x*", 1), "axxb"), ["xx"]);
        assert_eq!(tokens(&exp("(a|ab)(c|bcd)", 1), "abcd"), ["abcd"]);
    }

    #[test]
    fn perl_classes_and_word_boundaries_are_ascii() {
        let t = exp(r"\b\w\w+\b", 1);
        assert_eq!(
            tokens(&t, "hello wörld café 東京 x1 ab_c"),
            ["hello", "rld", "caf", "x1", "ab_c"]
        );
        assert_eq!(tokens(&exp(r"\d+", 1), "12 ٣٤ 5"), ["12", "5"]);
        // RE2's \s has no vertical tab.
        assert_eq!(tokens(&exp(r"[^\s]+", 1), "a\u{b}b\tc"), ["a\u{b}b", "c"]);
        assert_eq!(tokens(&exp(r"\bé", 1), "é xé"), ["é"]);
        assert_eq!(tokens(&exp(r"\Bb", 1), "ab b éb"), ["b"]);
        assert_eq!(tokens(&exp(r"[[:alpha:]]+", 1), "héllo"), ["h", "llo"]);
        // Case folding reaches ſ and the Kelvin sign, as in RE2.
        assert_eq!(tokens(&exp(r"(?i)\w+", 1), "wörld ſK"), ["w", "rld", "ſK"]);
        assert_eq!(
            tokens(&exp(r"\pL+", 1), "héllo 東京 😀 x"),
            ["héllo", "東京", "x"]
        );
    }

    #[test]
    fn short_matches_restart_one_character_later() {
        assert_eq!(tokens(&exp("[a-z]+", 3), "ab cde"), ["cde"]);
        assert_eq!(
            tokens(&exp(r"[\pL]+|\d+", 2), "x1 y22 z333 a.b axb"),
            ["22", "333", "axb"]
        );
    }

    #[test]
    fn separators_split_in_turn() {
        let seps = |s: &[&str], min: i64| {
            Tokenizer::new(
                false,
                "#".into(),
                min,
                Some(s.iter().map(|x| (*x).to_owned()).collect()),
                None,
            )
            .unwrap()
        };
        assert_eq!(tokens(&seps(&[",", ";"], 1), "a,b;;c d"), ["a", "b", "c d"]);
        assert_eq!(tokens(&seps(&[" "], 1), " a  b "), ["a", "b"]);
        assert_eq!(tokens(&seps(&["[.]"], 1), "a..b"), ["a", "b"]);
        assert_eq!(tokens(&seps(&[", ", ","], 2), "abc, de,f"), ["abc", "de"]);
        // One empty separator: characters.
        assert_eq!(tokens(&seps(&[""], 1), "hé!"), ["h", "é", "!"]);
    }

    #[test]
    fn batch_shape_marks_and_padding() {
        let t = Tokenizer::new(true, "#".into(), 1, None, Some("[a-z]+".into())).unwrap();
        let input = vec!["ab cd".to_owned(), "x".to_owned()];
        let out = t.tokenize(&[2, 1], &input).unwrap();
        assert_eq!(out.shape, [2, 1, 4]);
        assert_eq!(
            out.values,
            ["\u{2}", "ab", "cd", "\u{3}", "\u{2}", "x", "\u{3}", "#"]
        );
        // No tokens anywhere: a zero-width token axis, no marks.
        let out = t.tokenize(&[2], &["1".to_owned(), String::new()]).unwrap();
        assert_eq!(out.shape, [2, 0]);
        assert!(out.values.is_empty());
        assert!(t.tokenize(&[1, 1, 1], &["a".to_owned()]).is_err());
    }

    #[test]
    fn dot_is_characters_newlines_included() {
        let t = exp(".", 1);
        assert_eq!(tokens(&t, "a\nb"), ["a", "\n", "b"]);
        let err = Tokenizer::new(false, "#".into(), 2, None, Some(".".into())).unwrap_err();
        assert!(err.contains("mincharnum"), "{err}");
    }

    #[test]
    fn translation() {
        assert_eq!(translate_re2(r"\w+").unwrap(), "[0-9A-Za-z_]+");
        assert_eq!(translate_re2(r"[\w-]").unwrap(), "[0-9A-Za-z_-]");
        assert_eq!(translate_re2(r"\Qa.b\E+").unwrap(), r"a\x{2E}b+");
        assert_eq!(translate_re2(r"a{,3}").unwrap(), r"a\{,3\}");
        assert_eq!(translate_re2(r"a{2,}b{1,3}").unwrap(), "a{2,}b{1,3}");
        assert_eq!(translate_re2(r"[[a]").unwrap(), r"[\[a]");
        assert_eq!(translate_re2(r"[]a&&b]").unwrap(), r"[\]a\&\&b]");
        assert_eq!(translate_re2(r"\101\0").unwrap(), r"\x{41}\x{0}");
        assert_eq!(translate_re2(r"\p{^Greek}\pL").unwrap(), r"\P{Greek}\pL");
        assert_eq!(translate_re2(r"(?i:x)(?P<n>y)").unwrap(), "(?i:x)(?P<n>y)");
        assert_eq!(translate_re2(r"\<").unwrap(), r"\x{3C}");
        // What RE2 refuses.
        for bad in [
            r"(?u)\b\w\w+\b",
            r"(?x)a",
            r"(?=a)",
            r"\C",
            r"(a)\1",
            r"\e",
            r"[a",
            "a\\",
        ] {
            let err = translate_re2(bad).unwrap_err();
            assert!(err.contains("RE2"), "{bad}: {err}");
        }
        let err = Re2::new(r"(?u)\b\w\w+\b").unwrap_err();
        assert!(err.contains("(?u"), "{err}");
    }

    #[test]
    fn bad_attributes_are_errors() {
        let t = |seps: Option<Vec<String>>, exp: Option<&str>, min: i64| {
            Tokenizer::new(false, "#".into(), min, seps, exp.map(str::to_owned))
        };
        assert!(t(None, None, 1).unwrap_err().contains("neither"));
        assert!(t(Some(vec![]), None, 1).unwrap_err().contains("empty"));
        assert!(t(None, Some(""), 1).unwrap_err().contains("empty"));
        assert!(t(None, Some("a"), 0).unwrap_err().contains("positive"));
        assert!(t(None, Some("(a"), 1).is_err());
    }
}
