//! SQL that differs between origins, as trait methods rather than if-chains on names, and the
//! one keyset page builder that all of them share.

use super::{Column, KeyRange, PageRequest, TableName};
use crate::value::Value;

pub trait Dialect {
    fn quote(&self, ident: &str) -> String;
    /// Placeholder for the `n`-th bound parameter (1-based).
    fn placeholder(&self, n: usize) -> String;
    /// Whether one placeholder may be referenced twice (`$1 ... $1`); if not, values repeat.
    fn reuses_placeholders(&self) -> bool;
    /// The expression selected for `column`, e.g. a cast to text for exact numerics.
    fn select_expr(&self, column: &Column) -> String {
        self.quote(&column.name)
    }
    /// A bound parameter compared against `column`: e.g. `CAST($1::text AS timestamptz)`.
    fn param_expr(&self, column: &Column, placeholder: &str) -> String {
        let _ = column;
        placeholder.to_string()
    }
    fn table_ref(&self, table: &TableName) -> String {
        match &table.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&table.name)),
            None => self.quote(&table.name),
        }
    }

    // ---- delete reconciliation (`count_queries`, `absent_queries`) ----

    /// A key column (`quoted`: its reference, maybe qualified) as key ranges are counted: in the
    /// replica's order, which is SQLite's (numbers by value, text and blobs by their bytes), so
    /// that a range holds the same keys on both sides.
    fn range_column(&self, column: &Column, quoted: &str) -> String {
        let _ = column;
        quoted.to_string()
    }
    /// A key value bound for comparison with `range_column`: the expression around the
    /// placeholder, and the value that travels.
    fn range_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        (self.param_expr(column, placeholder), value.clone())
    }
    /// A key value bound for an equality test with the column itself, which decides by the
    /// origin's own equality (its collation): `absent_queries`.
    fn eq_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        (self.param_expr(column, placeholder), value.clone())
    }
    /// Whether `range_column` is the column in its index's order, so that counting a range is an
    /// index range scan. Otherwise a count request is one scan of the table.
    fn range_indexed(&self, column: &Column) -> bool {
        let _ = column;
        true
    }
    /// The most parameters one statement may carry.
    fn max_params(&self) -> usize {
        100
    }
    /// Whether many ranges or keys travel as one `VALUES` list that the table is probed from
    /// (PostgreSQL, which plans each branch of a `UNION ALL` on its own: 1,000 range counts took
    /// 1.8 s as branches, 0.1 s as a list; D1 and Durable Object SQLite, which refuse a `UNION`
    /// of more than a few `SELECT`s). Otherwise each is a `UNION ALL` branch with its own
    /// constant parameters (MySQL and MariaDB scan the table for a range that depends on another
    /// table's row; a list's values would also lose their types there).
    fn values_lists(&self) -> bool {
        false
    }
    /// Whether a list travels as one text array parameter per column (PostgreSQL; see
    /// `rows_table`). The dialect's bind expressions must then depend on the column only.
    fn array_params(&self) -> bool {
        false
    }
    /// What a `SELECT` of constants needs before its `WHERE` (MySQL: ` FROM DUAL`).
    fn dual_table(&self) -> &'static str {
        ""
    }
}

/// A statement and the values for its placeholders, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltQuery {
    pub sql: String,
    pub params: Vec<Value>,
}

struct Params<'d> {
    dialect: &'d dyn Dialect,
    values: Vec<Value>,
    /// (index into keyset values, placeholder) for dialects that reuse placeholders.
    assigned: Vec<Option<String>>,
}

impl Params<'_> {
    fn bind(&mut self, slot: usize, v: &Value) -> String {
        if self.dialect.reuses_placeholders() {
            if let Some(p) = &self.assigned[slot] {
                return p.clone();
            }
        }
        self.values.push(v.clone());
        let p = self.dialect.placeholder(self.values.len());
        self.assigned[slot] = Some(p.clone());
        p
    }
}

