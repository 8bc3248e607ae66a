//! Evaluation against a [`Context`], recording every comparison made so a
//! failed gate can show the actual and the required values.

use crate::parse::{BinOp, CmpOp, Expr};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Bool(bool),
    Str(String),
    /// From a model reference that resolves to no model yet.
    Absent(String),
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Num(n) => fmt_num(*n),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => format!("{s:?}"),
            Value::Absent(why) => format!("<{why}>"),
        }
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        let s = format!("{n:.6}");
        s.trim_end_matches('0').to_owned()
    }
}

/// What a path resolves to.
pub enum Lookup {
    Found(Value),
    /// The path is not defined; the string says what is known instead.
    Missing(String),
}

/// Where values come from. `path` is the dotted path as written, with its root
/// (`metrics`, `params`, …) first.
pub trait Context {
    fn lookup(&self, path: &[String]) -> Lookup;
    /// Values of the model version `reference` names (`name@alias`,
    /// `name/3`): `Ok(None)` when no such version exists yet.
    fn model(&self, reference: &str, path: &[String]) -> Result<Option<Lookup>, String>;
}

/// One comparison made while evaluating, with the values it saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub left: String,
    pub op: CmpOp,
    pub right: String,
    pub left_value: Value,
    pub right_value: Value,
    pub passed: bool,
    /// Passed only because one side had no model to compare with.
    pub vacuous: bool,
}

impl Comparison {
    /// Why one side had nothing to compare with, if it had not.
    fn absent(&self) -> Option<String> {
        [&self.left_value, &self.right_value]
            .into_iter()
            .find_map(|v| match v {
                Value::Absent(why) => Some(why.clone()),
                _ => None,
            })
    }

    pub fn describe(&self) -> String {
        let v = format!(
            "{} {} {}",
            self.left_value.render(),
            self.op,
            self.right_value.render()
        );
        if self.vacuous {
            format!("{} {} {}: skipped ({v})", self.left, self.op, self.right)
        } else {
            format!("{} {} {}: {v}", self.left, self.op, self.right)
        }
    }
}

/// The result of evaluating one gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub passed: bool,
    pub comparisons: Vec<Comparison>,
    /// Set when the expression could not be evaluated (an undefined metric);
    /// such a gate fails.
    pub error: Option<String>,
    /// Set when no comparison was possible (no model to compare with, or a
    /// model without the value): why. Such a gate neither passes nor fails;
    /// it does not hold back registration.
    pub skipped: Option<String>,
}

