//! The batches that `replica_sql::upsert_batch` reads, written cell by cell: JSON text
//! (`BatchText`) or SQLite's binary JSON, JSONB (`JsonbBatch`), which the copy binds.
//!
//! A page of a copy becomes a few JSON texts of row arrays (`[[1,"a"],[2,"b"]]`), each at most
//! `max_bytes` long. `encode_rows` writes them from `Value`s; a source that knows its wire
//! format (PostgreSQL's binary values) writes its cells here directly instead, without a
//! `Value` and a `String` per cell and a `Vec` per row, which were most of a copy's
//! per-row CPU outside SQLite. Both paths write through the same cell functions
//! (`Value::write_json_cell` calls them), so the text is the same either way; the property
//! tests in `source::postgres::types` compare the two for every type's edge values.
//!
//! A copy binds its batches as JSONB (<https://sqlite.org/jsonb.html>, a stable format that
//! SQLite's JSON functions read as they read text): SQLite then walks it instead of parsing
//! it, text cells are copied without escaping, and the batch crosses into JavaScript as bytes
//! rather than as a string decoded from UTF-8 and encoded again. `json_each` reads either
//! form, so the statements are the same; the tests here check that SQLite reads both forms
//! of any rows into the same values.

use crate::source::{Affinity, Column};
use crate::value::{needs_json_escape, write_json_string, Value};

/// A batch under construction, cell by cell, in either of its forms. The sources' direct
/// paths are written once against this and run for both (the copy's JSONB, the tests' text).
pub trait Cells {
    fn begin_row(&mut self);
    fn end_row(&mut self);
    fn null(&mut self);
    fn integer(&mut self, i: i64);
    fn unsigned(&mut self, u: u64);
    fn real(&mut self, f: f64);
    fn text(&mut self, s: &str);
    /// A text cell whose characters `write` appends and which never need escaping in JSON
    /// (digits, signs, letters, `:`, `.`, `-`, `+`, spaces): dates, times, numbers as text.
    fn plain_text(&mut self, write: impl FnOnce(&mut String));
    /// Writes a blob cell (`{"x": hex}`, which `cell_expr` unhexes).
    fn blob_cell(&mut self, b: &[u8]);
    fn tally(&mut self) -> &mut Tally;

    fn blob(&mut self, b: &[u8]) {
        self.tally().blob_at_cell();
        self.blob_cell(b);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.null(),
            Value::Integer(i) => self.integer(*i),
            Value::Real(f) => self.real(*f),
            Value::Text(t) => self.text(t),
            Value::Blob(b) => self.blob(b),
        }
    }

    /// Whole rows of values.
    fn rows_of(&mut self, rows: &[Vec<Value>]) {
        for row in rows {
            self.begin_row();
            for v in row {
                self.value(v);
            }
            self.end_row();
        }
    }
}

/// What both forms count: rows, cells of the current row, and blobs in the wrong columns.
pub struct Tally {
    /// Cells written in the current row.
    cells: usize,
    rows: usize,
    /// Per column: whether its statement expression reads a blob (`cell_expr`). Empty: all do.
    blob_ok: Vec<bool>,
    misplaced: Option<usize>,
}

impl Tally {
    fn new(columns: &[Column]) -> Self {
        let blob_ok = columns.iter().map(|c| matches!(c.affinity, Affinity::Blob | Affinity::Any)).collect();
        Tally { cells: 0, rows: 0, blob_ok, misplaced: None }
    }

    fn blob_at_cell(&mut self) {
        let column = self.cells;
        if self.misplaced.is_none() && !self.blob_ok.get(column).copied().unwrap_or(true) {
            self.misplaced = Some(column);
        }
    }
}

/// Batch texts under construction: rows are written into the current text and moved to the
/// next one when they would make it longer than `max_bytes` (a single longer row gets a text
/// of its own, as `encode_rows` always did).
pub struct BatchText {
    max_bytes: usize,
    done: Vec<String>,
    cur: String,
    /// Where the row being written starts in `cur` (at its separating comma, if any).
    row_start: usize,
    tally: Tally,
}

impl BatchText {
    /// Texts for rows of `columns`; a blob in a column whose replica expression would store it
    /// as JSON text is recorded (`misplaced`), not written differently.
    pub fn new(columns: &[Column], max_bytes: usize) -> Self {
        BatchText { max_bytes, done: Vec::new(), cur: String::new(), row_start: 0, tally: Tally::new(columns) }
    }

    /// Texts for rows of any columns (keys of a delete, CDC rows checked elsewhere).
    pub fn untyped(max_bytes: usize) -> Self {
        BatchText::new(&[], max_bytes)
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.tally.rows
    }

