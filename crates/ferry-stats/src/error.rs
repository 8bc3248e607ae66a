//! Why a statistical function refused its input.

/// Why a statistical function refused its input.
///
/// Every variant names the argument (and the element, as `observed[3]` or
/// `table[1][2]`) that was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    #[error("`{input}` is empty")]
    Empty { input: &'static str },

    #[error("`{left}` has {left_len} values but `{right}` has {right_len}")]
    LengthMismatch {
        left: &'static str,
        left_len: usize,
        right: &'static str,
        right_len: usize,
    },

    #[error(
        "`{at}` is {value}, not a finite number\n  hint: drop NaN and null values before calling"
    )]
    NotFinite { at: String, value: f64 },

    #[error("`{at}` is {value}; it must not be negative")]
    Negative { at: String, value: f64 },

    #[error("`{at}` is {value}; it must be greater than 0")]
    NotPositive { at: String, value: f64 },

    #[error(
        "`{at}` is {value}; shares must be greater than 0\n  hint: give empty bins a small floor share (such as 1e-4) and renormalise before calling"
    )]
    NotPositiveShare { at: String, value: f64 },

    #[error("`{input}` sums to 0")]
    ZeroSum { input: &'static str },

    #[error(
        "`observed` sums to {observed} but `expected` sums to {expected}, a relative difference of {relative:e} (more than {tolerance:e})\n  hint: scale `expected` to the total of `observed`"
    )]
    SumMismatch {
        observed: f64,
        expected: f64,
        relative: f64,
        tolerance: f64,
    },

    #[error("`{input}` has {len} categories; the test needs at least 2")]
    TooFewCategories { input: &'static str, len: usize },

    #[error("`table[{row}]` has {len} columns but `table[0]` has {expected}")]
    RaggedTable {
        row: usize,
        len: usize,
        expected: usize,
    },

    #[error(
        "`table` {axis} {index} sums to 0, so its expected frequencies are 0\n  hint: drop empty rows and columns before calling"
    )]
    EmptyMargin { axis: &'static str, index: usize },

    #[error("`base` is {base}; it must be finite, greater than 0 and not 1")]
    InvalidBase { base: f64 },

    #[error("`{input}` is 0; a proportion needs at least one trial")]
    NoTrials { input: &'static str },

    #[error("`{successes}` is {count} but `{trials}` is {n}; successes cannot exceed trials")]
    SuccessesExceedTrials {
        successes: &'static str,
        count: u64,
        trials: &'static str,
        n: u64,
    },

    #[error("`df` is 0; the distribution needs at least 1 degree of freedom")]
    ZeroDegreesOfFreedom,

    #[error("`n` is 0; the distribution needs a sample size of at least 1")]
    ZeroSampleSize,

    #[error("`{input}` is NaN")]
    NaN { input: &'static str },

    #[error("`{input}` has one class only; telling classes apart needs both")]
    OneClass { input: &'static str },

    #[error("`{at}` is {value}; it must be a share between 0 and 1")]
    NotAShare { at: String, value: f64 },
}