/// `SELECT cols FROM t WHERE <keyset> ORDER BY keyset LIMIT n`.
///
/// The keyset predicate is written as `a >= ? AND (a > ? OR (b >= ? AND (b > ? OR c > ?)))`:
/// equivalent to the row comparison `(a,b,c) > (?,?,?)`, but its leading `a >= ?` gives every
/// planner (MySQL and MariaDB included, which do not range-scan row comparisons) an index range.
pub fn page_query(d: &dyn Dialect, page: &PageRequest<'_>) -> BuiltQuery {
    let cols: Vec<String> = page.columns.iter().map(|c| d.select_expr(c)).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), d.table_ref(page.table));
    let mut params = Params { dialect: d, values: Vec::new(), assigned: vec![None; page.order.len() + 1] };
    let order_cols: Vec<&Column> = page.order.iter().map(|&i| &page.columns[i]).collect();
    let mut conds: Vec<String> = Vec::new();
    // NULLs never satisfy a comparison, so a nullable first keyset column (the cursor) must be
    // excluded explicitly when scanning from the start, or the NULL rows would sort first in
    // PostgreSQL's ORDER BY and be copied once but never again.
    if let Some(first) = order_cols.first() {
        if page.after.is_none() && page.from.is_none() && first.nullable {
            conds.push(format!("{} IS NOT NULL", d.quote(&first.name)));
        }
    }
    if let Some(after) = page.after {
        conds.push(keyset_after(d, &mut params, &order_cols, after, 0));
    } else if let Some(from) = page.from {
        let c = order_cols[0];
        let p = params.bind(page.order.len(), from);
        conds.push(format!("{} >= {}", d.quote(&c.name), d.param_expr(c, &p)));
    }
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    let order: Vec<String> = order_cols.iter().map(|c| d.quote(&c.name)).collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT {}", order.join(", "), page.limit));
    BuiltQuery { sql, params: params.values }
}

/// A `SELECT` that counts the origin's rows in some of the key ranges: rows `(i, count)` with
/// `i` the range's index in the request, for the ranges whose count differs from the replica's
/// or (a scan) for every range that has rows.
#[derive(Debug, Clone, PartialEq)]
pub struct CountQuery {
    pub query: BuiltQuery,
    /// The ranges it covers: `first..first + len`.
    pub first: usize,
    pub len: usize,
    /// Ranges missing from the answer have the replica's count (index range counts answer only
    /// the differing ones); otherwise none (a scan answers every range that has rows).
    pub differing_only: bool,
}

impl CountQuery {
    /// `(index, origin count)` of the covered ranges whose count is not `rows[index]`.
    pub fn differing(&self, answer: &[Vec<Value>], rows: &[u64]) -> Result<Vec<(usize, u64)>, String> {
        let mut counts: Vec<u64> = if self.differing_only { rows[self.first..self.first + self.len].to_vec() } else { vec![0; self.len] };
        for r in answer {
            let (Some(i), Some(c)) = (r.first().and_then(Value::as_i64), r.get(1).and_then(Value::as_i64)) else {
                return Err(format!("a range count came back as {r:?}"));
            };
            let k = usize::try_from(i).ok().filter(|&i| i >= self.first && i < self.first + self.len);
            let k = k.ok_or_else(|| format!("a range count names range {i}, which was not asked for"))?;
            counts[k - self.first] = u64::try_from(c).unwrap_or(0);
        }
        Ok(counts.into_iter().enumerate().map(|(k, c)| (self.first + k, c)).filter(|&(i, c)| c != rows[i]).collect())
    }
}

/// Binds values in the order their placeholders appear in the text.
struct Binder<'d> {
    d: &'d dyn Dialect,
    values: Vec<Value>,
}

impl Binder<'_> {
    fn push(&mut self, bind: impl FnOnce(&str) -> (String, Value)) -> String {
        let ph = self.d.placeholder(self.values.len() + 1);
        let (expr, v) = bind(&ph);
        self.values.push(v);
        expr
    }
    fn range(&mut self, c: &Column, v: &Value) -> String {
        let d = self.d;
        self.push(|ph| d.range_bind(c, v, ph))
    }
    fn eq(&mut self, c: &Column, v: &Value) -> String {
        let d = self.d;
        self.push(|ph| d.eq_bind(c, v, ph))
    }
}

