//! SQL for the replica's own tables, as pure functions of names and columns.

use crate::ident::quote_double as q;
use crate::source::{Affinity, Column};
use crate::value::Value;

/// Batches are split into JSON texts of at most this many bytes: DO SQLite limits one
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

/// Reads cell `i` of a row array produced by `encode_rows`: blobs arrive as `{"x": hex}`.
/// Only columns that can hold a blob pay for the type test: it costs a second JSON lookup
/// per cell, which is most of the statement's work on wide tables.
fn cell_expr(i: usize, affinity: Affinity) -> String {
    match affinity {
        Affinity::Blob | Affinity::Any => format!(
            "CASE json_type(value, '$[{i}]') WHEN 'object' THEN unhex(json_extract(value, '$[{i}].x')) ELSE json_extract(value, '$[{i}]') END"
        ),
        Affinity::Integer | Affinity::Real | Affinity::Text => format!("json_extract(value, '$[{i}]')"),
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
    format!("INSERT INTO {} ({}) SELECT {} FROM json_each(?1) WHERE true {conflict}", q(table), names.join(", "), cells.join(", "))
}

/// One statement that deletes every key of a JSON array of key arrays (`?1`), encoded as
/// `encode_rows` encodes rows, `key` being the key columns in key order.
pub fn delete_batch(table: &str, key: &[Column]) -> String {
    let names: Vec<String> = key.iter().map(|c| q(&c.name)).collect();
    let cells: Vec<String> = key.iter().enumerate().map(|(i, c)| cell_expr(i, c.affinity)).collect();
    format!("DELETE FROM {} WHERE ({}) IN (SELECT {} FROM json_each(?1))", q(table), names.join(", "), cells.join(", "))
}

/// Encodes rows as JSON arrays of row arrays, split so that no text exceeds `max_bytes`.
pub fn encode_rows(rows: &[Vec<Value>], max_bytes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::from("[");
    let mut row_buf = String::new();
    for row in rows {
        row_buf.clear();
        row_buf.push('[');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                row_buf.push(',');
            }
            v.write_json_cell(&mut row_buf);
        }
        row_buf.push(']');
        if cur.len() > 1 && cur.len() + row_buf.len() + 2 > max_bytes {
            cur.push(']');
            out.push(std::mem::replace(&mut cur, String::from("[")));
        }
        if cur.len() > 1 {
            cur.push(',');
        }
        cur.push_str(&row_buf);
    }
    if cur.len() > 1 {
        cur.push(']');
        out.push(cur);
    }
    out
}

/// The column, if any, where a row carries a blob that its column's expression in
/// `upsert_batch` would store as JSON text: a source contradicting its own schema.
pub fn misplaced_blob<'c>(rows: &[Vec<Value>], columns: &'c [Column]) -> Option<&'c Column> {
    let plain: Vec<usize> =
        columns.iter().enumerate().filter(|(_, c)| !matches!(c.affinity, Affinity::Blob | Affinity::Any)).map(|(i, _)| i).collect();
    rows.iter().find_map(|r| plain.iter().find(|&&i| matches!(r[i], Value::Blob(_))).map(|&i| &columns[i]))
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
        assert!(sql.starts_with(r#"INSERT INTO "t" ("id", "na""me", "u") SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), CASE json_type(value, '$[2]')"#), "{sql}");
        assert!(sql.ends_with(r#"WHERE true ON CONFLICT ("id") DO UPDATE SET "na""me" = excluded."na""me", "u" = excluded."u""#), "{sql}");
        let sql = upsert_batch("t", &cols[..1], &["id".into()]);
        assert!(sql.ends_with(r#"ON CONFLICT ("id") DO NOTHING"#));
    }

    #[test]
    fn blobs_only_where_a_blob_can_go() {
        let cols = [col("t", Affinity::Text), col("b", Affinity::Blob)];
        assert_eq!(misplaced_blob(&[vec![Value::text("x"), Value::Blob(vec![1])]], &cols), None);
        assert_eq!(misplaced_blob(&[vec![Value::Blob(vec![1]), Value::Null]], &cols).map(|c| c.name.as_str()), Some("t"));
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