    /// The first column (index) that received a blob its replica expression does not read as one.
    pub fn misplaced(&self) -> Option<usize> {
        self.tally.misplaced
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
        if self.tally.cells > 0 {
            self.cur.push(',');
        }
        self.tally.cells += 1;
        &mut self.cur
    }
}

impl Cells for BatchText {
    fn begin_row(&mut self) {
        self.row_start = self.cur.len();
        self.cur.push_str(if self.cur.is_empty() { "[[" } else { ",[" });
        self.tally.cells = 0;
    }

    fn end_row(&mut self) {
        self.cur.push(']');
        self.tally.rows += 1;
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

    fn null(&mut self) {
        self.cell().push_str("null");
    }

    fn integer(&mut self, i: i64) {
        self.cell().push_str(itoa::Buffer::new().format(i));
    }

    fn unsigned(&mut self, u: u64) {
        self.cell().push_str(itoa::Buffer::new().format(u));
    }

    fn real(&mut self, f: f64) {
        push_real_cell(f, self.cell());
    }

    fn text(&mut self, s: &str) {
        write_json_string(s, self.cell());
    }

    fn plain_text(&mut self, write: impl FnOnce(&mut String)) {
        let out = self.cell();
        out.push('"');
        let start = out.len();
        write(out);
        debug_assert!(!needs_json_escape(&out[start..]), "{}", &out[start..]);
        out.push('"');
    }

    fn blob_cell(&mut self, b: &[u8]) {
        push_blob_cell(b, self.cell());
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }
}

/// JSONB element types (jsonb.html, section 3).
mod jsonb {
    pub const NULL: u8 = 0;
    pub const INT: u8 = 3;
    pub const FLOAT: u8 = 5;
    /// Text that needs no escape in JSON: rendered as it is.
    pub const TEXT: u8 = 7;
    /// Text stored as it is, which SQLite escapes when it renders it as JSON.
    pub const TEXTRAW: u8 = 10;
    pub const ARRAY: u8 = 11;
    pub const OBJECT: u8 = 12;

    /// The header of an element of `kind` whose payload is `len` bytes, in its shortest form.
    pub fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
        if len <= 11 {
            out.push((len as u8) << 4 | kind);
        } else if len <= 0xff {
            out.extend_from_slice(&[0xc0 | kind, len as u8]);
        } else if len <= 0xffff {
            out.push(0xd0 | kind);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0xe0 | kind);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }

    /// The length of `header(_, _, len)`.
    pub fn header_len(len: usize) -> usize {
        match len {
            0..=11 => 1,
            12..=0xff => 2,
            0x100..=0xffff => 3,
            _ => 5,
        }
    }

    /// A container's header is written before its size is known, with room for a size of two
    /// bytes (a row) or four (a batch), and the size is filled in when it closes
    /// (`close_row`, `close_batch`). SQLite reads a size in more bytes than it needs.
    pub const ROW_HEADER: [u8; 3] = [0xd0 | ARRAY, 0, 0];
    pub const BATCH_HEADER: [u8; 5] = [0xe0 | ARRAY, 0, 0, 0, 0];

    /// Sets the size of the array whose `BATCH_HEADER` starts at `at` and which ends at the end.
    pub fn close_batch(out: &mut [u8], at: usize) {
        let size = (out.len() - at - BATCH_HEADER.len()) as u32;
        out[at + 1..at + 5].copy_from_slice(&size.to_be_bytes());
    }

    /// Sets the size of the row whose `ROW_HEADER` starts at `at` and which ends at the end;
    /// a row over 64 KiB gets a four-byte size instead.
    pub fn close_row(out: &mut Vec<u8>, at: usize) {
        let size = out.len() - at - ROW_HEADER.len();
        if let Ok(short) = u16::try_from(size) {
            out[at + 1..at + 3].copy_from_slice(&short.to_be_bytes());
        } else {
            out.splice(at..at + ROW_HEADER.len(), BATCH_HEADER);
            out[at + 1..at + 5].copy_from_slice(&(size as u32).to_be_bytes());
        }
    }
}

/// Batches as JSONB arrays of row arrays, split as `BatchText` splits its texts (`max_bytes`).
pub struct JsonbBatch {
    max_bytes: usize,
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
    /// Where the row being written starts in `cur` (its header).
    row_start: usize,
    tally: Tally,
    /// Where `plain_text` and `real` write before their bytes are copied after a header.
    scratch: String,
}

impl JsonbBatch {
    pub fn new(columns: &[Column], max_bytes: usize) -> Self {
        JsonbBatch { max_bytes, done: Vec::new(), cur: Vec::new(), row_start: 0, tally: Tally::new(columns), scratch: String::new() }
    }

    pub fn untyped(max_bytes: usize) -> Self {
        JsonbBatch::new(&[], max_bytes)
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.tally.rows
    }

