//! The SQLite family as origins: Turso/libSQL (Hrana over HTTP), Cloudflare D1 (a binding of
//! this Worker, or the REST API) and StarbaseDB or another edge-replica (`POST /query/raw`).
//!
//! They share one SQL dialect, so one source, `SqliteSource`, runs over a `Transport` that
//! carries one statement and brings back its rows. Transports differ in one way that matters
//! for exactness (`Wire`):
//! - `Typed` (Hrana): every value arrives with its storage class, integers as decimal text
//!   (all 64 bits), blobs as base64. Pages select the columns as they are, plus one text
//!   column listing which cells hold -Infinity: JSON has no infinities, sqld writes both as
//!   `null` floats (decoded as NaN), and this column tells their signs apart.
//! - `Json` (D1 binding, D1 REST, StarbaseDB): rows pass through JavaScript numbers, which
//!   round integers beyond 2^53 and print 5.0 as 5. Pages therefore select each column as a
//!   tagged expression (`tagged_expr`) that keeps its storage class and its exact value:
//!   `i<digits>` for integers, `t<text>`, `x<hex>` for blobs, and reals as the REAL itself
//!   (a double survives JSON exactly; SQLite's own real-to-text conversion does not for large
//!   or tiny exponents), with ±Infinity as `rInf`/`r-Inf`. Key values go back the same way:
//!   as text parameters that SQL turns into the exact value (`ParamShape`), since the D1 REST
//!   API takes only string parameters.
//!
//! Column types follow SQLite's affinity rules (`affinity_of`). Storing a value under the
//! affinity it was already stored under changes nothing, so the replica declares the same
//! affinity as the origin and every value keeps its storage class; columns without a declared
//! type (and STRICT `ANY`) are declared without one in the replica too.
//!
//! Tables without a primary key are keyed by their rowid, exposed as an extra column
//! (`rowid`, or `_rowid_`/`oid` when a real column has that name). Rowids of such tables may
//! be renumbered by VACUUM, which full mode survives (every run is a fresh copy) but
//! incremental mode does not: give those tables a `primary_key`.

pub mod d1_rest;
pub mod hrana;
pub mod starbase;

use crate::error::{Error, Result};
use crate::ident::quote_double;
use crate::source::dialect::{absent_answer, absent_queries, count_queries, page_query, Dialect};
use crate::source::{Affinity, Column, KeyRange, PageRequest, Source, TableName, TableSchema};
use crate::value::{hex, unhex, Value};
use std::collections::HashMap;

/// An answer to an HTTP request: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// The one piece of IO the HTTP-based transports need. The Worker implements it with
/// `fetch`; tests with an in-process fake, so codecs and clients run natively.
#[allow(async_fn_in_trait)]
pub trait HttpClient {
    /// POSTs `body`; `Err` carries why no answer came (DNS, connection, timeout).
    async fn post(&self, url: &str, headers: &[(&str, &str)], body: String) -> std::result::Result<HttpResponse, String>;
}

/// POSTs a JSON `body` with a bearer token. When no answer comes at all, that is the origin's
/// error, worded as `{what} failed: …`, with the token redacted from whatever the client said.
pub(crate) async fn post_json<H: HttpClient>(
    http: &H,
    url: &str,
    token: &str,
    origin: &str,
    body: String,
    what: &str,
) -> Result<HttpResponse> {
    let auth = format!("Bearer {token}");
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
    http.post(url, &headers, body).await.map_err(|e| Error::at_origin(origin, redact(&format!("{what} failed: {e}"), Some(token))))
}

/// How values travel; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Typed,
    Json,
}

/// Rows of one statement. `columns` may be empty when there are no rows (StarbaseDB builds
/// its raw answer from the first row's keys).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A failed statement. `forbidden` marks an origin that refused the statement for lack of
/// rights (a StarbaseDB client token reading `pragma_table_info`), which introspection
/// works around; everything else is reported as it is.
#[derive(Debug)]
pub struct TransportError {
    pub error: Error,
    pub forbidden: bool,
}

impl From<Error> for TransportError {
    fn from(error: Error) -> Self {
        TransportError { error, forbidden: false }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        e.error
    }
}

