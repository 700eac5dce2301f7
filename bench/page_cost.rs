//! The per-row CPU of turning PostgreSQL pages into the replica's batches, natively, for
//! instruction counts under callgrind (wall time on a shared machine says little):
//!
//!   cargo build --release --example page_cost
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/page_cost MODE ROWS
//!
//! MODE: `read` (rows read from the server, no cell touched), `values` (`fetch_page`: a `Value`
//! per cell, then `jsonb_rows`, the copy's path before the direct one), `direct`
//! (`fetch_batch`: binary values straight into the batch). The difference between two modes'
//! totals, divided by ROWS, is what one path costs per row more than the other. The table is
//! bench/support.mjs's `items`, in a database of its own that is dropped afterwards.
//! Native x86-64, not the worker's wasm: the proportions carry over, the absolute figures do not.

use edge_replica::replica_sql::{jsonb_rows, MAX_BATCH_JSON_BYTES};
use edge_replica::source::postgres::PostgresSource;
use edge_replica::source::{Affinity, Column, PageRequest, Source, TableName};
use edge_replica::value::Value;

use edge_replica::test_support::postgres_client as connect;

const PAGE: usize = 2000;

fn col(name: &str, source_type: &str, affinity: Affinity) -> Column {
    Column { name: name.into(), source_type: source_type.into(), affinity, nullable: true }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("direct", String::as_str).to_string();
    let rows: i64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let db = format!("er_page_cost_{}", std::process::id());
    let admin = connect("test").await;
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.expect("create database");
    let setup = connect(&db).await;
    setup
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(12,2), qty int,
               updated_at timestamptz NOT NULL, payload jsonb);
             INSERT INTO items SELECT g, 'item ' || g, (g % 100000) / 100.0, g % 1000,
               '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 millisecond',
               jsonb_build_object('k', g, 'tag', 't' || (g % 17)) FROM generate_series(1, {rows}) g;"
        ))
        .await
        .expect("seed");
    let columns = [
        col("id", "bigint", Affinity::Integer),
        col("name", "text", Affinity::Text),
        col("price", "numeric(12,2)", Affinity::Text),
        col("qty", "integer", Affinity::Integer),
        col("updated_at", "timestamp with time zone", Affinity::Text),
        col("payload", "jsonb", Affinity::Text),
    ];
    let table = TableName { schema: None, name: "items".into() };
    let mut src = PostgresSource::new(connect(&db).await, "postgres".into());
    let keys_only = setup
        .prepare("SELECT id, name, price::text, qty, updated_at, payload FROM items WHERE id > $1 ORDER BY id LIMIT 2000")
        .await
        .expect("prepare");
    let (mut seen, mut bytes) = (0usize, 0usize);
    let mut after: Option<Vec<Value>> = None;
    loop {
        let page = PageRequest { table: &table, columns: &columns, order: &[0], after: after.as_deref(), from: None, limit: PAGE };
        let (n, last) = match mode.as_str() {
            "values" => {
                let rows = src.fetch_page(&page).await.expect("page");
                bytes += jsonb_rows(&rows, MAX_BATCH_JSON_BYTES).iter().map(Vec::len).sum::<usize>();
                (rows.len(), rows.last().map(|r| vec![r[0].clone()]))
            }
            "direct" => {
                let p = src.fetch_batch(&page, MAX_BATCH_JSON_BYTES).await.expect("page");
                bytes += p.batches.iter().map(Vec::len).sum::<usize>();
                (p.rows, p.last.map(|r| vec![r[0].clone()]))
            }
            // The same rows, only the key read from each.
            _ => {
                let key = after.as_ref().map_or(0, |a| a[0].as_i64().unwrap_or(0));
                let r = setup.query(&keys_only, &[&key]).await.expect("page");
                (r.len(), r.last().map(|r| vec![Value::Integer(r.get::<_, i64>(0))]))
            }
        };
        seen += n;
        after = last;
        if n < PAGE {
            break;
        }
    }
    drop(src);
    drop(setup);
    admin.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await.expect("drop database");
    println!("{mode}: {seen} rows, {bytes} bytes of batches");
}
