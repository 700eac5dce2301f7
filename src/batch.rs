//! The batch JSON text that `replica_sql::upsert_batch` reads, written cell by cell.
//!
//! A page of a copy becomes a few JSON texts of row arrays (`[[1,"a"],[2,"b"]]`), each at most
//! `max_bytes` long. `encode_rows` writes them from `Value`s; a source that knows its wire
//! format (PostgreSQL's binary values) writes its cells here directly instead, without a
//! `Value` and a `String` per cell and a `Vec` per row, which were most of a copy's
//! per-row CPU outside SQLite. Both paths write through the same cell functions
//! (`Value::write_json_cell` calls them), so the text is the same either way; the property
//! tests in `source::postgres::types` compare the two for every type's edge values.

use crate::source::{Affinity, Column};
use crate::value::{write_json_string, Value};

/// Batch texts under construction: rows are written into the current text and moved to the
/// next one when they would make it longer than `max_bytes` (a single longer row gets a text
/// of its own, as `encode_rows` always did).
pub struct BatchText {
    max_bytes: usize,
    done: Vec<String>,
    cur: String,
    /// Where the row being written starts in `cur` (at its separating comma, if any).
    row_start: usize,
    /// Cells written in the current row.
    cells: usize,
    rows: usize,
    /// Per column: whether its statement expression reads a blob (`cell_expr`). Empty: all do.
    blob_ok: Vec<bool>,
    misplaced: Option<usize>,
}

impl BatchText {
    /// Texts for rows of `columns`; a blob in a column whose replica expression would store it
    /// as JSON text is recorded (`misplaced`), not written differently.
    pub fn new(columns: &[Column], max_bytes: usize) -> Self {
        let blob_ok = columns.iter().map(|c| matches!(c.affinity, Affinity::Blob | Affinity::Any)).collect();
        BatchText { max_bytes, done: Vec::new(), cur: String::new(), row_start: 0, cells: 0, rows: 0, blob_ok, misplaced: None }
    }

    /// Texts for rows of any columns (keys of a delete, CDC rows checked elsewhere).
    pub fn untyped(max_bytes: usize) -> Self {
        BatchText::new(&[], max_bytes)
    }

    pub fn begin_row(&mut self) {
        self.row_start = self.cur.len();
        self.cur.push_str(if self.cur.is_empty() { "[[" } else { ",[" });
        self.cells = 0;
    }

    pub fn end_row(&mut self) {
        self.cur.push(']');
        self.rows += 1;
        // +1 for the text's closing bracket. A text's first row always stays in it.
        if self.row_start > 0 && self.cur.len() + 1 > self.max_bytes {
            let mut next = String::with_capacity(self.cur.capacity());
            next.push('[');
            next.push_str(&self.cur[self.row_start + 1..]);
            self.cur.truncate(self.row_start);
            self.cur.push(']');
            self.done.push(std::mem::replace(&mut self.cur, next));
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The first column (index) that received a blob its replica expression does not read as one.
    pub fn misplaced(&self) -> Option<usize> {
        self.misplaced
    }

    /// The texts, in row order; none for no rows.
    pub fn finish(mut self) -> Vec<String> {
        if !self.cur.is_empty() {
            self.cur.push(']');
            self.done.push(self.cur);
        }
        self.done
    }

    /// The buffer to write the next cell into, after its separator.
    fn cell(&mut self) -> &mut String {
        if self.cells > 0 {
            self.cur.push(',');
        }
        self.cells += 1;
        &mut self.cur
    }

    pub fn null(&mut self) {
        self.cell().push_str("null");
    }

    pub fn integer(&mut self, i: i64) {
        self.cell().push_str(itoa::Buffer::new().format(i));
    }

    pub fn unsigned(&mut self, u: u64) {
        self.cell().push_str(itoa::Buffer::new().format(u));
    }

    pub fn real(&mut self, f: f64) {
        push_real_cell(f, self.cell());
    }

    pub fn text(&mut self, s: &str) {
        write_json_string(s, self.cell());
    }

    /// A text cell whose characters `write` appends and which never need escaping in JSON
    /// (digits, signs, letters, `:`, `.`, `-`, `+`, spaces): dates, times, numbers as text.
    pub fn plain_text(&mut self, write: impl FnOnce(&mut String)) {
        let out = self.cell();
        out.push('"');
        let start = out.len();
        write(out);
        debug_assert!(!out[start..].bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20), "{}", &out[start..]);
        out.push('"');
    }

    pub fn blob(&mut self, b: &[u8]) {
        let column = self.cells;
        if self.misplaced.is_none() && !self.blob_ok.get(column).copied().unwrap_or(true) {
            self.misplaced = Some(column);
        }
        push_blob_cell(b, self.cell());
    }

    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Blob(b) => self.blob(b),
            v => v.write_json_cell(self.cell()),
        }
    }

    /// Whole rows of values.
    pub fn rows_of(&mut self, rows: &[Vec<Value>]) {
        for row in rows {
            self.begin_row();
            for v in row {
                self.value(v);
            }
            self.end_row();
        }
    }
}

