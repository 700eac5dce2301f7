//! SQL for the replica's own tables, as pure functions of names and columns.

use crate::ident::quote_double as q;
use crate::source::{Affinity, Column, KeyRange};
use crate::store::Stmt;
use crate::value::Value;

/// Batches (JSON text or JSONB) are split at this many bytes: DO SQLite limits one
/// string parameter to 2 MB, and smaller statements keep reads interleaving.
pub const MAX_BATCH_JSON_BYTES: usize = 1 << 20;

pub fn create_table(table: &str, columns: &[Column], primary_key: &[String]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            let t = c.affinity.declared_type();
            if t.is_empty() {
                q(&c.name)
            } else {
                format!("{} {t}", q(&c.name))
            }
        })
        .collect();
    let pk: Vec<String> = primary_key.iter().map(|k| q(k)).collect();
    format!("CREATE TABLE {} ({}, PRIMARY KEY ({}))", q(table), cols.join(", "), pk.join(", "))
}

/// Adds `column` to a replica table, its existing rows (and rows later written without it)
/// holding `value`: `None` when the value cannot be written as an exact SQL literal (a REAL).
pub fn add_column(table: &str, column: &Column, value: &Value) -> Option<String> {
    let t = column.affinity.declared_type();
    let decl = if t.is_empty() { q(&column.name) } else { format!("{} {t}", q(&column.name)) };
    let default = match value {
        Value::Null => String::new(),
        Value::Integer(i) => format!(" DEFAULT {i}"),
        Value::Text(s) => format!(" DEFAULT '{}'", s.replace('\'', "''")),
        Value::Blob(b) => format!(" DEFAULT X'{}'", crate::value::hex(b)),
        Value::Real(_) => return None,
    };
    Some(format!("ALTER TABLE {} ADD COLUMN {decl}{default}", q(table)))
}

/// The rows of a batch (`?1`, a JSON array of row arrays), one row array `batch_row` each, read
/// through a co-routine: `LIMIT -1` keeps SQLite from flattening the subquery into the statement,
/// which would re-render the row from the batch and re-parse it for every cell that reads it
/// (a third of the statement's time on a six-column table); this way each row is rendered and
/// parsed once.
const BATCH_ROWS: &str = "(SELECT value AS batch_row FROM json_each(?1) LIMIT -1)";

/// Reads cell `i` of a row array produced by `encode_rows`: blobs arrive as `{"x": hex}`.
/// Only columns that can hold a blob pay for the type test: it costs a second JSON lookup
/// per cell, which is most of the statement's work on wide tables.
fn cell_expr(i: usize, affinity: Affinity) -> String {
    match affinity {
        Affinity::Blob | Affinity::Any => format!(
            "CASE json_type(batch_row, '$[{i}]') WHEN 'object' THEN unhex(json_extract(batch_row, '$[{i}].x')) ELSE json_extract(batch_row, '$[{i}]') END"
        ),
        Affinity::Integer | Affinity::Real | Affinity::Text => format!("json_extract(batch_row, '$[{i}]')"),
    }
}

/// One statement that upserts every row of a JSON array of row arrays (`?1`).
///
/// One bound JSON text instead of N×M parameters: DO SQLite allows only 100 parameters per
/// statement, binds JS numbers as doubles (64-bit integers would round), and caches the
/// statement by its text, which stays the same for every batch of a table.
pub fn upsert_batch(table: &str, columns: &[Column], primary_key: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| q(&c.name)).collect();
    let cells: Vec<String> = columns.iter().enumerate().map(|(i, c)| cell_expr(i, c.affinity)).collect();
    let pk: Vec<String> = primary_key.iter().map(|k| q(k)).collect();
    let updates: Vec<String> =
        columns.iter().filter(|c| !primary_key.contains(&c.name)).map(|c| format!("{0} = excluded.{0}", q(&c.name))).collect();
    // `WHERE true` resolves SQLite's parse ambiguity between a join's ON and the upsert's ON.
    let conflict = if updates.is_empty() {
        format!("ON CONFLICT ({}) DO NOTHING", pk.join(", "))
    } else {
        format!("ON CONFLICT ({}) DO UPDATE SET {}", pk.join(", "), updates.join(", "))
    };
    format!("INSERT INTO {} ({}) SELECT {} FROM {BATCH_ROWS} WHERE true {conflict}", q(table), names.join(", "), cells.join(", "))
}