/// Carries one read statement to the origin.
///
/// `Json` transports receive only `Value::Text` and `Value::Null` parameters and answer with
/// cells decoded from JSON by `json_cell`; `Typed` ones take and give every kind exactly.
#[allow(async_fn_in_trait)]
pub trait Transport {
    fn wire(&self) -> Wire;
    /// Names the origin in messages (`libsql at https://db.example.com`), never with credentials.
    fn origin(&self) -> &str;
    /// Which member of the family this is (libsql, d1 or starbase).
    fn source_type(&self) -> crate::config::SourceType;
    async fn query(&mut self, sql: &str, params: &[Value]) -> std::result::Result<Rows, TransportError>;
}

/// The affinity SQLite gives a column declared as `declared` (datatype3.html, 3.1), mapped
/// onto the replica's: NUMERIC stores exactly as INTEGER does (they differ only in CAST).
pub fn affinity_of(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.trim().is_empty() || t.trim() == "ANY" {
        Affinity::Any
    } else if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Integer
    }
}

/// A JSON cell as a `Value`, before any tag decoding: integral numbers that fit are integers
/// (JSON transports only send small ones untagged: counts, pragma flags), other numbers reals,
/// booleans 0/1, arrays of bytes blobs (D1 returns blobs that way).
pub fn json_cell(v: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Integer(*b as i64),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Real(n.as_f64().ok_or_else(|| format!("number {n} is out of range"))?),
        },
        J::String(s) => Value::Text(s.clone()),
        J::Array(a) => Value::Blob(
            a.iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or("an array that is not a list of bytes")?,
        ),
        J::Object(_) => return Err("an object where a value was expected".into()),
    })
}

/// A `Value` parameter as JSON for `Json` transports (text and NULL only; see `Transport`).
pub fn json_param(v: &Value) -> Result<serde_json::Value> {
    match v {
        Value::Null => Ok(serde_json::Value::Null),
        Value::Text(s) => Ok(serde_json::Value::String(s.clone())),
        other => Err(Error::internal(format!("a JSON transport was given the parameter {other:?}; only text and NULL travel exactly"))),
    }
}

/// The tagged expression a `Json` page selects for a column (see the module documentation).
pub fn tagged_expr(quoted: &str) -> String {
    format!(
        "CASE typeof({q}) WHEN 'integer' THEN 'i' || {q} WHEN 'real' THEN CASE WHEN abs({q}) = 9e999 THEN 'r' || {q} ELSE {q} END \
         WHEN 'text' THEN 't' || {q} WHEN 'blob' THEN 'x' || hex({q}) END",
        q = quoted
    )
}

/// Decodes one cell selected with `tagged_expr`.
pub fn decode_tagged(v: Value) -> Result<Value, String> {
    match v {
        Value::Null => Ok(Value::Null),
        // Only reals are sent as numbers; JavaScript prints an integral double without a dot.
        Value::Integer(i) => Ok(Value::Real(i as f64)),
        Value::Real(f) => Ok(Value::Real(f)),
        Value::Text(s) => {
            let (tag, rest) = s.split_at(s.char_indices().nth(1).map_or(s.len(), |(i, _)| i));
            match tag {
                "i" => rest.parse().map(Value::Integer).map_err(|_| format!("integer {rest:?} is not a 64-bit integer")),
                "t" => Ok(Value::Text(rest.to_string())),
                "x" => unhex(rest).map(Value::Blob).ok_or_else(|| "blob hex is malformed".to_string()),
                "r" if rest == "Inf" => Ok(Value::Real(f64::INFINITY)),
                "r" if rest == "-Inf" => Ok(Value::Real(f64::NEG_INFINITY)),
                _ => Err(format!("unexpected cell {:?}", s.chars().take(20).collect::<String>())),
            }
        }
        Value::Blob(_) => Err("unexpected blob cell".into()),
    }
}

/// How a key value is sent and turned back into itself in SQL, for `Json` transports (and
/// for infinities, which JSON cannot carry, on every transport).
#[derive(Debug, Clone, PartialEq)]
enum ParamShape {
    /// The parameter as it is.
    Plain,
    /// Decimal text, `CAST(? AS INTEGER)`.
    Integer,
    /// The double as `m × 2^exp`: the integer `m` travels as text, the power of two is
    /// written into the SQL as exact factors. Parsing decimal text into a REAL is not exact
    /// in SQLite for large or tiny exponents.
    Real { exp: i32 },
    /// `'+'` or `'-'`.
    Infinity,
    /// Hex text, `unhex(?)`.
    Blob,
    /// NULL, written so that it still uses its placeholder (D1 wants every one bound).
    Null,
}