    /// The first column (index) that received a blob its replica expression does not read as one.
    pub fn misplaced(&self) -> Option<usize> {
        self.tally.misplaced
    }

    /// The batches, in row order; none for no rows.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.cur.is_empty() {
            jsonb::close_batch(&mut self.cur, 0);
            self.done.push(self.cur);
        }
        self.done
    }

    fn atom(&mut self, kind: u8, payload: &[u8]) {
        self.tally.cells += 1;
        jsonb::header(&mut self.cur, kind, payload.len());
        self.cur.extend_from_slice(payload);
    }

    /// An atom whose payload `write` appends to a text (its length is needed for the header).
    fn written_atom(&mut self, kind: u8, write: impl FnOnce(&mut String)) {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        write(&mut text);
        debug_assert!(!needs_json_escape(&text), "{text}");
        self.atom(kind, text.as_bytes());
        self.scratch = text;
    }
}

impl Cells for JsonbBatch {
    fn begin_row(&mut self) {
        if self.cur.is_empty() {
            self.cur.extend_from_slice(&jsonb::BATCH_HEADER);
        }
        self.row_start = self.cur.len();
        self.cur.extend_from_slice(&jsonb::ROW_HEADER);
        self.tally.cells = 0;
    }

    fn end_row(&mut self) {
        jsonb::close_row(&mut self.cur, self.row_start);
        self.tally.rows += 1;
        // A batch's first row always stays in it.
        if self.row_start > jsonb::BATCH_HEADER.len() && self.cur.len() > self.max_bytes {
            let mut next = Vec::with_capacity(self.cur.capacity());
            next.extend_from_slice(&jsonb::BATCH_HEADER);
            next.extend_from_slice(&self.cur[self.row_start..]);
            self.cur.truncate(self.row_start);
            jsonb::close_batch(&mut self.cur, 0);
            self.done.push(std::mem::replace(&mut self.cur, next));
        }
    }

    fn null(&mut self) {
        self.atom(jsonb::NULL, b"");
    }

    fn integer(&mut self, i: i64) {
        self.atom(jsonb::INT, itoa::Buffer::new().format(i).as_bytes());
    }

    fn unsigned(&mut self, u: u64) {
        self.atom(jsonb::INT, itoa::Buffer::new().format(u).as_bytes());
    }

    fn real(&mut self, f: f64) {
        // NaN is NULL, as `push_real_cell` writes it.
        if f.is_nan() {
            self.null();
        } else {
            self.written_atom(jsonb::FLOAT, |t| push_real_cell(f, t));
        }
    }

    fn text(&mut self, s: &str) {
        let kind = if needs_json_escape(s) { jsonb::TEXTRAW } else { jsonb::TEXT };
        self.atom(kind, s.as_bytes());
    }

    fn plain_text(&mut self, write: impl FnOnce(&mut String)) {
        self.written_atom(jsonb::TEXT, write);
    }

    fn blob_cell(&mut self, b: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        self.tally.cells += 1;
        let hex = b.len() * 2;
        // {"x": "<hex>"}: the key (header and "x") and the hex text.
        jsonb::header(&mut self.cur, jsonb::OBJECT, 2 + jsonb::header_len(hex) + hex);
        self.cur.extend_from_slice(&[1 << 4 | jsonb::TEXT, b'x']);
        jsonb::header(&mut self.cur, jsonb::TEXT, hex);
        self.cur.reserve(hex);
        for &byte in b {
            self.cur.extend_from_slice(&[DIGITS[(byte >> 4) as usize], DIGITS[(byte & 15) as usize]]);
        }
    }