/// `(a, b) > (x, y)` (or `<=`, ...) written out column by column, as `page_query` does, so that
/// every planner gets an index range on the first column: `a >= x AND (a > x OR (b > y))`.
/// `val(i)` is called once per use, in text order, so that it may bind a parameter each time.
fn tuple_cmp(cols: &[String], val: &mut dyn FnMut(usize) -> String, greater: bool, inclusive: bool) -> String {
    fn go(cols: &[String], val: &mut dyn FnMut(usize) -> String, i: usize, greater: bool, inclusive: bool) -> String {
        let (strict, loose) = if greater { (">", ">=") } else { ("<", "<=") };
        let c = &cols[i];
        if i + 1 == cols.len() {
            let v = val(i);
            return format!("{c} {} {v}", if inclusive { loose } else { strict });
        }
        let a = val(i);
        let b = val(i);
        let rest = go(cols, val, i + 1, greater, inclusive);
        format!("{c} {loose} {a} AND ({c} {strict} {b} OR ({rest}))")
    }
    go(cols, val, 0, greater, inclusive)
}

/// `lo < key AND key <= hi` for one range, with its bounds bound as parameters.
fn range_pred(b: &mut Binder<'_>, key: &[Column], cols: &[String], range: &KeyRange) -> String {
    let hi = |b: &mut Binder<'_>| tuple_cmp(cols, &mut |i| b.range(&key[i], &range.hi[i]), false, true);
    match &range.lo {
        Some(lo) => {
            let gt = tuple_cmp(cols, &mut |i| b.range(&key[i], &lo[i]), true, false);
            format!("{gt} AND {}", hi(b))
        }
        None => hi(b),
    }
}

/// The queries that count the origin's rows in `ranges` (`rows[i]`: the replica's count),
/// as many per statement as the dialect's parameter limit allows.
///
/// - Key columns the origin compares as the replica orders them, in an index (integers, most
///   types): one index range count per range, and only the differing ones come back.
/// - Otherwise (text under a collation other than bytes): one scan of the table per statement,
///   each row placed in its range by a binary search written as nested `CASE`s, and the
///   count of every range that has rows comes back.
pub fn count_queries(d: &dyn Dialect, table: &TableName, key: &[Column], ranges: &[KeyRange], rows: &[u64]) -> Vec<CountQuery> {
    let k = key.len().max(1);
    let indexed = key.iter().all(|c| d.range_indexed(c));
    let per_range = if !indexed {
        3 * (2 * k - 1)
    } else if d.values_lists() {
        2 * k
    } else {
        2 * (2 * k - 1)
    };
    let chunk = (d.max_params() / per_range).max(1);
    let mut out = Vec::new();
    let mut first = 0;
    while first < ranges.len() {
        let end = (first + chunk).min(ranges.len());
        let query = if !indexed {
            scan_counts(d, table, key, ranges, first, end)
        } else if d.values_lists() {
            listed_counts(d, table, key, ranges, rows, first, end)
        } else {
            branch_counts(d, table, key, ranges, rows, first, end)
        };
        out.push(CountQuery { query, first, len: end - first, differing_only: indexed });
        first = end;
    }
    out
}

fn key_refs(d: &dyn Dialect, key: &[Column]) -> Vec<String> {
    key.iter().map(|c| d.range_column(c, &d.quote(&c.name))).collect()
}

/// One `UNION ALL` branch per range, each counting with its own constant bounds.
fn branch_counts(
    d: &dyn Dialect,
    table: &TableName,
    key: &[Column],
    ranges: &[KeyRange],
    rows: &[u64],
    first: usize,
    end: usize,
) -> BuiltQuery {
    let mut b = Binder { d, values: Vec::new() };
    let cols = key_refs(d, key);
    let t = d.table_ref(table);
    let branches: Vec<String> = (first..end)
        .map(|i| {
            let pred = range_pred(&mut b, key, &cols, &ranges[i]);
            format!("SELECT {i} AS i, {} AS n, (SELECT count(*) FROM {t} WHERE {pred}) AS c", rows[i])
        })
        .collect();
    BuiltQuery { sql: format!("SELECT i, c FROM ({}) x WHERE c <> n", branches.join(" UNION ALL ")), params: b.values }
}