/// One statement that deletes every key of a JSON array of key arrays (`?1`), encoded as
/// `encode_rows` encodes rows, `key` being the key columns in key order.
pub fn delete_batch(table: &str, key: &[Column]) -> String {
    let names: Vec<String> = key.iter().map(|c| q(&c.name)).collect();
    let cells: Vec<String> = key.iter().enumerate().map(|(i, c)| cell_expr(i, c.affinity)).collect();
    format!("DELETE FROM {} WHERE ({}) IN (SELECT {} FROM {BATCH_ROWS})", q(table), names.join(", "), cells.join(", "))
}

/// Encodes rows as JSON arrays of row arrays, split so that no text exceeds `max_bytes`.
pub fn encode_rows(rows: &[Vec<Value>], max_bytes: usize) -> Vec<String> {
    let mut text = crate::batch::BatchText::untyped(max_bytes);
    crate::batch::Cells::rows_of(&mut text, rows);
    text.finish()
}

/// Encodes rows as JSONB arrays of row arrays, as a copy binds them (`batch::JsonbBatch`).
pub fn jsonb_rows(rows: &[Vec<Value>], max_bytes: usize) -> Vec<Vec<u8>> {
    let mut batch = crate::batch::JsonbBatch::untyped(max_bytes);
    crate::batch::Cells::rows_of(&mut batch, rows);
    batch.finish()
}

/// Rows of `old` whose key is absent from `new`: what a full refresh deletes.
pub fn count_missing(old: &str, new: &str, primary_key: &[String]) -> String {
    let on: Vec<String> = primary_key.iter().map(|k| format!("n.{0} IS o.{0}", q(k))).collect();
    format!("SELECT count(*) FROM {} AS o WHERE NOT EXISTS (SELECT 1 FROM {} AS n WHERE {})", q(old), q(new), on.join(" AND "))
}

pub fn drop_table(table: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", q(table))
}

pub fn rename_table(from: &str, to: &str) -> String {
    format!("ALTER TABLE {} RENAME TO {}", q(from), q(to))
}

pub fn count_rows(table: &str) -> String {
    format!("SELECT count(*) FROM {}", q(table))
}

/// The replica's side of delete reconciliation (`crate::reconcile`) for one table: the keys
/// that cut its key space into ranges, the keys in a range, and deletes by key. Keys are read
/// exactly (tagged, as `sqlite_family::tagged_expr` writes them: integers as digits, since
/// rows cross JavaScript) and bound exactly (integers as digits cast back). Rows with a NULL in
/// their key (only a SQLite-family origin allows that) take no part: nothing compares equal to NULL.
pub struct ReplicaKeys {
    table: String,
    key: Vec<String>,
    /// The name that reaches the table's rowid (not shadowed by one of its columns).
    rowid: &'static str,
}

/// A statement of `ReplicaKeys` for many ranges, in two spellings that read the same rows
/// `(index, key)`: `json`, one JSON text of them all (`[[r, tagged...], ...]`, in order), and
/// `rows`, one row each. Thousands of rows cross into JavaScript one value at a time, which cost
/// more than the statement; one text crosses at once. A REAL key value is tagged `?` there
/// (SQLite's printf does not write every double exactly): then the rows spelling is read.
#[derive(Debug, Clone, PartialEq)]
pub struct EachStmt {
    pub json: String,
    pub rows: String,
    pub params: Vec<Value>,
}

/// A key value as JSON text can carry it exactly: tagged as `tagged_expr` does, REAL as `?`.
fn json_tagged(c: &str) -> String {
    format!("CASE typeof({c}) WHEN 'integer' THEN 'i' || {c} WHEN 'text' THEN 't' || {c} WHEN 'blob' THEN 'x' || hex({c}) ELSE '?' END")
}

/// Keys read for many ranges: `(index of the range, key)`.
pub type RangeKeys = Vec<(usize, Vec<Value>)>;