/// `m` and `exp` with `f == m × 2^exp`, `|m| < 2^53`, trailing zero bits of `m` removed.
fn decompose(f: f64) -> (i64, i32) {
    if f == 0.0 {
        return (0, 0);
    }
    let bits = f.to_bits();
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let frac = (bits & ((1u64 << 52) - 1)) as i64;
    let (mut m, mut exp) = if biased == 0 { (frac, -1074) } else { (frac | (1i64 << 52), biased - 1075) };
    let tz = m.trailing_zeros() as i32;
    m >>= tz;
    exp += tz;
    (sign * m, exp)
}

/// `2^62` and smaller powers as exact REAL factors.
fn pow2_factors(exp: i32) -> String {
    let op = if exp < 0 { " / " } else { " * " };
    let mut n = exp.unsigned_abs();
    let mut s = String::new();
    while n > 0 {
        let k = n.min(62);
        s.push_str(op);
        s.push_str(&format!("CAST({} AS REAL)", 1u64 << k));
        n -= k;
    }
    s
}

impl ParamShape {
    fn expr(&self, ph: &str) -> String {
        match self {
            ParamShape::Plain => ph.to_string(),
            ParamShape::Integer => format!("CAST({ph} AS INTEGER)"),
            ParamShape::Real { exp } => format!("(CAST({ph} AS INTEGER) * 1.0{})", pow2_factors(*exp)),
            ParamShape::Infinity => format!("(CASE {ph} WHEN '-' THEN -9e999 ELSE 9e999 END)"),
            ParamShape::Blob => format!("unhex({ph})"),
            ParamShape::Null => format!("NULLIF({ph}, {ph})"),
        }
    }
}

/// A key value as the parameter that travels and the shape that restores it.
fn encode_key(v: &Value, wire: Wire) -> (Value, ParamShape) {
    match (v, wire) {
        (Value::Real(f), _) if f.is_infinite() => (Value::text(if *f < 0.0 { "-" } else { "+" }), ParamShape::Infinity),
        (v, Wire::Typed) => (v.clone(), ParamShape::Plain),
        (Value::Null, Wire::Json) => (Value::text(""), ParamShape::Null),
        (Value::Integer(i), Wire::Json) => (Value::Text(i.to_string()), ParamShape::Integer),
        (Value::Real(f), Wire::Json) => {
            let (m, exp) = decompose(*f);
            (Value::Text(m.to_string()), ParamShape::Real { exp })
        }
        (Value::Text(s), Wire::Json) => (Value::Text(s.clone()), ParamShape::Plain),
        (Value::Blob(b), Wire::Json) => (Value::Text(hex(b)), ParamShape::Blob),
    }
}

/// SQLite's spelling for one page: `?N` placeholders (reusable), the column or its tagged
/// expression under an alias no page column has (SQLite resolves ORDER BY names to output
/// aliases first), and each key parameter in the shape its value needs.
struct PageDialect {
    wire: Wire,
    alias_prefix: String,
    index: HashMap<String, usize>,
    shapes: HashMap<String, ParamShape>,
}

impl PageDialect {
    fn new(wire: Wire, columns: &[Column]) -> Self {
        let lower: Vec<String> = columns.iter().map(|c| c.name.to_lowercase()).collect();
        let alias_prefix = (0..)
            .map(|i| if i == 0 { "_er_v".to_string() } else { format!("_er{i}_v") })
            .find(|p| !lower.iter().any(|n| n.starts_with(p.as_str())))
            .unwrap_or_default();
        let index = columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)).collect();
        PageDialect { wire, alias_prefix, index, shapes: HashMap::new() }
    }
    fn alias(&self, i: usize) -> String {
        format!("{}{i}", self.alias_prefix)
    }
    /// `'2,5,'`: the positions of the cells holding -Infinity.
    fn neg_infinity_expr(&self) -> String {
        let mut by_pos: Vec<(&usize, &String)> = self.index.iter().map(|(n, i)| (i, n)).collect();
        by_pos.sort();
        let parts: Vec<String> = by_pos
            .iter()
            .map(|(i, n)| {
                let q = quote_col(n);
                format!("CASE WHEN typeof({q}) = 'real' AND {q} = -9e999 THEN '{i},' ELSE '' END")
            })
            .collect();
        format!("({})", parts.join(" || "))
    }
}

