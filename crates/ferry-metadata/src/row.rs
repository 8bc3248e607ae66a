//! Reading rows: the `col_*` readers (lenient: a missing or NULL column
//! reads as its type's default, NaN for a float, `None` for the `opt`
//! ones), experiment ids checked once as they come out of a row, rows
//! aggregated into one JSON text ([`json_of`]), and [`query_error`], the
//! one way a driver's failure becomes the store's [`Error`]. Every other
//! module of the crate reads rows through here; this one uses none of them.

use crate::{Error, Result};
use ferry_core::ExperimentId;
use sqlx::Row;
use sqlx::any::AnyRow;

/// The store's error for a failed statement, saying what it was for.
pub(crate) fn query_error(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Query {
        what,
        source: crate::BackendError::new(source),
    }
}

pub(crate) fn col_str(r: &AnyRow, c: &str) -> String {
    r.try_get::<String, _>(c).unwrap_or_default()
}
pub(crate) fn col_opt_str(r: &AnyRow, c: &str) -> Option<String> {
    r.try_get::<Option<String>, _>(c).ok().flatten()
}
pub(crate) fn col_i64(r: &AnyRow, c: &str) -> i64 {
    r.try_get::<i64, _>(c).unwrap_or_default()
}
pub(crate) fn col_opt_i64(r: &AnyRow, c: &str) -> Option<i64> {
    r.try_get::<Option<i64>, _>(c).ok().flatten()
}
pub(crate) fn col_f64(r: &AnyRow, c: &str) -> f64 {
    r.try_get::<f64, _>(c).unwrap_or(f64::NAN)
}
pub(crate) fn col_opt_f64(r: &AnyRow, c: &str) -> Option<f64> {
    r.try_get::<Option<f64>, _>(c).ok().flatten()
}
/// A stage's cost columns (`cost_*`), `None` for a stage never priced.
pub(crate) fn col_stage_cost(r: &AnyRow) -> Option<ferry_cost::StageCost> {
    Some(ferry_cost::StageCost {
        charged: col_opt_f64(r, "cost_usd")?,
        basis: ferry_cost::Basis::parse(&col_opt_str(r, "cost_basis")?)?,
        requested: col_opt_f64(r, "cost_requested_usd"),
        used: col_opt_f64(r, "cost_used_usd").unwrap_or(0.0),
        machine: col_opt_str(r, "cost_machine").unwrap_or_default(),
    })
}
/// An experiment id column, `None` when NULL. Ids are made here and never
/// negative, so a negative one is a damaged row.
pub(crate) fn col_opt_experiment_id(r: &AnyRow, c: &str) -> Result<Option<ExperimentId>> {
    col_opt_i64(r, c)
        .map(|id| {
            ExperimentId::new(id).ok_or_else(|| {
                Error::Invalid(format!("damaged row in the store: experiment id {id}"))
            })
        })
        .transpose()
}
/// An experiment id column that is never NULL.
pub(crate) fn col_experiment_id(r: &AnyRow, c: &str) -> Result<ExperimentId> {
    col_opt_experiment_id(r, c)?
        .ok_or_else(|| Error::Invalid(format!("damaged row in the store: no `{c}`")))
}

/// The rows of a [`crate::sql::json_rows`] query.
pub(crate) fn json_of<T: serde::de::DeserializeOwned>(row: &AnyRow) -> Result<T> {
    serde_json::from_str(&col_str(row, "j"))
        .map_err(|e| Error::Invalid(format!("damaged rows in the store: {e}")))
}