/// One `VALUES` list of ranges, each counted by a correlated index range count. Ranges open
/// below (the first of a pass) do not fit the list's shape and go in a branch of their own.
fn listed_counts(
    d: &dyn Dialect,
    table: &TableName,
    key: &[Column],
    ranges: &[KeyRange],
    rows: &[u64],
    first: usize,
    end: usize,
) -> BuiltQuery {
    let (open, bounded): (Vec<usize>, Vec<usize>) = (first..end).partition(|&i| ranges[i].lo.is_none());
    let mut parts = Vec::new();
    let mut b = Binder { d, values: Vec::new() };
    if !bounded.is_empty() {
        // The table's columns unqualified: the subquery's own table comes first in scope, and
        // sqlparser (the guard of an edge-replica origin) cannot parse `t.col COLLATE x`.
        let t = d.table_ref(table);
        let cols = key_refs(d, key);
        let list: Vec<Vec<Cell<'_>>> = bounded
            .iter()
            .map(|&i| {
                let r = &ranges[i];
                let mut cells = vec![Cell::Int(i as u64), Cell::Int(rows[i])];
                cells.extend(key.iter().zip(r.lo.as_deref().unwrap_or_default()).map(|(c, v)| Cell::Range(c, v)));
                cells.extend(key.iter().zip(&r.hi).map(|(c, v)| Cell::Range(c, v)));
                cells
            })
            .collect();
        let names: Vec<String> = ["i".to_string(), "n".to_string()]
            .into_iter()
            .chain((0..key.len()).map(|j| format!("lo{j}")))
            .chain((0..key.len()).map(|j| format!("hi{j}")))
            .collect();
        let gt = tuple_cmp(&cols, &mut |j| format!("_er_v.lo{j}"), true, false);
        let le = tuple_cmp(&cols, &mut |j| format!("_er_v.hi{j}"), false, true);
        parts.push(format!(
            "SELECT x.i, x.c FROM (SELECT _er_v.i, _er_v.n, (SELECT count(*) FROM {t} WHERE {gt} AND {le}) AS c FROM {}) x WHERE x.c <> x.n",
            rows_table(&mut b, &list, &names)
        ));
    }
    if !open.is_empty() {
        let cols = key_refs(d, key);
        let t = d.table_ref(table);
        for i in open {
            let pred = range_pred(&mut b, key, &cols, &ranges[i]);
            parts.push(format!(
                "SELECT y.i, y.c FROM (SELECT {i} AS i, {} AS n, (SELECT count(*) FROM {t} WHERE {pred}) AS c) y WHERE y.c <> y.n",
                rows[i]
            ));
        }
    }
    BuiltQuery { sql: parts.join(" UNION ALL "), params: b.values }
}

/// One cell of a list of rows (`rows_table`).
enum Cell<'a> {
    /// One of our own small numbers (an index, a count): written into the SQL.
    Int(u64),
    /// A key value bound as `Dialect::range_bind` binds it.
    Range(&'a Column, &'a Value),
    /// A key value bound as `Dialect::eq_bind` binds it.
    Eq(&'a Column, &'a Value),
}