/// A real as `cell_expr` reads it back: always marked as a real (a dot or an exponent), NaN
/// as NULL (SQLite has no NaN and stores NULL for it), ±Infinity as an overflowing literal,
/// which SQLite's JSON reader turns into ±Inf.
pub fn push_real_cell(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("null");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "9e999" } else { "-9e999" });
    } else {
        let start = out.len();
        // `{:?}` is the shortest text that reads back to the same double.
        let _ = std::fmt::Write::write_fmt(out, format_args!("{f:?}"));
        if !out[start..].contains(['.', 'e', 'E']) {
            out.push_str(".0");
        }
    }
}

/// Blobs as `{"x":"<hex>"}`, which `cell_expr` unhexes.
pub fn push_blob_cell(b: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(b.len() * 2 + 9);
    out.push_str("{\"x\":\"");
    for &byte in b {
        out.push(DIGITS[(byte >> 4) as usize] as char);
        out.push(DIGITS[(byte & 15) as usize] as char);
    }
    out.push_str("\"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica_sql::encode_rows;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Real),
            "(?s).{0,12}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(Value::Blob),
        ]
    }

    proptest! {
        /// Split anywhere by a small limit, the texts hold the rows in order, each text is
        /// valid JSON, and no text with more than one row exceeds the limit.
        #[test]
        fn splits_keep_every_row(rows in proptest::collection::vec(proptest::collection::vec(value(), 1..4), 0..12), max in 1usize..200) {
            let texts = encode_rows(&rows, max);
            let mut back: Vec<serde_json::Value> = Vec::new();
            for t in &texts {
                let parsed: Vec<serde_json::Value> = serde_json::from_str(t).unwrap();
                prop_assert!(parsed.len() == 1 || t.len() <= max, "{} > {max}", t.len());
                back.extend(parsed);
            }
            prop_assert_eq!(back.len(), rows.len());
            let mut one = String::new();
            for (row, parsed) in rows.iter().zip(&back) {
                one.clear();
                one.push('[');
                for (i, v) in row.iter().enumerate() {
                    if i > 0 { one.push(','); }
                    v.write_json_cell(&mut one);
                }
                one.push(']');
                prop_assert_eq!(&serde_json::from_str::<serde_json::Value>(&one).unwrap(), parsed);
            }
        }
    }

    #[test]
    fn misplaced_blobs_are_named() {
        let col = |name: &str, affinity| Column { name: name.into(), source_type: "t".into(), affinity, nullable: true };
        let cols = [col("a", Affinity::Text), col("b", Affinity::Blob)];
        let mut t = BatchText::new(&cols, 1000);
        t.rows_of(&[vec![Value::text("x"), Value::Blob(vec![1])]]);
        assert_eq!(t.misplaced(), None);
        t.rows_of(&[vec![Value::Blob(vec![1]), Value::Null]]);
        assert_eq!(t.misplaced(), Some(0));
        assert_eq!(t.finish(), vec!["[[\"x\",{\"x\":\"01\"}],[{\"x\":\"01\"},null]]".to_string()]);
    }
}