/// A typed row with its sign column: NaN cells (infinities sent as `null`) get their sign.
fn restore_infinities(mut row: Vec<Value>) -> Result<Vec<Value>, String> {
    let mask = match row.pop() {
        Some(Value::Text(m)) => m,
        other => return Err(format!("the sign column holds {other:?}")),
    };
    let negative: Vec<usize> = mask.split(',').filter(|p| !p.is_empty()).filter_map(|p| p.parse().ok()).collect();
    for (i, v) in row.iter_mut().enumerate() {
        if matches!(v, Value::Real(f) if f.is_nan()) {
            *v = Value::Real(if negative.contains(&i) { f64::NEG_INFINITY } else { f64::INFINITY });
        }
    }
    Ok(row)
}

impl Dialect for PageDialect {
    fn quote(&self, ident: &str) -> String {
        quote_col(ident)
    }
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }
    fn reuses_placeholders(&self) -> bool {
        true
    }
    fn select_expr(&self, column: &Column) -> String {
        let q = quote_col(&column.name);
        match self.wire {
            // The sign column rides along after the last column.
            Wire::Typed if self.index.get(&column.name) == Some(&(self.index.len() - 1)) => {
                format!("{q}, {} AS {}", self.neg_infinity_expr(), quote_double(&self.alias(self.index.len())))
            }
            Wire::Typed => q,
            Wire::Json => {
                let i = self.index.get(&column.name).copied().unwrap_or(0);
                format!("{} AS {}", tagged_expr(&q), quote_double(&self.alias(i)))
            }
        }
    }
    fn param_expr(&self, column: &Column, placeholder: &str) -> String {
        self.shapes.get(&column.name).unwrap_or(&ParamShape::Plain).expr(placeholder)
    }
}

/// The statement and parameters for one page over a transport of kind `wire`.
pub fn page_sql(wire: Wire, page: &PageRequest<'_>) -> (String, Vec<Value>) {
    let mut d = PageDialect::new(wire, page.columns);
    let key_col = |k: usize| &page.columns[page.order[k]];
    let mut encode = |k: usize, v: &Value| {
        let (p, shape) = encode_key(v, wire);
        d.shapes.insert(key_col(k).name.clone(), shape);
        p
    };
    let after: Option<Vec<Value>> = page.after.map(|a| a.iter().enumerate().map(|(k, v)| encode(k, v)).collect());
    let from = page.from.map(|v| encode(0, v));
    let encoded = PageRequest { after: after.as_deref(), from: from.as_ref(), ..page.clone() };
    let q = page_query(&d, &encoded);
    (q.sql, q.params)
}

/// SQLite's spelling for delete reconciliation (`dialect::count_queries`, `absent_queries`):
/// each key value in the shape its own storage class needs (`encode_key`), `?N` placeholders,
/// and ranges compared `COLLATE BINARY`, the replica's order, which the primary key's index
/// serves unless the column was declared with another collation (then each range count scans).
/// Equality uses the column's own collation. Ranges and keys travel as `VALUES` lists.
struct KeyDialect {
    wire: Wire,
}

impl Dialect for KeyDialect {
    fn quote(&self, ident: &str) -> String {
        quote_col(ident)
    }
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }
    fn reuses_placeholders(&self) -> bool {
        true
    }
    fn table_ref(&self, table: &TableName) -> String {
        table_ref(table)
    }
    fn range_column(&self, column: &Column, quoted: &str) -> String {
        if ROWID_NAMES.contains(&column.name.as_str()) {
            quoted.to_string()
        } else {
            format!("{quoted} COLLATE BINARY")
        }
    }
    fn range_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        self.eq_bind(column, value, placeholder)
    }
    fn eq_bind(&self, _column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        let (p, shape) = encode_key(value, self.wire);
        (shape.expr(placeholder), p)
    }
    /// D1 and Durable Object SQLite refuse a `UNION` of more than a few `SELECT`s.
    fn values_lists(&self) -> bool {
        true
    }
}