impl Evaluation {
    /// One line for humans: the values behind the verdict.
    pub fn message(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        if let Some(why) = &self.skipped {
            return format!("skipped: {why}");
        }
        self.comparisons
            .iter()
            .map(Comparison::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Expr {
    pub fn evaluate(&self, ctx: &dyn Context) -> Evaluation {
        let mut comparisons = Vec::new();
        match eval(self, ctx, &mut comparisons) {
            Ok(Value::Bool(b)) => {
                // Every comparison made had nothing to compare with.
                let skipped =
                    (b && !comparisons.is_empty() && comparisons.iter().all(|c| c.vacuous))
                        .then(|| comparisons.iter().find_map(Comparison::absent))
                        .flatten();
                Evaluation {
                    passed: b,
                    comparisons,
                    error: None,
                    skipped,
                }
            }
            Ok(Value::Absent(why)) => Evaluation {
                passed: true,
                comparisons,
                error: None,
                skipped: Some(why),
            },
            Ok(v) => Evaluation {
                passed: false,
                comparisons,
                error: Some(format!(
                    "gate `{self}` gives {} where true or false is needed",
                    v.render()
                )),
                skipped: None,
            },
            Err(e) => Evaluation {
                passed: false,
                comparisons,
                error: Some(e),
                skipped: None,
            },
        }
    }
}

fn num(v: &Value, what: &Expr) -> Result<Option<f64>, String> {
    match v {
        Value::Num(n) => Ok(Some(*n)),
        Value::Bool(b) => Ok(Some(f64::from(u8::from(*b)))),
        Value::Absent(_) => Ok(None),
        Value::Str(s) => Err(format!("`{what}` is the string {s:?}, not a number")),
    }
}

fn eval(e: &Expr, ctx: &dyn Context, cmps: &mut Vec<Comparison>) -> Result<Value, String> {
    Ok(match e {
        Expr::Num(n) => Value::Num(*n),
        Expr::Str(s) => Value::Str(s.clone()),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Path(p) => match ctx.lookup(p) {
            Lookup::Found(v) => v,
            Lookup::Missing(why) => return Err(format!("`{}` is not defined: {why}", p.join("."))),
        },
        Expr::Model { reference, path } => match ctx.model(reference, path)? {
            None => Value::Absent(format!("no model {reference}")),
            Some(Lookup::Found(v)) => v,
            Some(Lookup::Missing(why)) => {
                return Err(format!(
                    "`model({reference:?}).{}` is not defined: {why}",
                    path.join(".")
                ));
            }
        },
        Expr::Call { func, args } => {
            let mut ns = Vec::with_capacity(args.len());
            for a in args {
                match eval(a, ctx, cmps)? {
                    Value::Absent(why) => return Ok(Value::Absent(why)),
                    v => ns.push(num(&v, a)?.unwrap_or_default()),
                }
            }
            Value::Num(match func.as_str() {
                "abs" => ns[0].abs(),
                "min" => ns.iter().copied().fold(f64::INFINITY, f64::min),
                _ => ns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            })
        }
        Expr::Neg(a) => match eval(a, ctx, cmps)? {
            Value::Absent(why) => Value::Absent(why),
            v => Value::Num(-num(&v, a)?.unwrap_or_default()),
        },
        Expr::Not(a) => match eval(a, ctx, cmps)? {
            Value::Bool(b) => Value::Bool(!b),
            Value::Absent(w) => Value::Absent(w),
            v => {
                return Err(format!(
                    "`not` needs true or false, `{a}` is {}",
                    v.render()
                ));
            }
        },
        Expr::Bin(op, a, b) => {
            let (va, vb) = (eval(a, ctx, cmps)?, eval(b, ctx, cmps)?);
            match (num(&va, a)?, num(&vb, b)?) {
                (Some(x), Some(y)) => Value::Num(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                }),
                _ => match (va, vb) {
                    (Value::Absent(why), _) | (_, Value::Absent(why)) => Value::Absent(why),
                    _ => Value::Absent("no model".into()),
                },
            }
        }
        Expr::Cmp(op, a, b) => {
            let (va, vb) = (eval(a, ctx, cmps)?, eval(b, ctx, cmps)?);
            let (passed, vacuous) = compare(*op, &va, &vb, a, b)?;
            cmps.push(Comparison {
                left: a.to_string(),
                op: *op,
                right: b.to_string(),
                left_value: va,
                right_value: vb,
                passed,
                vacuous,
            });
            Value::Bool(passed)
        }
        Expr::And(a, b) => {
            Value::Bool(truthy(eval(a, ctx, cmps)?, a)? & truthy(eval(b, ctx, cmps)?, b)?)
        }
        Expr::Or(a, b) => {
            Value::Bool(truthy(eval(a, ctx, cmps)?, a)? | truthy(eval(b, ctx, cmps)?, b)?)
        }
    })
}

fn truthy(v: Value, e: &Expr) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Absent(_) => Ok(true),
        v => Err(format!("`{e}` is {}, not true or false", v.render())),
    }
}