/// Reads the `json` answer of an `EachStmt`: `None` when it holds a REAL key value.
pub fn decode_each_json(text: &str) -> Result<Option<RangeKeys>, String> {
    let rows: Vec<Vec<serde_json::Value>> = serde_json::from_str(text).map_err(|e| format!("replica keys are not a JSON list: {e}"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut it = row.into_iter();
        let r = it.next().and_then(|v| v.as_u64()).ok_or("a replica key without its range")? as usize;
        let mut key = Vec::new();
        for v in it {
            match v.as_str() {
                Some("?") => return Ok(None),
                Some(t) => key.push(crate::source::sqlite_family::decode_tagged(Value::text(t))?),
                None => return Err(format!("a replica key value is {v}")),
            }
        }
        out.push((r, key));
    }
    Ok(Some(out))
}

/// A key value as a bound parameter: `(expression, value)`. DO SQLite binds JS numbers, so
/// integers travel as their digits and are cast back.
fn bind_key(v: &Value, n: usize) -> (String, Value) {
    match v {
        Value::Integer(i) => (format!("CAST(?{n} AS INTEGER)"), Value::Text(i.to_string())),
        other => (format!("?{n}"), other.clone()),
    }
}

impl ReplicaKeys {
    /// `None` when every name of the rowid (`rowid`, `_rowid_`, `oid`) is also a column's.
    pub fn new(table: &str, key: &[String], columns: &[Column]) -> Option<Self> {
        let taken = |n: &str| columns.iter().any(|c| c.name.eq_ignore_ascii_case(n));
        let rowid = ["rowid", "_rowid_", "oid"].into_iter().find(|n| !taken(n))?;
        Some(ReplicaKeys { table: table.to_string(), key: key.to_vec(), rowid })
    }

    fn cols(&self, alias: &str) -> Vec<String> {
        self.key.iter().map(|k| format!("{alias}.{}", q(k))).collect()
    }

    fn not_null(&self, alias: &str) -> String {
        self.cols(alias).iter().map(|c| format!("{c} IS NOT NULL")).collect::<Vec<_>>().join(" AND ")
    }

    fn order(&self, alias: &str, desc: bool) -> String {
        let dir = if desc { " DESC" } else { "" };
        self.cols(alias).iter().map(|c| format!("{c}{dir}")).collect::<Vec<_>>().join(", ")
    }

    fn tagged(&self, alias: &str) -> String {
        self.cols(alias).iter().map(|c| crate::source::sqlite_family::tagged_expr(c)).collect::<Vec<_>>().join(", ")
    }

    /// `cols > vals` (or `<=`) written out column by column, so that SQLite uses the key's index.
    fn cmp(cols: &[String], vals: &[String], greater: bool) -> String {
        let (strict, loose) = if greater { (">", ">=") } else { ("<", "<=") };
        let last = cols.len() - 1;
        let mut out = format!("{} {} {}", cols[last], if greater { strict } else { loose }, vals[last]);
        for i in (0..last).rev() {
            out = format!("{c} {loose} {v} AND ({c} {strict} {v} OR ({out}))", c = cols[i], v = vals[i]);
        }
        out
    }

    /// Binds `key`'s values after `params`; returns their expressions.
    fn bind(params: &mut Vec<Value>, key: &[Value]) -> Vec<String> {
        key.iter()
            .map(|v| {
                let (e, p) = bind_key(v, params.len() + 1);
                params.push(p);
                e
            })
            .collect()
    }

    /// Up to `max` keys, each `step` rows after the one before, the first `step` rows after
    /// `after` (from the start when `None`): the boundaries of ranges of `step` rows. One
    /// statement, each hop an index walk of `step` entries (`OFFSET`), so the cost is one pass
    /// over the keys it covers, with one row per boundary crossing into JavaScript. (A
    /// `row_number()` window over the keys took 30 times as long on a million rows.)
    pub fn hops(&self, after: Option<&[Value]>, step: u64, max: usize) -> (String, Vec<Value>) {
        let t = q(&self.table);
        let mut params = Vec::new();
        let start = match after {
            Some(a) => {
                let vals = Self::bind(&mut params, a);
                format!(" AND {}", Self::cmp(&self.cols("x"), &vals, true))
            }
            None => String::new(),
        };
        let step_p = params.len() + 1;
        params.push(Value::Integer(step.saturating_sub(1) as i64));
        let max_p = params.len() + 1;
        params.push(Value::Integer(max as i64));
        let hvals: Vec<String> = (0..self.key.len()).map(|i| format!("h.c{i}")).collect();
        let names: Vec<String> = (0..self.key.len()).map(|i| format!("c{i}")).collect();
        let r = self.rowid;
        let hop = |cond: &str| {
            format!(
                "(SELECT x.{r} FROM {t} AS x WHERE {}{cond} ORDER BY {} LIMIT 1 OFFSET ?{step_p})",
                self.not_null("x"),
                self.order("x", false)
            )
        };
        let next = hop(&format!(" AND {}", Self::cmp(&self.cols("x"), &hvals, true)));
        let sql = format!(
            "WITH RECURSIVE h(n, {names}) AS (SELECT 1, {tcols} FROM {t} AS t WHERE t.{r} = {first} \
             UNION ALL SELECT h.n + 1, {tcols} FROM h JOIN {t} AS t ON t.{r} = {next} WHERE h.n < ?{max_p}) \
             SELECT {tagged} FROM h ORDER BY h.n",
            names = names.join(", "),
            tcols = self.cols("t").join(", "),
            first = hop(&start),
            tagged = hvals.iter().map(|c| crate::source::sqlite_family::tagged_expr(c)).collect::<Vec<_>>().join(", "),
        );
        (sql, params)
    }

    /// `hops` for many ranges at once, `step` rows apart after each range's `lo`, at most `max`
    /// per range: rows of `(index into ranges, key)`, in order. Ranges travel as JSON text (as
    /// batches of rows do: DO SQLite allows 100 parameters, and a JSON integer keeps its 64
    /// bits), split at `MAX_BATCH_JSON_BYTES`.
    pub fn hops_after_each(&self, ranges: &[(&[Value], usize)], step: u64) -> Vec<EachStmt> {
        let t = q(&self.table);
        let k = self.key.len();
        let rows: Vec<Vec<Value>> = ranges
            .iter()
            .enumerate()
            .map(|(i, (lo, max))| [Value::Integer(i as i64), Value::Integer(*max as i64)].into_iter().chain(lo.iter().cloned()).collect())
            .collect();
        let lo: Vec<String> = (0..k).map(|j| format!("b.lo{j}")).collect();
        let hvals: Vec<String> = (0..k).map(|j| format!("h.c{j}")).collect();
        let cells: Vec<String> = (0..k).map(|j| format!("{} AS lo{j}", cell_expr(j + 2, Affinity::Any))).collect();
        let names: Vec<String> = (0..k).map(|j| format!("c{j}")).collect();
        let r = self.rowid;
        let hop = |vals: &[String]| {
            format!(
                "(SELECT x.{r} FROM {t} AS x WHERE {} AND {} ORDER BY {} LIMIT 1 OFFSET ?2)",
                self.not_null("x"),
                Self::cmp(&self.cols("x"), vals, true),
                self.order("x", false)
            )
        };
        let with = format!(
            "WITH RECURSIVE b AS (SELECT json_extract(batch_row, '$[0]') AS r, json_extract(batch_row, '$[1]') AS mx, {cells} FROM {BATCH_ROWS}), \
             h(r, n, mx, {names}) AS (SELECT b.r, 1, b.mx, {tcols} FROM b JOIN {t} AS t ON t.{r} = {first} \
             UNION ALL SELECT h.r, h.n + 1, h.mx, {tcols} FROM h JOIN {t} AS t ON t.{r} = {next} WHERE h.n < h.mx)",
            cells = cells.join(", "),
            names = names.join(", "),
            tcols = self.cols("t").join(", "),
            first = hop(&lo),
            next = hop(&hvals),
        );
        let tagged = hvals.iter().map(|c| crate::source::sqlite_family::tagged_expr(c)).collect::<Vec<_>>().join(", ");
        let jtagged = hvals.iter().map(|c| json_tagged(c)).collect::<Vec<_>>().join(", ");
        let rows_sql = format!("{with} SELECT h.r, {tagged} FROM h ORDER BY h.r, h.n");
        let json_sql = format!("{with} SELECT json_group_array(json_array(h.r, {jtagged}) ORDER BY h.r, h.n) FROM h");
        encode_rows(&rows, MAX_BATCH_JSON_BYTES)
            .into_iter()
            .map(|json| EachStmt {
                json: json_sql.clone(),
                rows: rows_sql.clone(),
                params: vec![Value::Text(json), Value::Integer(step.saturating_sub(1) as i64)],
            })
            .collect()
    }

    /// `keys_in` for many ranges that all have a lower bound: rows of `(index into ranges, key)`,
    /// in order. Ranges travel as JSON text, as for `hops_after_each`.
    pub fn keys_in_each(&self, ranges: &[&KeyRange]) -> Vec<EachStmt> {
        let k = self.key.len();
        let rows: Vec<Vec<Value>> = ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                std::iter::once(Value::Integer(i as i64)).chain(r.lo.iter().flatten().cloned()).chain(r.hi.iter().cloned()).collect()
            })
            .collect();
        let cells: Vec<String> = (0..k)
            .map(|j| format!("{} AS lo{j}", cell_expr(j + 1, Affinity::Any)))
            .chain((0..k).map(|j| format!("{} AS hi{j}", cell_expr(j + 1 + k, Affinity::Any))))
            .collect();
        let lo: Vec<String> = (0..k).map(|j| format!("b.lo{j}")).collect();
        let hi: Vec<String> = (0..k).map(|j| format!("b.hi{j}")).collect();
        let from = format!(
            "FROM b JOIN {} AS x ON {} AND {} AND {}",
            q(&self.table),
            self.not_null("x"),
            Self::cmp(&self.cols("x"), &lo, true),
            Self::cmp(&self.cols("x"), &hi, false),
        );
        let with = format!("WITH b AS (SELECT json_extract(batch_row, '$[0]') AS r, {} FROM {BATCH_ROWS})", cells.join(", "));
        let order = format!("b.r, {}", self.order("x", false));
        let jtagged = self.cols("x").iter().map(|c| json_tagged(c)).collect::<Vec<_>>().join(", ");
        let rows_sql = format!("{with} SELECT b.r, {} {from} ORDER BY {order}", self.tagged("x"));
        let json_sql = format!("{with} SELECT json_group_array(json_array(b.r, {jtagged}) ORDER BY {order}) {from}");
        encode_rows(&rows, MAX_BATCH_JSON_BYTES)
            .into_iter()
            .map(|json| EachStmt { json: json_sql.clone(), rows: rows_sql.clone(), params: vec![Value::Text(json)] })
            .collect()
    }

    /// Deletes the rows with these keys: one statement per JSON batch of keys.
    pub fn delete_each(&self, keys: &[Vec<Value>]) -> Vec<Stmt> {
        // The cells are read in a subquery of their own: `value` in a join could be a column's name.
        let cells: Vec<String> = (0..self.key.len()).map(|j| format!("{} AS k{j}", cell_expr(j, Affinity::Any))).collect();
        let eq: Vec<String> = self.cols("t").iter().enumerate().map(|(j, c)| format!("{c} = v.k{j}")).collect();
        let sql = format!(
            "DELETE FROM {t} WHERE {r} IN (SELECT t.{r} FROM (SELECT {} FROM {BATCH_ROWS}) AS v JOIN {t} AS t ON {})",
            cells.join(", "),
            eq.join(" AND "),
            t = q(&self.table),
            r = self.rowid
        );
        encode_rows(keys, MAX_BATCH_JSON_BYTES).into_iter().map(|json| Stmt::new(sql.clone(), vec![Value::Text(json)])).collect()
    }

    /// How many keys follow `after` (all, when `None`).
    pub fn count_after(&self, after: Option<&[Value]>) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let mut cond = self.not_null("x");
        if let Some(a) = after {
            let vals = Self::bind(&mut params, a);
            cond = format!("{cond} AND {}", Self::cmp(&self.cols("x"), &vals, true));
        }
        (format!("SELECT count(*) FROM {} AS x WHERE {cond}", q(&self.table)), params)
    }

    /// The last key.
    pub fn last_key(&self) -> String {
        format!(
            "SELECT {} FROM {} AS x WHERE {} ORDER BY {} LIMIT 1",
            self.tagged("x"),
            q(&self.table),
            self.not_null("x"),
            self.order("x", true)
        )
    }

    /// The keys in `range`, in order.
    pub fn keys_in(&self, range: &KeyRange) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let mut cond = self.not_null("x");
        if let Some(lo) = &range.lo {
            let vals = Self::bind(&mut params, lo);
            cond = format!("{cond} AND {}", Self::cmp(&self.cols("x"), &vals, true));
        }
        let vals = Self::bind(&mut params, &range.hi);
        cond = format!("{cond} AND {}", Self::cmp(&self.cols("x"), &vals, false));
        (format!("SELECT {} FROM {} AS x WHERE {cond} ORDER BY {}", self.tagged("x"), q(&self.table), self.order("x", false)), params)
    }

    /// A key read by `hops`, `last_key` or `keys_in`.
    pub fn decode(&self, row: Vec<Value>) -> Result<Vec<Value>, String> {
        if row.len() != self.key.len() {
            return Err(format!("a replica key has {} values, expected {}", row.len(), self.key.len()));
        }
        row.into_iter().map(crate::source::sqlite_family::decode_tagged).collect()
    }
}