    fn tally(&mut self) -> &mut Tally {
        &mut self.tally
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

    /// Values at the edges of what SQLite and JSON distinguish.
    fn edge_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            value(),
            proptest::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1 << 53, (1 << 53) + 1]).prop_map(Value::Integer),
            proptest::sample::select(vec![
                0.0,
                -0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                f64::MIN_POSITIVE,
                5e-324,
                f64::MAX,
                0.1,
                1e21,
                1e-7
            ])
            .prop_map(Value::Real),
            proptest::sample::select(vec![
                "",
                "\0",
                "\"",
                "\\",
                "a\u{0}b",
                "\u{1}\u{1f}\u{7f}",
                "\n\r\t",
                "é\u{2028}🦀",
                "'",
                "\\u0000",
                "null"
            ])
            .prop_map(Value::text),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Blob),
            "(?s).{0,300}".prop_map(Value::Text),
        ]
    }

    /// Every row of `batches` upserted into a fresh table `t` of `width` untyped columns and a
    /// key, read back as SQLite holds it (type and exact value).
    fn stored(batches: Vec<Value>, width: usize) -> Vec<Vec<String>> {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let mut columns = vec![Column { name: "k".into(), source_type: "int".into(), affinity: Affinity::Integer, nullable: false }];
        columns.extend((0..width).map(|i| Column {
            name: format!("c{i}"),
            source_type: "any".into(),
            affinity: Affinity::Any,
            nullable: true,
        }));
        db.execute_batch(&crate::replica_sql::create_table("t", &columns, &["k".into()])).unwrap();
        let upsert = crate::replica_sql::upsert_batch("t", &columns, &["k".into()]);
        for b in batches {
            let p = match b {
                Value::Text(t) => rusqlite::types::Value::Text(t),
                Value::Blob(b) => rusqlite::types::Value::Blob(b),
                _ => unreachable!(),
            };
            db.execute(&upsert, [p]).unwrap();
        }
        let cells: Vec<String> = (0..width).map(|i| format!("typeof(c{i}) || ':' || quote(c{i})")).collect();
        let mut q = db.prepare(&format!("SELECT k, {} FROM t ORDER BY k", cells.join(", "))).unwrap();
        let rows =
            q.query_map([], |r| (0..=width).map(|i| r.get::<_, rusqlite::types::Value>(i).map(|v| format!("{v:?}"))).collect()).unwrap();
        rows.map(Result::unwrap).collect()
    }

    proptest! {
        /// SQLite reads the JSONB a copy binds into exactly the values it reads from the JSON
        /// text of the same rows, however the batches are split; and each batch is JSONB that
        /// SQLite's strictest check accepts, no longer than `max` unless it holds one row.
        #[test]
        fn jsonb_reads_as_text(
            rows in proptest::collection::vec(proptest::collection::vec(edge_value(), 3), 0..10),
            max in 1usize..2000,
        ) {
            let keyed: Vec<Vec<Value>> =
                rows.iter().enumerate().map(|(k, r)| std::iter::once(Value::Integer(k as i64)).chain(r.iter().cloned()).collect()).collect();
            let texts = encode_rows(&keyed, usize::MAX);
            let batches = crate::replica_sql::jsonb_rows(&keyed, max);
            let db = rusqlite::Connection::open_in_memory().unwrap();
            let mut rows_in = 0;
            for b in &batches {
                let (valid, n): (i64, i64) = db
                    .query_row("SELECT json_valid(?1, 8), (SELECT count(*) FROM json_each(?1))", [b], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap();
                prop_assert_eq!(valid, 1);
                prop_assert!(n == 1 || b.len() <= max, "{} > {max}", b.len());
                rows_in += n;
            }
            prop_assert_eq!(rows_in as usize, rows.len());
            let from_text = stored(texts.into_iter().map(Value::Text).collect(), 3);
            let from_jsonb = stored(batches.into_iter().map(Value::Blob).collect(), 3);
            prop_assert_eq!(from_text.len(), rows.len());
            prop_assert_eq!(from_jsonb, from_text);
        }
    }

    #[test]
    fn jsonb_cells_in_every_header_width() {
        // Payloads of 11/12 (one-byte header or a size byte), 255/256 and 65535/65536 bytes,
        // a row longer than 64 KiB (its header widened), and unsigned integers past i64.
        let long = |n: usize| Value::text("x".repeat(n));
        let rows = vec![
            vec![Value::Integer(0), long(11), long(12), long(255)],
            vec![Value::Integer(1), long(256), long(65_535), long(65_536)],
            vec![Value::Integer(2), Value::Blob(vec![7; 5]), Value::Blob(vec![7; 6]), Value::Blob(vec![7; 40_000])],
        ];
        let from_text = stored(encode_rows(&rows, usize::MAX).into_iter().map(Value::Text).collect(), 3);
        let from_jsonb = stored(crate::replica_sql::jsonb_rows(&rows, usize::MAX).into_iter().map(Value::Blob).collect(), 3);
        assert_eq!(from_jsonb, from_text);
        assert_eq!(from_jsonb[1][3], format!("Text(\"text:'{}'\")", "x".repeat(65_536)));

        let (mut t, mut b) = (BatchText::untyped(usize::MAX), JsonbBatch::untyped(usize::MAX));
        for (k, u) in [u64::MAX, 1 << 63, (1 << 63) - 1].into_iter().enumerate() {
            t.begin_row();
            b.begin_row();
            t.integer(k as i64);
            b.integer(k as i64);
            t.unsigned(u);
            b.unsigned(u);
            t.plain_text(|s| s.push_str("2026-12-05T14:00:00.000001Z"));
            b.plain_text(|s| s.push_str("2026-12-05T14:00:00.000001Z"));
            t.null();
            b.null();
            t.end_row();
            b.end_row();
        }
        let from_text = stored(t.finish().into_iter().map(Value::Text).collect(), 3);
        let from_jsonb = stored(b.finish().into_iter().map(Value::Blob).collect(), 3);
        assert_eq!(from_jsonb, from_text);
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
