//! Keyset pagination shared by every list: `{"items": [...], "next": <cursor or null>}`.

use serde::Serialize;

/// Largest page a caller may ask for.
pub const MAX_LIMIT: i64 = 1000;
/// Page size when the caller names none.
pub const DEFAULT_LIMIT: i64 = 50;

/// One page of a list and the cursor of the next, if there is more.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Where a list starts and how many rows it returns.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    /// The opaque cursor a previous page returned as `next`.
    pub after: Option<String>,
    /// Rows wanted; clamped to `1..=MAX_LIMIT`, `DEFAULT_LIMIT` when absent.
    pub limit: Option<i64>,
}

impl Cursor {
    /// The clamped limit.
    pub fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    /// The cursor as a numeric id (lists keyed by autoincrement ids). A cursor that is not one
    /// is refused ([`crate::StoreError::BadCursor`]) rather than silently starting over, which
    /// made a client that mangled `next` loop over the first page forever.
    pub fn after_i64(&self) -> crate::Result<Option<i64>> {
        match self.after.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| crate::StoreError::BadCursor(s.chars().take(64).collect())),
        }
    }

    /// The cursor as a lowercase hex id (lists keyed by random hex ids); anything else is
    /// refused like [`Cursor::after_i64`].
    pub fn after_hex(&self) -> crate::Result<Option<&str>> {
        match self.after.as_deref() {
            None | Some("") => Ok(None),
            Some(s)
                if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(Some(s))
            }
            Some(s) => Err(crate::StoreError::BadCursor(s.chars().take(64).collect())),
        }
    }
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only proves there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(key)
        } else {
            None
        };
        Page { items: rows, next }
    }

    /// Builds a page from `limit + 1` fetched rows, converting each with `convert`.
    pub fn try_from_rows<R, E>(
        rows: &[R],
        limit: i64,
        convert: impl Fn(&R) -> Result<T, E>,
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, E> {
        let items = rows.iter().map(convert).collect::<Result<Vec<_>, E>>()?;
        Ok(Page::from_rows(items, limit, key))
    }

    /// Converts the items, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next: self.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_row_yields_a_cursor_and_is_dropped() {
        let p = Page::from_rows(vec![1, 2, 3], 2, |x| x.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next.as_deref(), Some("2"));
        let last = Page::from_rows(vec![1, 2], 2, |x| x.to_string());
        assert_eq!(last.next, None);
        assert_eq!(
            Cursor {
                after: None,
                limit: Some(5000)
            }
            .limit(),
            1000
        );
        assert_eq!(Cursor::default().limit(), 50);
    }
}
