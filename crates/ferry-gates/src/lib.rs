//! Gate expressions: `metrics.accuracy >= 0.9`,
//! `metrics.f1 >= model("iris@production").metrics.f1 - 0.01`.
//!
//! Pure: parsing and evaluation take every value from a [`Context`]. A
//! reference to a model that does not exist yet evaluates to *absent*, and a
//! comparison with an absent value passes (a first model has nothing to beat).

mod eval;
mod parse;

pub use eval::{Comparison, Context, Evaluation, Lookup, Value};
pub use parse::{BinOp, CmpOp, Expr, ParseError, parse};