/// The staging table a full copy fills before it is swapped in. `tmp_` keeps it out of
/// client reads and out of the names a config may target.
pub fn staging_table(config_id: i64) -> String {
    format!("tmp_stage_{config_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(n: &str, a: Affinity) -> Column {
        Column { name: n.into(), source_type: String::new(), affinity: a, nullable: true }
    }

    #[test]
    fn ddl_and_upsert() {
        let cols = [col("id", Affinity::Integer), col("na\"me", Affinity::Text), col("u", Affinity::Any)];
        assert_eq!(create_table("t", &cols, &["id".into()]), r#"CREATE TABLE "t" ("id" INTEGER, "na""me" TEXT, "u", PRIMARY KEY ("id"))"#);
        let sql = upsert_batch("t", &cols, &["id".into()]);
        assert!(sql.starts_with(r#"INSERT INTO "t" ("id", "na""me", "u") SELECT json_extract(batch_row, '$[0]'), json_extract(batch_row, '$[1]'), CASE json_type(batch_row, '$[2]')"#), "{sql}");
        assert!(sql.ends_with(r#"WHERE true ON CONFLICT ("id") DO UPDATE SET "na""me" = excluded."na""me", "u" = excluded."u""#), "{sql}");
        let sql = upsert_batch("t", &cols[..1], &["id".into()]);
        assert!(sql.ends_with(r#"ON CONFLICT ("id") DO NOTHING"#));
    }

    #[test]
    fn replica_keys_hop_count_list_and_delete_exactly() {
        use crate::store::Store;
        let s = crate::test_support::SqliteStore::memory();
        let cols = [col("a", Affinity::Any), col("b", Affinity::Integer), col("v", Affinity::Text)];
        s.execute(&create_table("t", &cols, &["a".into(), "b".into()]), &[]).unwrap();
        // Every storage class in the first key column, integers beyond 2^53, and a NULL key.
        s.execute(
            "INSERT INTO t VALUES (9007199254740993, 1, 'x'), (9007199254740993, 2, 'x'), (-5, 7, 'x'), (2.5, 0, 'x'), \
             ('é', 3, 'x'), ('', 3, 'x'), (x'00ff', 1, 'x'), (NULL, 1, 'null key'), (9223372036854775807, -9223372036854775808, 'x')",
            &[],
        )
        .unwrap();
        let r = ReplicaKeys::new("t", &["a".into(), "b".into()], &cols).unwrap();
        let read = |(sql, params): (String, Vec<Value>)| -> Vec<Vec<Value>> {
            s.query(&sql, &params).unwrap().into_iter().map(|row| r.decode(row).unwrap()).collect()
        };
        let all = read(r.keys_in(&KeyRange { lo: None, hi: vec![Value::Blob(vec![0xff]), Value::Integer(0)] }));
        let want = vec![
            vec![Value::Integer(-5), Value::Integer(7)],
            vec![Value::Real(2.5), Value::Integer(0)],
            vec![Value::Integer(9_007_199_254_740_993), Value::Integer(1)],
            vec![Value::Integer(9_007_199_254_740_993), Value::Integer(2)],
            vec![Value::Integer(i64::MAX), Value::Integer(i64::MIN)],
            vec![Value::text(""), Value::Integer(3)],
            vec![Value::text("é"), Value::Integer(3)],
            vec![Value::Blob(vec![0, 255]), Value::Integer(1)],
        ];
        assert_eq!(all, want, "in the replica's order, the NULL key left out");
        // Every second key, then every third after the first.
        assert_eq!(read(r.hops(None, 2, 100)), [&want[1], &want[3], &want[5], &want[7]].map(|k| k.clone()));
        assert_eq!(read(r.hops(Some(&want[0]), 3, 100)), [want[3].clone(), want[6].clone()]);
        assert_eq!(read(r.hops(Some(&want[0]), 3, 1)), [want[3].clone()]);
        assert!(read(r.hops(Some(&want[7]), 1, 5)).is_empty());
        let (sql, params) = r.count_after(Some(&want[2]));
        assert_eq!(s.query(&sql, &params).unwrap(), [[Value::Integer(5)]]);
        assert_eq!(read((r.last_key(), vec![])), [want[7].clone()]);
        assert_eq!(read(r.keys_in(&KeyRange { lo: Some(want[2].clone()), hi: want[4].clone() })), [want[3].clone(), want[4].clone()]);
        s.transaction(&r.delete_each(&[want[4].clone()])).unwrap();
        assert_eq!(read(r.keys_in(&KeyRange { lo: Some(want[2].clone()), hi: want[5].clone() })), [want[3].clone(), want[5].clone()]);
        assert_eq!(s.query("SELECT count(*) FROM t", &[]).unwrap(), [[Value::Integer(8)]]);
        // The same for many ranges at once, in one statement each.
        // Both spellings read the same; the JSON one says when a REAL key makes it unusable.
        let read_each = |stmts: Vec<EachStmt>| -> Vec<(i64, Vec<Value>)> {
            let mut out = Vec::new();
            for st in stmts {
                let rows: Vec<(i64, Vec<Value>)> = s
                    .query(&st.rows, &st.params)
                    .unwrap()
                    .into_iter()
                    .map(|mut row| {
                        let i = row.remove(0).as_i64().unwrap();
                        (i, r.decode(row).unwrap())
                    })
                    .collect();
                let json = s.query(&st.json, &st.params).unwrap()[0][0].as_str().unwrap().to_string();
                match decode_each_json(&json).unwrap() {
                    Some(j) => assert_eq!(j.into_iter().map(|(i, k)| (i as i64, k)).collect::<Vec<_>>(), rows),
                    None => assert!(rows.iter().any(|(_, k)| k.iter().any(|v| matches!(v, Value::Real(_))))),
                }
                out.extend(rows);
            }
            out
        };
        let los = [want[0].clone(), want[1].clone()];
        assert_eq!(
            read_each(r.hops_after_each(&[(&los[0], 2), (&los[1], 1)], 2)),
            [(0, want[2].clone()), (0, want[5].clone()), (1, want[3].clone())],
            "every second key after each lower bound (want[4] is gone)"
        );
        let ranges = [
            KeyRange { lo: Some(want[0].clone()), hi: want[2].clone() },
            KeyRange { lo: Some(want[2].clone()), hi: want[2].clone() },
            KeyRange { lo: Some(want[5].clone()), hi: want[7].clone() },
        ];
        assert_eq!(
            read_each(r.keys_in_each(&ranges.iter().collect::<Vec<_>>())),
            [(0, want[1].clone()), (0, want[2].clone()), (2, want[6].clone()), (2, want[7].clone())]
        );
        let no_reals = [KeyRange { lo: Some(want[2].clone()), hi: want[7].clone() }];
        assert_eq!(read_each(r.keys_in_each(&no_reals.iter().collect::<Vec<_>>())), [3, 5, 6, 7].map(|i| (0, want[i].clone())));
        s.transaction(&r.delete_each(&[want[1].clone(), want[7].clone(), vec![Value::Integer(1), Value::Integer(1)]])).unwrap();
        assert_eq!(s.query("SELECT count(*) FROM t", &[]).unwrap(), [[Value::Integer(6)]]);
        // A table whose columns take every name of the rowid cannot be walked.
        let shadowing = [col("rowid", Affinity::Text), col("_ROWID_", Affinity::Text), col("oid", Affinity::Text)];
        assert!(ReplicaKeys::new("t", &["rowid".into()], &shadowing).is_none());
    }

    #[test]
    fn rows_split_by_size() {
        let rows: Vec<Vec<Value>> = (0..100).map(|i| vec![Value::Integer(i), Value::text("x".repeat(50))]).collect();
        let parts = encode_rows(&rows, 1000);
        assert!(parts.len() > 5);
        let mut n = 0;
        for p in &parts {
            assert!(p.len() <= 1000);
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            n += v.as_array().unwrap().len();
        }
        assert_eq!(n, 100);
        assert!(encode_rows(&[], 1000).is_empty());
    }
}