/// A list of rows with named columns, as a derived table `_er_v`:
/// - `(SELECT column1 AS a, column2 AS b FROM (VALUES (..), (..)) AS _er_vv) AS _er_v`, spelt so
///   that PostgreSQL and SQLite both read it (SQLite has no column list after a derived table's
///   alias; both name a list's columns `column1`, ...);
/// - with `Dialect::array_params`, one text array parameter per column, unnested and turned back
///   into each column's values by the same expressions a single parameter gets (`CAST(x::text
///   AS bigint)`): PostgreSQL then parses one array instead of thousands of parameters (each
///   also costs 4 bytes of the answer's parameter description).
fn rows_table(b: &mut Binder<'_>, rows: &[Vec<Cell<'_>>], names: &[String]) -> String {
    let d = b.d;
    if !d.array_params() {
        let list: Vec<String> = rows
            .iter()
            .map(|r| {
                let cells: Vec<String> = r
                    .iter()
                    .map(|c| match c {
                        Cell::Int(n) => n.to_string(),
                        Cell::Range(col, v) => b.range(col, v),
                        Cell::Eq(col, v) => b.eq(col, v),
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let cols: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("column{} AS {n}", i + 1)).collect();
        return format!("(SELECT {} FROM (VALUES {}) AS _er_vv) AS _er_v", cols.join(", "), list.join(", "));
    }
    let mut arrays = Vec::with_capacity(names.len());
    let mut cols = Vec::with_capacity(names.len());
    for (j, name) in names.iter().enumerate() {
        let src = format!("_er_vv.c{j}");
        let mut expr = format!("CAST({src} AS bigint)");
        let mut elements = Vec::with_capacity(rows.len());
        for r in rows {
            let text = match &r[j] {
                Cell::Int(n) => Some(n.to_string()),
                Cell::Range(col, v) | Cell::Eq(col, v) => {
                    let (e, p) = match &r[j] {
                        Cell::Range(..) => d.range_bind(col, v, &src),
                        _ => d.eq_bind(col, v, &src),
                    };
                    expr = e;
                    p.display_text()
                }
            };
            elements.push(text);
        }
        let ph = b.push(|ph| (format!("CAST({ph}::text AS text[])"), Value::Text(array_literal(&elements))));
        arrays.push(ph);
        cols.push(format!("{expr} AS {name}"));
    }
    let aliases: Vec<String> = (0..names.len()).map(|j| format!("c{j}")).collect();
    format!("(SELECT {} FROM unnest({}) AS _er_vv({})) AS _er_v", cols.join(", "), arrays.join(", "), aliases.join(", "))
}

/// A PostgreSQL text array literal: every element quoted, `"` and `\` escaped; `None` is NULL.
fn array_literal(elements: &[Option<String>]) -> String {
    let mut out = String::from("{");
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match e {
            None => out.push_str("NULL"),
            Some(t) => {
                out.push('"');
                for ch in t.chars() {
                    if ch == '"' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// One scan: each row's range found by a binary search over the (sorted, disjoint) ranges.
fn scan_counts(d: &dyn Dialect, table: &TableName, key: &[Column], ranges: &[KeyRange], first: usize, end: usize) -> BuiltQuery {
    fn bucket(b: &mut Binder<'_>, key: &[Column], cols: &[String], ranges: &[KeyRange], l: usize, r: usize) -> String {
        if r - l == 1 {
            let pred = range_pred(b, key, cols, &ranges[l]);
            return format!("CASE WHEN {pred} THEN {l} END");
        }
        let mid = (l + r) / 2;
        let below = tuple_cmp(cols, &mut |i| b.range(&key[i], &ranges[mid - 1].hi[i]), false, true);
        let left = bucket(b, key, cols, ranges, l, mid);
        let right = bucket(b, key, cols, ranges, mid, r);
        format!("CASE WHEN {below} THEN {left} ELSE {right} END")
    }
    let mut b = Binder { d, values: Vec::new() };
    let cols = key_refs(d, key);
    let expr = bucket(&mut b, key, &cols, ranges, first, end);
    BuiltQuery {
        sql: format!("SELECT b, count(*) FROM (SELECT {expr} AS b FROM {}) x WHERE b IS NOT NULL GROUP BY b", d.table_ref(table)),
        params: b.values,
    }
}

/// The queries that ask the origin which of `keys` it has no row for, deciding by its own
/// equality; each answers the indices (into `keys`) of the absent ones. Keys holding a NULL
/// (which equals nothing) are never asked about, so never reported absent.
pub fn absent_queries(d: &dyn Dialect, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Vec<BuiltQuery> {
    let asked: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].len() == key.len() && keys[i].iter().all(|v| *v != Value::Null)).collect();
    let chunk = (d.max_params() / key.len().max(1)).max(1);
    let t = d.table_ref(table);
    asked
        .chunks(chunk)
        .map(|part| {
            let mut b = Binder { d, values: Vec::new() };
            let sql = if d.values_lists() {
                let list: Vec<Vec<Cell<'_>>> = part
                    .iter()
                    .map(|&i| std::iter::once(Cell::Int(i as u64)).chain(key.iter().zip(&keys[i]).map(|(c, v)| Cell::Eq(c, v))).collect())
                    .collect();
                let names: Vec<String> = std::iter::once("i".to_string()).chain((0..key.len()).map(|j| format!("k{j}"))).collect();
                let eq: Vec<String> = key.iter().enumerate().map(|(j, c)| format!("{} = _er_v.k{j}", d.quote(&c.name))).collect();
                format!(
                    "SELECT _er_v.i FROM {} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {})",
                    rows_table(&mut b, &list, &names),
                    eq.join(" AND ")
                )
            } else {
                let branches: Vec<String> = part
                    .iter()
                    .map(|&i| {
                        let eq: Vec<String> =
                            key.iter().zip(&keys[i]).map(|(c, v)| format!("{} = {}", d.quote(&c.name), b.eq(c, v))).collect();
                        format!("SELECT {i} AS i{} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {})", d.dual_table(), eq.join(" AND "))
                    })
                    .collect();
                branches.join(" UNION ALL ")
            };
            BuiltQuery { sql, params: b.values }
        })
        .collect()
}

/// The indices an answer of `absent_queries` names, checked against the keys asked about.
pub fn absent_answer(answer: &[Vec<Value>], asked: usize) -> Result<Vec<usize>, String> {
    answer
        .iter()
        .map(|r| {
            r.first()
                .and_then(Value::as_i64)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < asked)
                .ok_or_else(|| format!("the origin answered {r:?} for an absent key"))
        })
        .collect()
}

fn keyset_after(d: &dyn Dialect, p: &mut Params<'_>, cols: &[&Column], vals: &[Value], i: usize) -> String {
    let c = cols[i];
    let name = d.quote(&c.name);
    if i + 1 == cols.len() {
        let ph = p.bind(i, &vals[i]);
        return format!("{name} > {}", d.param_expr(c, &ph));
    }
    // Bound twice, in text order: dialects without placeholder reuse need the value twice.
    let ge = d.param_expr(c, &p.bind(i, &vals[i]));
    let gt = d.param_expr(c, &p.bind(i, &vals[i]));
    let inner = keyset_after(d, p, cols, vals, i + 1);
    format!("{name} >= {ge} AND ({name} > {gt} OR ({inner}))")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Affinity;

    struct Pg;
    impl Dialect for Pg {
        fn quote(&self, i: &str) -> String {
            crate::ident::quote_double(i)
        }
        fn placeholder(&self, n: usize) -> String {
            format!("${n}")
        }
        fn reuses_placeholders(&self) -> bool {
            true
        }
    }
    struct My;
    impl Dialect for My {
        fn quote(&self, i: &str) -> String {
            crate::ident::quote_backtick(i)
        }
        fn placeholder(&self, _: usize) -> String {
            "?".into()
        }
        fn reuses_placeholders(&self) -> bool {
            false
        }
    }

    fn col(n: &str, nullable: bool) -> Column {
        Column { name: n.into(), source_type: "int".into(), affinity: Affinity::Integer, nullable }
    }

    #[test]
    fn keyset_with_reused_placeholders() {
        let t = TableName { schema: Some("s".into()), name: "t".into() };
        let cols = [col("id", false), col("ts", true), col("v", true)];
        let after = [Value::Integer(7), Value::Integer(3)];
        let q = page_query(&Pg, &PageRequest { table: &t, columns: &cols, order: &[1, 0], after: Some(&after), from: None, limit: 10 });
        assert_eq!(
            q.sql,
            r#"SELECT "id", "ts", "v" FROM "s"."t" WHERE "ts" >= $1 AND ("ts" > $1 OR ("id" > $2)) ORDER BY "ts", "id" LIMIT 10"#
        );
        assert_eq!(q.params, vec![Value::Integer(7), Value::Integer(3)]);
    }

    #[test]
    fn keyset_without_reuse_repeats_values() {
        let t = TableName { schema: None, name: "t".into() };
        let cols = [col("a", false), col("b", false), col("c", false)];
        let after = [Value::Integer(1), Value::Integer(2), Value::Integer(3)];
        let q = page_query(&My, &PageRequest { table: &t, columns: &cols, order: &[0, 1, 2], after: Some(&after), from: None, limit: 5 });
        assert_eq!(
            q.sql,
            "SELECT `a`, `b`, `c` FROM `t` WHERE `a` >= ? AND (`a` > ? OR (`b` >= ? AND (`b` > ? OR (`c` > ?)))) ORDER BY `a`, `b`, `c` LIMIT 5"
        );
        assert_eq!(q.params.len(), 5);
        assert_eq!(q.params[1], Value::Integer(1));
        assert_eq!(q.params[4], Value::Integer(3));
    }

    /// `Pg` with the list forms and a text column compared by bytes.
    struct PgList;
    impl Dialect for PgList {
        fn quote(&self, i: &str) -> String {
            Pg.quote(i)
        }
        fn placeholder(&self, n: usize) -> String {
            Pg.placeholder(n)
        }
        fn reuses_placeholders(&self) -> bool {
            true
        }
        fn range_column(&self, c: &Column, quoted: &str) -> String {
            if c.affinity == Affinity::Text {
                format!("{quoted} COLLATE \"C\"")
            } else {
                quoted.to_string()
            }
        }
        fn range_indexed(&self, c: &Column) -> bool {
            c.affinity != Affinity::Text
        }
        fn values_lists(&self) -> bool {
            true
        }
    }

    fn int(i: i64) -> Value {
        Value::Integer(i)
    }

    fn ranges(bounds: &[Option<i64>]) -> Vec<KeyRange> {
        bounds.windows(2).map(|w| KeyRange { lo: w[0].map(|v| vec![int(v)]), hi: vec![int(w[1].unwrap())] }).collect()
    }

    #[test]
    fn range_counts_as_union_branches_answer_only_the_differing() {
        let t = TableName { schema: None, name: "t".into() };
        let key = [col("a", false), col("b", false)];
        let r = [KeyRange { lo: None, hi: vec![int(1), int(2)] }, KeyRange { lo: Some(vec![int(1), int(2)]), hi: vec![int(3), int(4)] }];
        let qs = count_queries(&My, &t, &key, &r, &[5, 6]);
        assert_eq!(qs.len(), 1);
        assert_eq!(
            qs[0].query.sql,
            "SELECT i, c FROM (SELECT 0 AS i, 5 AS n, (SELECT count(*) FROM `t` WHERE `a` <= ? AND (`a` < ? OR (`b` <= ?))) AS c \
             UNION ALL SELECT 1 AS i, 6 AS n, (SELECT count(*) FROM `t` WHERE `a` >= ? AND (`a` > ? OR (`b` > ?)) AND `a` <= ? AND (`a` < ? OR (`b` <= ?))) AS c) x WHERE c <> n"
        );
        assert_eq!(qs[0].query.params, [1, 1, 2, 1, 1, 2, 3, 3, 4].map(int));
        // The answer: only range 1 differs.
        assert_eq!(qs[0].differing(&[vec![int(1), int(2)]], &[5, 6]), Ok(vec![(1, 2)]));
        assert!(qs[0].differing(&[vec![int(7), int(2)]], &[5, 6]).is_err(), "a range that was not asked for");
        // 100 parameters: 16 two-column ranges (3 + 3 values each) per statement.
        let many = vec![r[1].clone(); 40];
        let qs = count_queries(&My, &t, &key, &many, &[1; 40]);
        assert_eq!(qs.iter().map(|q| (q.first, q.len)).collect::<Vec<_>>(), [(0, 16), (16, 16), (32, 8)]);
        assert!(qs.iter().all(|q| q.query.params.len() <= 100));
    }

    #[test]
    fn range_counts_as_a_values_list_and_as_one_scan() {
        let t = TableName { schema: Some("s".into()), name: "t".into() };
        let key = [col("id", false)];
        let r = ranges(&[None, Some(10), Some(20), Some(30)]);
        let qs = count_queries(&PgList, &t, &key, &r, &[10, 10, 9]);
        assert_eq!(
            qs[0].query.sql,
            "SELECT x.i, x.c FROM (SELECT _er_v.i, _er_v.n, (SELECT count(*) FROM \"s\".\"t\" WHERE \"id\" > _er_v.lo0 AND \"id\" <= _er_v.hi0) AS c \
             FROM (SELECT column1 AS i, column2 AS n, column3 AS lo0, column4 AS hi0 FROM (VALUES (1, 10, $1, $2), (2, 9, $3, $4)) AS _er_vv) AS _er_v) x \
             WHERE x.c <> x.n \
             UNION ALL SELECT y.i, y.c FROM (SELECT 0 AS i, 10 AS n, (SELECT count(*) FROM \"s\".\"t\" WHERE \"id\" <= $5) AS c) y WHERE y.c <> y.n"
        );
        assert_eq!(qs[0].query.params, [10, 20, 20, 30, 10].map(int));
        // A text key the origin orders otherwise: one scan, each row placed by binary search.
        let key = [Column { affinity: Affinity::Text, ..col("k", false) }];
        let qs = count_queries(&PgList, &t, &key, &r, &[10, 10, 9]);
        assert_eq!(
            qs[0].query.sql,
            "SELECT b, count(*) FROM (SELECT CASE WHEN \"k\" COLLATE \"C\" <= $1 THEN CASE WHEN \"k\" COLLATE \"C\" <= $2 THEN 0 END \
             ELSE CASE WHEN \"k\" COLLATE \"C\" <= $3 THEN CASE WHEN \"k\" COLLATE \"C\" > $4 AND \"k\" COLLATE \"C\" <= $5 THEN 1 END \
             ELSE CASE WHEN \"k\" COLLATE \"C\" > $6 AND \"k\" COLLATE \"C\" <= $7 THEN 2 END END END AS b FROM \"s\".\"t\") x WHERE b IS NOT NULL GROUP BY b"
        );
        assert_eq!(qs[0].query.params, [10, 10, 20, 10, 20, 20, 30].map(int));
        // Every range with rows comes back; the missing one counts 0.
        assert_eq!(qs[0].differing(&[vec![int(0), int(10)], vec![int(2), int(3)]], &[10, 10, 9]), Ok(vec![(1, 0), (2, 3)]));
    }

    #[test]
    fn absent_keys_per_branch_or_from_a_list_and_never_null() {
        let t = TableName { schema: None, name: "t".into() };
        let key = [col("a", false), col("b", false)];
        let keys = vec![vec![int(1), int(2)], vec![int(3), Value::Null], vec![int(5), int(6)]];
        let qs = absent_queries(&My, &t, &key, &keys);
        assert_eq!(
            qs[0].sql,
            "SELECT 0 AS i WHERE NOT EXISTS (SELECT 1 FROM `t` WHERE `a` = ? AND `b` = ?) UNION ALL \
             SELECT 2 AS i WHERE NOT EXISTS (SELECT 1 FROM `t` WHERE `a` = ? AND `b` = ?)"
        );
        assert_eq!(qs[0].params, [1, 2, 5, 6].map(int));
        let qs = absent_queries(&PgList, &t, &key, &keys);
        assert_eq!(
            qs[0].sql,
            "SELECT _er_v.i FROM (SELECT column1 AS i, column2 AS k0, column3 AS k1 FROM (VALUES (0, $1, $2), (2, $3, $4)) AS _er_vv) AS _er_v \
             WHERE NOT EXISTS (SELECT 1 FROM \"t\" WHERE \"a\" = _er_v.k0 AND \"b\" = _er_v.k1)"
        );
        assert_eq!(absent_answer(&[vec![int(2)]], 3), Ok(vec![2]));
        assert!(absent_answer(&[vec![int(3)]], 3).is_err());
        // 100 parameters: 50 two-column keys per statement.
        assert_eq!(absent_queries(&My, &t, &key, &vec![vec![int(1), int(2)]; 120]).len(), 3);
    }

    #[test]
    fn first_page_skips_null_cursor_and_from_is_inclusive() {
        let t = TableName { schema: None, name: "t".into() };
        let cols = [col("id", false), col("ts", true)];
        let q = page_query(&Pg, &PageRequest { table: &t, columns: &cols, order: &[1, 0], after: None, from: None, limit: 2 });
        assert_eq!(q.sql, r#"SELECT "id", "ts" FROM "t" WHERE "ts" IS NOT NULL ORDER BY "ts", "id" LIMIT 2"#);
        let from = Value::Integer(5);
        let q = page_query(&Pg, &PageRequest { table: &t, columns: &cols, order: &[1, 0], after: None, from: Some(&from), limit: 2 });
        assert_eq!(q.sql, r#"SELECT "id", "ts" FROM "t" WHERE "ts" >= $1 ORDER BY "ts", "id" LIMIT 2"#);
    }
}