/// Columns of a table: name, declared type, NOT NULL, position in the primary key (0: none).
const TABLE_INFO_SQL: &str = "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)";
const TABLE_INFO_IN_SCHEMA_SQL: &str = "SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1, ?2)";
/// What a rowid table without a declared key is keyed by, in order of preference: the first
/// of these names that no real column has still means the rowid.
const ROWID_NAMES: [&str; 3] = ["rowid", "_rowid_", "oid"];

/// A column name in SQL. The rowid names stay unquoted: a real column of that name wins
/// either way, but a quoted `"rowid"` that resolves to nothing would silently become the
/// string 'rowid' in SQLite builds that accept double-quoted strings.
fn quote_col(name: &str) -> String {
    if ROWID_NAMES.contains(&name) {
        name.to_string()
    } else {
        quote_double(name)
    }
}

/// An origin of the SQLite family over any transport.
pub struct SqliteSource<T: Transport> {
    transport: T,
    /// The database (`main`, an attached one) an unqualified table is looked up in, when the
    /// instance says so (`EXTERNAL_DB_DEFAULT_SCHEMA`).
    default_schema: Option<String>,
}

impl<T: Transport> SqliteSource<T> {
    pub fn new(transport: T) -> Self {
        SqliteSource { transport, default_schema: None }
    }

    pub fn with_default_schema(mut self, schema: Option<String>) -> Self {
        self.default_schema = schema.filter(|s| !s.is_empty());
        self
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn err(&self, m: impl std::fmt::Display) -> Error {
        Error::at_origin(self.transport.origin(), m)
    }

    fn qualify(&self, table: &TableName) -> TableName {
        match (&table.schema, &self.default_schema) {
            (None, Some(s)) => TableName { schema: Some(s.clone()), name: table.name.clone() },
            _ => table.clone(),
        }
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows> {
        self.transport.query(sql, params).await.map_err(Error::from)
    }

    /// Column names only, for origins that refuse `pragma_table_info` to the token in use.
    async fn columns_by_select(&mut self, table: &TableName) -> Result<TableSchema> {
        let sql = format!("SELECT * FROM {} LIMIT 0", table_ref(table));
        let rows = self.query(&sql, &[]).await?;
        if rows.columns.is_empty() {
            return Err(self.err(format!(
                "table {} cannot be introspected: pragma_table_info is refused to this token and the origin sends no column names \
                 for an empty result; use a token that may read pragma_table_info",
                table_ref(table)
            )));
        }
        let columns = rows
            .columns
            .into_iter()
            .map(|name| Column { name, source_type: String::new(), affinity: Affinity::Any, nullable: true })
            .collect();
        Ok(TableSchema { columns, primary_key: Vec::new() })
    }
}

fn table_ref(table: &TableName) -> String {
    match &table.schema {
        Some(s) => format!("{}.{}", quote_double(s), quote_double(&table.name)),
        None => quote_double(&table.name),
    }
}

fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::Text(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

impl<T: Transport> Source for SqliteSource<T> {
    fn describe_origin(&self) -> String {
        self.transport.origin().to_string()
    }
    fn source_type(&self) -> crate::config::SourceType {
        self.transport.source_type()
    }

    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        let table = self.qualify(table);
        let (sql, params) = match &table.schema {
            Some(s) => (TABLE_INFO_IN_SCHEMA_SQL, vec![Value::text(&table.name), Value::text(s)]),
            None => (TABLE_INFO_SQL, vec![Value::text(&table.name)]),
        };
        let rows = match self.transport.query(sql, &params).await {
            Ok(r) => r,
            Err(e) if e.forbidden => return self.columns_by_select(&table).await,
            Err(e) => return Err(e.error),
        };
        if rows.rows.is_empty() {
            return Err(self.err(format!("table {} does not exist", table_ref(&table))));
        }
        let mut columns = Vec::with_capacity(rows.rows.len());
        let mut keyed: Vec<(i64, String)> = Vec::new();
        for r in &rows.rows {
            let bad = || self.err(format!("unexpected pragma_table_info row {r:?}"));
            let [name, ty, notnull, pk] = r.as_slice() else { return Err(bad()) };
            let (Some(name), Some(ty)) = (cell_text(name), cell_text(ty)) else { return Err(bad()) };
            let (Some(notnull), Some(pk)) = (notnull.as_i64(), pk.as_i64()) else { return Err(bad()) };
            if pk > 0 {
                keyed.push((pk, name.clone()));
            }
            columns.push(Column { affinity: affinity_of(&ty), source_type: ty, nullable: notnull == 0, name });
        }
        keyed.sort();
        let mut primary_key: Vec<String> = keyed.into_iter().map(|(_, n)| n).collect();
        if primary_key.is_empty() {
            let taken = |n: &str| columns.iter().any(|c: &Column| c.name.eq_ignore_ascii_case(n));
            if let Some(name) = ROWID_NAMES.into_iter().find(|n| !taken(n)) {
                // Views, virtual and WITHOUT ROWID tables have no rowid: the probe fails and the
                // table stays keyless, which the engine reports with its own advice.
                let probe = format!("SELECT {} FROM {} LIMIT 0", quote_col(name), table_ref(&table));
                if self.transport.query(&probe, &[]).await.is_ok() {
                    columns.push(Column {
                        name: name.to_string(),
                        source_type: "INTEGER".into(),
                        affinity: Affinity::Integer,
                        nullable: false,
                    });
                    primary_key.push(name.to_string());
                }
            }
        }
        Ok(TableSchema { columns, primary_key })
    }

    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        let table = self.qualify(page.table);
        let page = PageRequest { table: &table, ..page.clone() };
        let wire = self.transport.wire();
        let (sql, params) = page_sql(wire, &page);
        let Rows { columns, rows } = self.query(&sql, &params).await?;
        let width = page.columns.len();
        // Origins that rebuild rows from objects may reorder columns; the aliases put them back.
        let order: Option<Vec<usize>> = if wire == Wire::Json && !columns.is_empty() {
            let d = PageDialect::new(wire, page.columns);
            let pos: Option<Vec<usize>> = (0..width).map(|i| columns.iter().position(|c| *c == d.alias(i))).collect();
            Some(pos.ok_or_else(|| self.err(format!("the answer's columns {columns:?} are not the ones asked for")))?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let row = match wire {
                Wire::Typed if row.len() == width + 1 => restore_infinities(row).map_err(|e| self.err(e))?,
                _ => row,
            };
            if row.len() != width {
                return Err(self.err(format!("a row has {} values, expected {width}", row.len())));
            }
            let row = match &order {
                Some(o) if o.iter().enumerate().any(|(i, &p)| i != p) => o.iter().map(|&p| row[p].clone()).collect(),
                _ => row,
            };
            let row = match wire {
                Wire::Typed => row,
                Wire::Json => row
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| decode_tagged(v).map_err(|e| self.err(format!("column {}: {e}", quote_double(&page.columns[i].name)))))
                    .collect::<Result<Vec<Value>>>()?,
            };
            out.push(row);
        }
        Ok(out)
    }

    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        let table = self.qualify(table);
        let sql = format!("SELECT count(*) FROM {} WHERE {} IS NULL", table_ref(&table), quote_col(&column.name));
        let rows = self.query(&sql, &[]).await?;
        rows.rows
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .map(|n| n.max(0) as u64)
            .ok_or_else(|| self.err("count(*) returned no number"))
    }

