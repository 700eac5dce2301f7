//! SQL that differs between origins, as trait methods rather than if-chains on names, and the
//! one keyset page builder that all of them share.

use super::{Column, PageRequest, TableName};
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
