//! Reading result rows by column name.
//!
//! Every read of a row names its column (`r.try_get("paused")`), never a position kept in step
//! with a hand-written column list (the few one- and two-column `query_as` tuples, such as
//! migration versions and PRAGMA answers, are typed by their SQL right beside them): a reordered or extended SELECT then fails loudly with
//! "no column found for name: …" instead of quietly reading a neighbour of the same type.
//! Expressions in a SELECT list (`COUNT(*)`, `COALESCE(…)`, `CASE …`) carry lowercase
//! `AS snake_case` aliases, because PostgreSQL folds unquoted aliases to lower case while SQLite
//! keeps them as written, and unaliased expressions are named differently by the two backends.
//!
//! Plain values are read with sqlx's own [`Row::try_get`] by name; its errors already name the
//! column (`no column found for name: paused`, `error occurred while decoding column "paused"`).
//! [`RowExt`] adds the conversions the schema repeats: integers used as booleans (both backends
//! store flags as `0`/`1` so one statement serves both) and JSON documents kept as text.
//!
//! Written by hand rather than with sqlx's `FromRow` derive: the derive pulls in `sqlx-macros`,
//! which compiles the whole driver stack a second time for the proc-macro host, and the rows here
//! are few and small enough that a line per field is clearer than an attribute per field.

use serde::de::DeserializeOwned;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Result, StoreError};

/// Named reads with the conversions the schema repeats; every error names the column.
pub trait RowExt {
    /// An integer column used as a boolean (`0` false, anything else true); NULL is an error.
    fn flag(&self, col: &str) -> Result<bool>;

    /// A nullable integer column used as a boolean, or a column of an outer join that may be
    /// missing (`None` when NULL).
    fn opt_flag(&self, col: &str) -> Result<Option<bool>>;

    /// A JSON document kept as text; text that does not parse is [`StoreError::Corrupt`] naming
    /// the column.
    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T>;

    /// A nullable JSON document kept as text (`None` when NULL); text that does not parse is
    /// [`StoreError::Corrupt`] naming the column.
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>>;
}

impl RowExt for AnyRow {
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(Row::try_get::<i64, _>(self, col)? != 0)
    }

    fn opt_flag(&self, col: &str) -> Result<Option<bool>> {
        Ok(Row::try_get::<Option<i64>, _>(self, col)?.map(|v| v != 0))
    }

    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T> {
        let text: &str = Row::try_get(self, col)?;
        parse_json(col, text)
    }

    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        Row::try_get::<Option<&str>, _>(self, col)?
            .map(|text| parse_json(col, text))
            .transpose()
    }
}

fn parse_json<T: DeserializeOwned>(col: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}