fn compare(op: CmpOp, a: &Value, b: &Value, ea: &Expr, eb: &Expr) -> Result<(bool, bool), String> {
    if matches!(a, Value::Absent(_)) || matches!(b, Value::Absent(_)) {
        return Ok((true, true));
    }
    if let (Value::Str(x), Value::Str(y)) = (a, b) {
        return match op {
            CmpOp::Eq => Ok((x == y, false)),
            CmpOp::Ne => Ok((x != y, false)),
            _ => Err(format!(
                "`{op}` compares numbers; `{ea}` and `{eb}` are strings"
            )),
        };
    }
    let (Some(x), Some(y)) = (num(a, ea)?, num(b, eb)?) else {
        return Ok((true, true));
    };
    let r = match op {
        CmpOp::Ge => x >= y,
        CmpOp::Gt => x > y,
        CmpOp::Le => x <= y,
        CmpOp::Lt => x < y,
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
    };
    Ok((r, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use std::collections::HashMap;

    struct Ctx {
        values: HashMap<String, f64>,
        prod: Option<f64>,
    }

    impl Context for Ctx {
        fn lookup(&self, path: &[String]) -> Lookup {
            match self.values.get(&path.join(".")) {
                Some(v) => Lookup::Found(Value::Num(*v)),
                None => Lookup::Missing("the stage wrote no such metric".into()),
            }
        }
        fn model(&self, _r: &str, _p: &[String]) -> Result<Option<Lookup>, String> {
            Ok(self.prod.map(|v| Lookup::Found(Value::Num(v))))
        }
    }

    fn ctx(acc: f64, prod: Option<f64>) -> Ctx {
        Ctx {
            values: HashMap::from([("metrics.accuracy".to_owned(), acc)]),
            prod,
        }
    }

    #[test]
    fn threshold_pass_and_fail_show_values() {
        let g = parse("metrics.accuracy >= 0.9").unwrap();
        let ok = g.evaluate(&ctx(0.95, None));
        assert!(ok.passed);
        let bad = g.evaluate(&ctx(0.5, None));
        assert!(!bad.passed);
        assert_eq!(bad.message(), "metrics.accuracy >= 0.9: 0.5 >= 0.9");
    }

    #[test]
    fn comparison_with_production_model() {
        let g = parse(r#"metrics.accuracy >= model("iris@production").metrics.accuracy - 0.01"#)
            .unwrap();
        assert!(g.evaluate(&ctx(0.95, Some(0.955))).passed);
        let bad = g.evaluate(&ctx(0.90, Some(0.96)));
        assert!(!bad.passed);
        assert!(bad.message().contains("0.9 >= 0.95"), "{}", bad.message());
        // No production model yet: the gate passes and says it was skipped.
        let first = g.evaluate(&ctx(0.5, None));
        assert!(first.passed);
        assert!(first.comparisons[0].vacuous);
        assert_eq!(first.skipped.as_deref(), Some("no model iris@production"));
        assert_eq!(first.message(), "skipped: no model iris@production");
    }

    /// A model that exists but has no such value: no comparison is possible,
    /// and the reason survives arithmetic and functions around it.
    #[test]
    fn a_model_without_the_value_skips_the_gate() {
        struct NoMetric;
        impl Context for NoMetric {
            fn lookup(&self, _: &[String]) -> Lookup {
                Lookup::Found(Value::Num(0.5))
            }
            fn model(&self, r: &str, p: &[String]) -> Result<Option<Lookup>, String> {
                Ok(Some(Lookup::Found(Value::Absent(format!(
                    "{r} has no metric {}",
                    p[1..].join(".")
                )))))
            }
        }
        for src in [
            r#"metrics.accuracy >= model("iris@production").metrics.accuracy - 0.01"#,
            r#"metrics.accuracy >= max(0.1, -model("iris@production").metrics.accuracy)"#,
        ] {
            let r = parse(src).unwrap().evaluate(&NoMetric);
            assert!(r.passed, "{src}");
            assert_eq!(
                r.message(),
                "skipped: iris@production has no metric accuracy",
                "{src}"
            );
        }
        // A gate that also compares something real is judged on that.
        let r = parse(r#"metrics.accuracy >= 0.9 and metrics.accuracy >= model("iris@production").metrics.accuracy"#)
            .unwrap()
            .evaluate(&NoMetric);
        assert!(!r.passed);
        assert_eq!(r.skipped, None);
    }

    #[test]
    fn undefined_metric_fails_with_reason() {
        let g = parse("metrics.f1 > 0.5").unwrap();
        let r = g.evaluate(&ctx(1.0, None));
        assert!(!r.passed);
        assert!(r.message().contains("`metrics.f1` is not defined"));
    }

    #[test]
    fn non_boolean_gate_fails() {
        let r = parse("metrics.accuracy").unwrap().evaluate(&ctx(1.0, None));
        assert!(!r.passed);
        assert!(r.error.unwrap().contains("true or false"));
    }

    #[test]
    fn logic_and_functions() {
        let c = ctx(0.8, None);
        assert!(
            parse("abs(metrics.accuracy - 0.9) < 0.11 and not (1 > 2)")
                .unwrap()
                .evaluate(&c)
                .passed
        );
        assert!(
            !parse("max(metrics.accuracy, 0.5) > 0.9 or false")
                .unwrap()
                .evaluate(&c)
                .passed
        );
    }
}
