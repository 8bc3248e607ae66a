//! A small recursive-descent parser with byte offsets in every error.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Str(String),
    Bool(bool),
    /// `metrics.accuracy`, `params.model.C`: a root and a dotted path.
    Path(Vec<String>),
    /// `model("iris@production").metrics.accuracy`
    Model {
        reference: String,
        path: Vec<String>,
    },
    /// `abs(x)`, `min(a, b)`, `max(a, b)`
    Call {
        func: String,
        args: Vec<Expr>,
    },
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Ge => ">=",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Lt => "<",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        })
    }
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        })
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Num(n) => write!(f, "{n}"),
            Expr::Str(s) => write!(f, "{s:?}"),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Path(p) => f.write_str(&p.join(".")),
            Expr::Model { reference, path } => {
                write!(f, "model({reference:?})")?;
                for p in path {
                    write!(f, ".{p}")?;
                }
                Ok(())
            }
            Expr::Call { func, args } => {
                write!(f, "{func}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::Bin(op, a, b) => write!(f, "{a} {op} {b}"),
            Expr::Cmp(op, a, b) => write!(f, "{a} {op} {b}"),
            Expr::And(a, b) => write!(f, "{a} and {b}"),
            Expr::Or(a, b) => write!(f, "({a} or {b})"),
        }
    }
}

impl Expr {
    /// Every dotted path the expression reads, e.g. `["params", "model", "C"]`.
    pub fn paths(&self) -> Vec<&[String]> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Path(p) = e {
                out.push(p.as_slice());
            }
        });
        out
    }

    /// Every `model("…")` reference in the expression.
    pub fn model_refs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Model { reference, .. } = e {
                out.push(reference.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Neg(e) | Expr::Not(e) => e.walk(f),
            Expr::Bin(_, a, b) | Expr::Cmp(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| a.walk(f)),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// Byte offset into the expression where the problem is.
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
    End,
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text = &src[start..i];
            let n = text.parse::<f64>().map_err(|_| ParseError {
                offset: start,
                message: format!("invalid number `{text}`"),
            })?;
            out.push((start, Tok::Num(n)));
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Ident(src[start..i].to_owned())));
            continue;
        }
        if c == b'"' || c == b'\'' {
            i += 1;
            while i < b.len() && b[i] != c {
                i += 1;
            }
            if i >= b.len() {
                return Err(ParseError {
                    offset: start,
                    message: "unterminated string".into(),
                });
            }
            out.push((start, Tok::Str(src[start + 1..i].to_owned())));
            i += 1;
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let op: Option<&'static str> = match two {
            ">=" => Some(">="),
            "<=" => Some("<="),
            "==" => Some("=="),
            "!=" => Some("!="),
            "&&" => Some("and"),
            "||" => Some("or"),
            _ => None,
        };
        if let Some(op) = op {
            out.push((start, Tok::Op(op)));
            i += 2;
            continue;
        }
        let tok = match c {
            b'>' => Tok::Op(">"),
            b'<' => Tok::Op("<"),
            b'+' => Tok::Op("+"),
            b'-' => Tok::Op("-"),
            b'*' => Tok::Op("*"),
            b'/' => Tok::Op("/"),
            b'!' => Tok::Op("not"),
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            b'.' => Tok::Dot,
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(ParseError {
                    offset: start,
                    message: format!("unexpected character `{ch}`"),
                });
            }
        };
        out.push((start, tok));
        i += 1;
    }
    out.push((src.len(), Tok::End));
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
}

