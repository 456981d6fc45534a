//! label_replace() and label_join(): the label sets they make, bounded (each value at most
//! 16 KiB, built piece by piece so an oversized one is refused before it exists) and charged
//! to the query's sample budget.

use crate::error::Error;
use crate::eval::{Ctx, RS};
use crate::functions::merge_same_labels;
use crate::value::Labels;

/// Whether `name` is a label name Prometheus accepts: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `labels` with `name` set to `value`, or removed when `value` is empty; stays sorted.
pub(crate) fn set_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut out: Labels = labels.iter().filter(|(n, _)| n != name).cloned().collect();
    if !value.is_empty() {
        let at = out.partition_point(|(n, _)| n.as_str() < name);
        out.insert(at, (name.to_string(), value.to_string()));
    }
    out
}

/// The longest label value label_replace() and label_join() may produce.
pub(crate) const MAX_LABEL_VALUE_BYTES: usize = 16 * 1024;

/// Label bytes counted as one sample against the query's budget (a sample is 16 bytes).
const LABEL_BYTES_PER_SAMPLE: usize = 16;

pub(crate) fn too_long(func: &str) -> Error {
    Error::bad_data(format!(
        "{func}(): the produced label value is longer than {MAX_LABEL_VALUE_BYTES} bytes"
    ))
}

/// A label_replace() replacement cut before each `$` reference (a `$$` escape stays whole),
/// so the pieces expand to the same text one after another as the whole does.
pub(crate) fn replacement_pieces(repl: &str) -> Vec<&str> {
    let bytes = repl.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if i > start {
                pieces.push(&repl[start..i]);
                start = i;
            }
            if bytes.get(i + 1) == Some(&b'$') {
                i += 1;
            }
        }
        i += 1;
    }
    pieces.push(&repl[start..]);
    pieces
}

impl Ctx<'_> {
    /// Relabels every series with `f`, charging the new label sets' bytes to the budget, and
    /// merges series that came to have the same labels.
    pub(crate) fn merge_relabelled(
        &self,
        v: Vec<RS>,
        f: impl Fn(&Labels) -> Result<Labels, Error>,
    ) -> Result<Vec<RS>, Error> {
        let mut out = Vec::with_capacity(v.len());
        for s in v {
            self.check_time()?;
            let labels = f(&s.labels)?;
            let bytes: usize = labels.iter().map(|(n, v)| n.len() + v.len()).sum();
            self.charge(bytes.div_ceil(LABEL_BYTES_PER_SAMPLE))?;
            out.push(RS {
                labels,
                vals: s.vals,
            });
        }
        merge_same_labels(out)
    }
}