    async fn count_key_ranges(
        &mut self,
        table: &TableName,
        key: &[Column],
        ranges: &[KeyRange],
        rows: &[u64],
    ) -> Result<Vec<(usize, u64)>> {
        let table = self.qualify(table);
        let d = KeyDialect { wire: self.transport.wire() };
        let mut out = Vec::new();
        for q in count_queries(&d, &table, key, ranges, rows) {
            let answer = self.query(&q.query.sql, &q.query.params).await?;
            out.extend(q.differing(&answer.rows, rows).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }

    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        let table = self.qualify(table);
        let d = KeyDialect { wire: self.transport.wire() };
        let mut out = Vec::new();
        for q in absent_queries(&d, &table, key, keys) {
            let answer = self.query(&q.sql, &q.params).await?;
            out.extend(absent_answer(&answer.rows, keys.len()).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }
}

/// `message` with every occurrence of `secret` masked: servers sometimes echo what they were sent.
pub fn redact(message: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= 4 => message.replace(s, "<redacted>"),
        _ => message.to_string(),
    }
}

/// The first `max` characters of an answer body, for messages about answers we cannot parse.
pub fn snippet(body: &str, max: usize) -> String {
    let t: String = body.trim().chars().take(max).collect();
    if body.trim().chars().count() > max {
        format!("{t}…")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules() {
        for (t, a) in [
            ("INTEGER", Affinity::Integer),
            ("BIGINT UNSIGNED", Affinity::Integer),
            ("int8", Affinity::Integer),
            ("VARCHAR(20)", Affinity::Text),
            ("NCHAR", Affinity::Text),
            ("clob", Affinity::Text),
            ("BLOB", Affinity::Blob),
            ("", Affinity::Any),
            ("any", Affinity::Any),
            ("REAL", Affinity::Real),
            ("DOUBLE PRECISION", Affinity::Real),
            ("FLOAT", Affinity::Real),
            ("NUMERIC(10,2)", Affinity::Integer),
            ("DATETIME", Affinity::Integer),
            ("BOOLEAN", Affinity::Integer),
            // The rules are ordered: INT wins over CHAR, as in "CHARINT", and "FLOATING POINT" is INTEGER.
            ("CHARINT", Affinity::Integer),
            ("FLOATING POINT", Affinity::Integer),
        ] {
            assert_eq!(affinity_of(t), a, "{t}");
        }
    }

    #[test]
    fn decompose_is_exact() {
        for f in [1.0, -2.5, 0.1, 5e-324, f64::MAX, f64::MIN_POSITIVE, 1e300, -1e-300, 123456789.0, 2f64.powi(60)] {
            let (m, e) = decompose(f);
            assert!(m.unsigned_abs() < 1 << 53);
            // Step by step, as the SQL of `pow2_factors` does: 2^-1074 alone is not a double.
            let mut x = m as f64;
            let mut n = e;
            while n != 0 {
                let k = n.clamp(-62, 62);
                x *= 2f64.powi(k);
                n -= k;
            }
            assert_eq!(x, f, "{f}");
            assert!(m % 2 != 0, "{f}: trailing zeros kept");
        }
        assert_eq!(decompose(0.0), (0, 0));
        assert_eq!(decompose(-0.0), (0, 0));
        assert_eq!(decompose(6.0), (3, 1));
    }

    #[test]
    fn tags_decode_strictly() {
        assert_eq!(decode_tagged(Value::text("i-9223372036854775808")), Ok(Value::Integer(i64::MIN)));
        assert_eq!(decode_tagged(Value::text("t")), Ok(Value::text("")));
        assert_eq!(decode_tagged(Value::text("tiX")), Ok(Value::text("iX")));
        assert_eq!(decode_tagged(Value::text("x00FF")), Ok(Value::Blob(vec![0, 255])));
        assert_eq!(decode_tagged(Value::text("x")), Ok(Value::Blob(vec![])));
        assert_eq!(decode_tagged(Value::text("r-Inf")), Ok(Value::Real(f64::NEG_INFINITY)));
        assert_eq!(decode_tagged(Value::Integer(5)), Ok(Value::Real(5.0)));
        for bad in ["i9223372036854775808", "q1", "", "x0", "rNaN", "é"] {
            assert!(decode_tagged(Value::text(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_cells() {
        let v: serde_json::Value = serde_json::from_str(r#"[null, true, 3, 1.5, 1e21, "s", [0, 255], {"a": 1}, [256]]"#).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(json_cell(&a[0]), Ok(Value::Null));
        assert_eq!(json_cell(&a[1]), Ok(Value::Integer(1)));
        assert_eq!(json_cell(&a[2]), Ok(Value::Integer(3)));
        assert_eq!(json_cell(&a[3]), Ok(Value::Real(1.5)));
        assert_eq!(json_cell(&a[4]), Ok(Value::Real(1e21)));
        assert_eq!(json_cell(&a[5]), Ok(Value::text("s")));
        assert_eq!(json_cell(&a[6]), Ok(Value::Blob(vec![0, 255])));
        assert!(json_cell(&a[7]).is_err());
        assert!(json_cell(&a[8]).is_err());
    }

    #[test]
    fn page_sql_shapes_each_key_value() {
        let t = TableName { schema: None, name: "t".into() };
        let col = |n: &str| Column { name: n.into(), source_type: String::new(), affinity: Affinity::Any, nullable: false };
        // A column whose name starts like the default alias pushes the aliases to another prefix.
        let cols = [col("k"), col("r"), col("_ER_v0")];
        let after = [Value::Integer(i64::MAX), Value::Real(0.375)];
        let (sql, params) =
            page_sql(Wire::Json, &PageRequest { table: &t, columns: &cols, order: &[0, 1], after: Some(&after), from: None, limit: 3 });
        assert!(sql.contains(r#" AS "_er1_v0", "#), "{sql}");
        assert!(
            sql.ends_with(
                r#"FROM "t" WHERE "k" >= CAST(?1 AS INTEGER) AND ("k" > CAST(?1 AS INTEGER) OR ("r" > (CAST(?2 AS INTEGER) * 1.0 / CAST(8 AS REAL)))) ORDER BY "k", "r" LIMIT 3"#
            ),
            "{sql}"
        );
        assert_eq!(params, vec![Value::text("9223372036854775807"), Value::text("3")]);
        let after = [Value::Blob(vec![1, 2]), Value::Null];
        let (sql, params) =
            page_sql(Wire::Json, &PageRequest { table: &t, columns: &cols, order: &[0, 1], after: Some(&after), from: None, limit: 3 });
        assert!(sql.contains(r#""k" >= unhex(?1)"#) && sql.contains(r#""r" > NULLIF(?2, ?2)"#), "{sql}");
        assert_eq!(params, vec![Value::text("0102"), Value::text("")]);
        // Typed transports send values as they are, and select plain columns.
        let from = Value::Real(f64::INFINITY);
        let (sql, params) =
            page_sql(Wire::Typed, &PageRequest { table: &t, columns: &cols, order: &[1], after: None, from: Some(&from), limit: 3 });
        assert!(
            sql.starts_with(r#"SELECT "k", "r", "_ER_v0", (CASE WHEN typeof("k") = 'real' AND "k" = -9e999 THEN '0,' ELSE '' END || "#),
            "{sql}"
        );
        assert!(
            sql.ends_with(r#"THEN '2,' ELSE '' END) AS "_er1_v3" FROM "t" WHERE "r" >= (CASE ?1 WHEN '-' THEN -9e999 ELSE 9e999 END) ORDER BY "r" LIMIT 3"#),
            "{sql}"
        );
        assert_eq!(params, vec![Value::text("+")]);
        let after = [Value::Integer(7)];
        let (_, params) =
            page_sql(Wire::Typed, &PageRequest { table: &t, columns: &cols, order: &[0], after: Some(&after), from: None, limit: 3 });
        assert_eq!(params, vec![Value::Integer(7)]);
    }

    /// What an edge-replica origin is asked must pass its `/query` guard (sqlparser), with the
    /// admin token and with the client token alike.
    #[test]
    fn reconciliation_queries_pass_an_edge_replica_guard() {
        use crate::query_guard::{check_read_only, Reader};
        use crate::source::dialect::{absent_queries, count_queries};
        let t = TableName { schema: None, name: "items".into() };
        let col = |n: &str| Column { name: n.into(), source_type: String::new(), affinity: Affinity::Any, nullable: false };
        let key = [col("k"), col("rowid"), col("t")];
        let k = |i: i64| vec![Value::Integer(i), Value::Integer(9_007_199_254_740_993), Value::text("x")];
        let ranges = [KeyRange { lo: None, hi: k(1) }, KeyRange { lo: Some(k(1)), hi: k(2) }, KeyRange { lo: Some(k(2)), hi: k(3) }];
        let mut sqls: Vec<String> = Vec::new();
        for wire in [Wire::Json, Wire::Typed] {
            let d = KeyDialect { wire };
            sqls.extend(count_queries(&d, &t, &key, &ranges, &[1, 2, 3]).into_iter().map(|q| q.query.sql));
            sqls.extend(
                absent_queries(&d, &t, &key, &[k(1), vec![Value::Real(0.5), Value::Blob(vec![1]), Value::Null], k(3)])
                    .into_iter()
                    .map(|q| q.sql),
            );
        }
        for sql in sqls {
            for reader in [Reader::Admin, Reader::Client] {
                assert_eq!(check_read_only(&sql, reader), Ok(()), "{sql}");
            }
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact("bad token abcdef", Some("abcdef")), "bad token <redacted>");
        assert_eq!(redact("x", Some("")), "x");
        assert_eq!(snippet(" abcdef ", 3), "abc…");
    }
}