/// Parses a gate expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        toks: lex(src)?,
        pos: 0,
    };
    let e = p.or()?;
    match p.peek() {
        Tok::End => Ok(e),
        t => Err(p.err(format!("unexpected {} after the expression", describe(t)))),
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("number `{n}`"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::End => "end of expression".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].1
    }
    fn offset(&self) -> usize {
        self.toks[self.pos].0
    }
    fn bump(&mut self) -> Tok {
        let t = self.toks[self.pos].1.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn err(&self, message: String) -> ParseError {
        ParseError {
            offset: self.offset(),
            message,
        }
    }
    fn eat_op(&mut self, ops: &[&'static str]) -> Option<&'static str> {
        let found = match self.peek() {
            Tok::Op(o) if ops.contains(o) => Some(*o),
            Tok::Ident(w) if ops.contains(&w.as_str()) => ops.iter().copied().find(|o| o == w),
            _ => None,
        };
        if found.is_some() {
            self.bump();
        }
        found
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<(), ParseError> {
        if *self.peek() == want {
            self.bump();
            Ok(())
        } else {
            Err(self.err(format!("expected {what}, found {}", describe(self.peek()))))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.eat_op(&["or"]).is_some() {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.not()?;
        while self.eat_op(&["and"]).is_some() {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }
    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat_op(&["not"]).is_some() {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, ParseError> {
        let a = self.sum()?;
        let op = match self.eat_op(&[">=", "<=", "==", "!=", ">", "<"]) {
            Some(">=") => CmpOp::Ge,
            Some("<=") => CmpOp::Le,
            Some("==") => CmpOp::Eq,
            Some("!=") => CmpOp::Ne,
            Some(">") => CmpOp::Gt,
            Some("<") => CmpOp::Lt,
            _ => return Ok(a),
        };
        let b = self.sum()?;
        if matches!(self.peek(), Tok::Op(o) if [">=", "<=", "==", "!=", ">", "<"].contains(o)) {
            return Err(self.err("comparisons do not chain; join them with `and`".into()));
        }
        Ok(Expr::Cmp(op, Box::new(a), Box::new(b)))
    }
    fn sum(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.prod()?;
        while let Some(op) = self.eat_op(&["+", "-"]) {
            let op = if op == "+" { BinOp::Add } else { BinOp::Sub };
            e = Expr::Bin(op, Box::new(e), Box::new(self.prod()?));
        }
        Ok(e)
    }
    fn prod(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while let Some(op) = self.eat_op(&["*", "/"]) {
            let op = if op == "*" { BinOp::Mul } else { BinOp::Div };
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }
    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_op(&["-"]).is_some() {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }
    fn dotted_tail(&mut self) -> Result<Vec<String>, ParseError> {
        let mut path = Vec::new();
        while *self.peek() == Tok::Dot {
            self.bump();
            match self.bump() {
                Tok::Ident(s) => path.push(s),
                Tok::Num(n) if n.fract() == 0.0 => path.push(format!("{n}")),
                t => {
                    self.pos -= 1;
                    return Err(
                        self.err(format!("expected a name after `.`, found {}", describe(&t)))
                    );
                }
            }
        }
        Ok(path)
    }
    fn primary(&mut self) -> Result<Expr, ParseError> {
        let start = self.offset();
        match self.bump() {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            Tok::Ident(id) if id == "true" => Ok(Expr::Bool(true)),
            Tok::Ident(id) if id == "false" => Ok(Expr::Bool(false)),
            Tok::Ident(id) if *self.peek() == Tok::LParen => {
                self.bump();
                let mut args = Vec::new();
                if *self.peek() != Tok::RParen {
                    loop {
                        args.push(self.or()?);
                        if *self.peek() == Tok::Comma {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                self.expect(Tok::RParen, "`)`")?;
                match (id.as_str(), args.as_slice()) {
                    ("model", [Expr::Str(r)]) => {
                        let reference = r.clone();
                        let path = self.dotted_tail()?;
                        if path.is_empty() {
                            return Err(ParseError {
                                offset: start,
                                message: format!(
                                    "`model({reference:?})` needs a value, e.g. `model({reference:?}).metrics.accuracy`"
                                ),
                            });
                        }
                        Ok(Expr::Model { reference, path })
                    }
                    ("model", _) => Err(ParseError {
                        offset: start,
                        message: "`model` takes one string, e.g. `model(\"iris@production\")`"
                            .into(),
                    }),
                    ("abs", [_]) | ("min", [_, _, ..]) | ("max", [_, _, ..]) => {
                        Ok(Expr::Call { func: id, args })
                    }
                    ("abs" | "min" | "max", _) => Err(ParseError {
                        offset: start,
                        message: format!("wrong number of arguments to `{id}`"),
                    }),
                    _ => Err(ParseError {
                        offset: start,
                        message: format!("unknown function `{id}`; known: model, abs, min, max"),
                    }),
                }
            }
            Tok::Ident(id) => {
                let mut path = vec![id];
                path.extend(self.dotted_tail()?);
                Ok(Expr::Path(path))
            }
            t => {
                self.pos = self.pos.saturating_sub(usize::from(t != Tok::End));
                Err(ParseError {
                    offset: start,
                    message: format!("expected a value, found {}", describe(&t)),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let e = parse("metrics.accuracy >= 0.9").unwrap();
        assert_eq!(e.to_string(), "metrics.accuracy >= 0.9");
        let e = parse(r#"metrics.accuracy >= model("iris@production").metrics.accuracy - 0.01"#)
            .unwrap();
        assert_eq!(e.model_refs(), vec!["iris@production"]);
        assert_eq!(e.paths().len(), 1);
        let e = parse("metrics.a > 1 && (params.x.y == 'b' || !true)").unwrap();
        assert_eq!(e.paths().len(), 2);
        assert_eq!(parse("1.5e-3 < 2").unwrap().to_string(), "0.0015 < 2");
    }

    #[test]
    fn errors_carry_offsets() {
        let e = parse("metrics.accuracy >= ").unwrap_err();
        assert_eq!(e.offset, 20);
        assert!(e.message.contains("expected a value"), "{e}");
        let e = parse("metrics.a >= 1 >= 2").unwrap_err();
        assert!(e.message.contains("chain"), "{e}");
        let e = parse("foo(1)").unwrap_err();
        assert_eq!(e.offset, 0);
        let e = parse("model(\"x\")").unwrap_err();
        assert!(e.message.contains("needs a value"));
        let e = parse("a # b").unwrap_err();
        assert_eq!(e.offset, 2);
        let e = parse("(a > 1").unwrap_err();
        assert!(e.message.contains("`)`"), "{e}");
    }
}
