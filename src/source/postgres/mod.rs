//! PostgreSQL as an origin, over a `tokio_postgres::Client` whose connection the caller opened
//! (a Workers socket in production, a tokio TCP stream in tests).
//!
//! Values arrive in the binary wire format and are decoded exactly in `types`; the few types
//! without a decoder here are cast to text by the server. See `types` for the mapping table.
//! For CDC, `pgoutput` decodes logical decoding's messages, `lsn` is a WAL position, and
//! `types::decode_text` turns their text values into what a full copy stores.

pub mod cdc;
pub mod lsn;
pub mod pgoutput;
mod types;

pub use types::{decode_text, text_decodable, SESSION_SETTINGS};

use crate::batch::{Cells, JsonbBatch};
use crate::error::{Error, Result};
use crate::ident::{quote_double, Ident};
use crate::source::dialect::{absent_answer, absent_queries, count_queries, page_query, BuiltQuery, Dialect};
use crate::source::{Column, EncodedPage, KeyRange, PageRequest, Source, TableName, TableSchema};
use crate::value::Value;
use std::collections::{HashMap, HashSet};
use tokio_postgres::config::{ChannelBinding, SslMode};
use tokio_postgres::{Client, Config, Statement};
use types::{Cell, Kind, RangeOrder, Raw};

/// Page statements differ only by table, columns and limit, so a handful covers a run; the cap
/// only guards against a caller that varies the limit on every page.
const STATEMENT_CACHE_MAX: usize = 32;

pub struct PostgresSource {
    client: Client,
    origin: String,
    statements: HashMap<String, Statement>,
}

impl PostgresSource {
    /// `origin` names the source in errors, e.g. "postgres via url_secret PG_URL"; never a password.
    pub fn new(client: Client, origin: String) -> Self {
        PostgresSource { client, origin, statements: HashMap::new() }
    }

    fn err(&self, e: tokio_postgres::Error) -> Error {
        Error::at_origin(&self.origin, describe_error(&e))
    }

    /// Runs `page`'s statement; its rows still to be read.
    async fn page_rows(&mut self, page: &PageRequest<'_>) -> Result<tokio_postgres::RowStream> {
        let q = page_sql(page);
        let stmt = self.statement(&q.sql).await?;
        match self.client.query_raw(&stmt, q.params.iter().map(Value::as_str)).await {
            Ok(s) => Ok(s),
            Err(e) => {
                // A statement the server no longer accepts (a column dropped or retyped since it
                // was prepared) must be prepared afresh by the next attempt.
                self.statements.remove(&q.sql);
                Err(self.err(e))
            }
        }
    }

    fn decode_row(&self, page: &PageRequest<'_>, row: &tokio_postgres::Row) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(page.columns.len());
        for i in 0..page.columns.len() {
            let Cell(v) = row.try_get(i).map_err(|e| {
                Error::at_origin(&self.origin, format!("column {}: {}", quote_double(&page.columns[i].name), describe_error(&e)))
            })?;
            out.push(v);
        }
        Ok(out)
    }

    async fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(|e| self.err(e))?;
        if self.statements.len() >= STATEMENT_CACHE_MAX {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

/// The server's own words (severity, SQLSTATE, message, detail, hint) or the IO failure with
/// its causes. Neither holds the password: servers do not echo it, and the URL is never quoted.
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            m.push_str(&format!(" (detail: {d})"));
        }
        if let Some(h) = db.hint() {
            m.push_str(&format!(" (hint: {h})"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        m.push_str(": ");
        m.push_str(&c.to_string());
        cause = c.source();
    }
    m
}

/// Fold an unquoted identifier as PostgreSQL does (lower-case ASCII); quoted names are kept as given.
pub fn fold_ident(id: &Ident) -> String {
    if id.quoted {
        id.name.clone()
    } else {
        id.name.to_ascii_lowercase()
    }
}

/// PostgreSQL's SQL spelling. `select_expr` is the bare value expression (no alias): a page
/// query must alias the cast ones, as `page_sql` does, or `ORDER BY "col"` would sort by the
/// text output column that PostgreSQL names after the column.
pub struct PgDialect;

impl Dialect for PgDialect {
    fn quote(&self, ident: &str) -> String {
        quote_double(ident)
    }
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
    fn reuses_placeholders(&self) -> bool {
        true
    }
    fn select_expr(&self, column: &Column) -> String {
        types::value_expr(column, &quote_double(&column.name))
    }
    /// Keys travel as text (`$n::text`, so every parameter binds as a Rust `&str`) and the
    /// server parses them as the column's type, the inverse of how they were read.
    fn param_expr(&self, column: &Column, placeholder: &str) -> String {
        format!("CAST({placeholder}::text AS {})", types::param_type(&column.source_type))
    }
    fn range_column(&self, column: &Column, quoted: &str) -> String {
        match Kind::of(&column.source_type).range_order() {
            RangeOrder::Native => quoted.to_string(),
            RangeOrder::Collate => format!("{quoted} COLLATE \"C\""),
            RangeOrder::Text => format!("({})::pg_catalog.text COLLATE \"C\"", types::value_expr(column, quoted)),
        }
    }
    /// Bounds travel as text like keyset values. `Text` columns compare the replica's own text.
    fn range_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        match Kind::of(&column.source_type).range_order() {
            RangeOrder::Native => self.eq_bind(column, value, placeholder),
            RangeOrder::Collate => {
                let (e, v) = self.eq_bind(column, value, placeholder);
                (format!("{e} COLLATE \"C\""), v)
            }
            RangeOrder::Text => (format!("{placeholder}::text COLLATE \"C\""), value.display_text().map_or(Value::Null, Value::Text)),
        }
    }
    fn eq_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        (self.param_expr(column, placeholder), types::param_text(value, column).map_or(Value::Null, Value::Text))
    }
    fn range_indexed(&self, column: &Column) -> bool {
        Kind::of(&column.source_type).range_order() == RangeOrder::Native
    }
    /// Well under the protocol's 65,535.
    fn max_params(&self) -> usize {
        30_000
    }
    fn values_lists(&self) -> bool {
        true
    }
    fn array_params(&self) -> bool {
        true
    }
}

/// `PgDialect` with every cast expression aliased to one name that no requested column has.
///
/// PostgreSQL resolves a bare name in ORDER BY to an output column first, and `x::text` is
/// output as `x`; the alias keeps the keyset order on the column's own type (numeric order,
/// not text order) and in step with the keyset predicate, which always compares the column.
struct PageDialect {
    alias: String,
}

impl PageDialect {
    fn new(columns: &[Column]) -> Self {
        let names: HashSet<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let alias = (0..).map(|i| format!("_v{i}")).find(|a| !names.contains(a.as_str())).unwrap_or_default();
        PageDialect { alias }
    }
}

impl Dialect for PageDialect {
    fn quote(&self, ident: &str) -> String {
        PgDialect.quote(ident)
    }
    fn placeholder(&self, n: usize) -> String {
        PgDialect.placeholder(n)
    }
    fn reuses_placeholders(&self) -> bool {
        PgDialect.reuses_placeholders()
    }
    fn select_expr(&self, column: &Column) -> String {
        let e = PgDialect.select_expr(column);
        if Kind::of(&column.source_type).is_native() {
            e
        } else {
            format!("{e} AS {}", quote_double(&self.alias))
        }
    }
    fn param_expr(&self, column: &Column, placeholder: &str) -> String {
        PgDialect.param_expr(column, placeholder)
    }
}

/// The statement `fetch_page` runs for `page`, with its key values already turned into the
/// text parameters that `PgDialect::param_expr` casts back (`Value::Text`, or `Null`).
pub fn page_sql(page: &PageRequest<'_>) -> BuiltQuery {
    // Encoding before building pairs each value with its own column, whatever order or
    // repetition of placeholders the builder chooses.
    let key_col = |k: usize| &page.columns[page.order[k]];
    let as_param = |v: &Value, c: &Column| types::param_text(v, c).map_or(Value::Null, Value::Text);
    let after: Option<Vec<Value>> = page.after.map(|a| a.iter().enumerate().map(|(k, v)| as_param(v, key_col(k))).collect());
    let from = page.from.map(|v| as_param(v, key_col(0)));
    let encoded = PageRequest { after: after.as_deref(), from: from.as_ref(), ..page.clone() };
    page_query(&PageDialect::new(page.columns), &encoded)
}

/// Columns in table order with each domain resolved to its base type (with the domain's type
/// modifier), so the type names below describe what the values are.
const COLUMNS_SQL: &str = "\
WITH RECURSIVE t(attnum, typid, typmod) AS (
    SELECT a.attnum, a.atttypid, a.atttypmod FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT t.attnum, d.typbasetype, d.typtypmod FROM t JOIN pg_catalog.pg_type d ON d.oid = t.typid
    WHERE d.typtype = 'd'
)
SELECT a.attname::text, pg_catalog.format_type(t.typid, t.typmod), a.attnotnull
FROM t
JOIN pg_catalog.pg_type ty ON ty.oid = t.typid AND ty.typtype <> 'd'
JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attnum = t.attnum
ORDER BY a.attnum";

/// The relation a name means: in the given schema, or the first of the search path that has it.
const RESOLVE_SQL: &str = "\
SELECT c.oid, c.relkind::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $2::text::name
  AND CASE WHEN $1::text IS NULL THEN n.nspname = ANY (pg_catalog.current_schemas(true))
           ELSE n.nspname = $1::text::name END
ORDER BY pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)
LIMIT 1";

const PRIMARY_KEY_SQL: &str = "\
SELECT a.attname::text
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY k.ord";

fn quoted_name(table: &TableName) -> String {
    match &table.schema {
        Some(s) => format!("{}.{}", quote_double(s), quote_double(&table.name)),
        None => quote_double(&table.name),
    }
}

impl Source for PostgresSource {
    fn describe_origin(&self) -> String {
        self.origin.clone()
    }
    fn source_type(&self) -> crate::config::SourceType {
        crate::config::SourceType::Postgres
    }
    async fn feed(&mut self, op: crate::source::FeedOp<'_>) -> Result<crate::source::FeedAnswer> {
        self.feed_op(op).await
    }
    fn text_decoder(&self) -> Option<crate::source::TextDecoder> {
        Some(|column, text| decode_text(&column.source_type, text))
    }
    fn feed_column_check(&self, column: &crate::source::Column) -> std::result::Result<(), String> {
        text_decodable(&column.source_type)
    }

    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        let found = self.client.query_opt(RESOLVE_SQL, &[&table.schema.as_deref(), &table.name.as_str()]).await.map_err(|e| self.err(e))?;
        let Some(row) = found else {
            let where_ = if table.schema.is_some() { "" } else { " in the search path" };
            return Err(Error::at_origin(&self.origin, format!("table {} does not exist{where_}", quoted_name(table))));
        };
        let oid: u32 = row.get(0);
        let kind: String = row.get(1);
        // Tables, partitioned tables, views, materialized views, foreign tables.
        if !matches!(kind.as_str(), "r" | "p" | "v" | "m" | "f") {
            return Err(Error::at_origin(&self.origin, format!("{} is not a table or view", quoted_name(table))));
        }
        let rows = self.client.query(COLUMNS_SQL, &[&oid]).await.map_err(|e| self.err(e))?;
        let columns = rows
            .iter()
            .map(|r| {
                let source_type: String = r.get(1);
                Column { name: r.get(0), affinity: Kind::of(&source_type).affinity(), source_type, nullable: !r.get::<_, bool>(2) }
            })
            .collect();
        let pk = self.client.query(PRIMARY_KEY_SQL, &[&oid]).await.map_err(|e| self.err(e))?;
        Ok(TableSchema { columns, primary_key: pk.iter().map(|r| r.get(0)).collect() })
    }

    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        let stream = self.page_rows(page).await?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Vec::with_capacity(page.limit.min(10_000));
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut stream).await.map_err(|e| self.err(e))? {
            rows.push(self.decode_row(page, &row)?);
        }
        Ok(rows)
    }

    /// The binary values go straight into the batch (`types::encode`); only the last
    /// row is decoded into values, for the checkpoint.
    async fn fetch_batch(&mut self, page: &PageRequest<'_>, max_bytes: usize) -> Result<EncodedPage> {
        let stream = self.page_rows(page).await?;
        let mut stream = std::pin::pin!(stream);
        let mut text = JsonbBatch::new(page.columns, max_bytes);
        let mut last = None;
        // Every row has the statement's columns; their types are looked up once per page.
        let mut oids: Vec<u32> = Vec::new();
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut stream).await.map_err(|e| self.err(e))? {
            if oids.is_empty() {
                oids = row.columns().iter().map(|c| c.type_().oid()).collect();
                if oids.len() != page.columns.len() {
                    let why = format!("a page returned {} columns, {} were asked for", oids.len(), page.columns.len());
                    return Err(Error::at_origin(&self.origin, why));
                }
            }
            text.begin_row();
            for (i, &oid) in oids.iter().enumerate() {
                let cell = match row.try_get::<_, Raw>(i) {
                    Ok(Raw(None)) => {
                        text.null();
                        continue;
                    }
                    Ok(Raw(Some(raw))) => types::encode(oid, raw, &mut text).map_err(|e| {
                        // As `fetch_page` words it: tokio-postgres's words around `Cell`'s error.
                        format!("error deserializing column {i}: {} value: {e}", row.columns()[i].type_().name())
                    }),
                    Err(e) => Err(describe_error(&e)),
                };
                cell.map_err(|e| Error::at_origin(&self.origin, format!("column {}: {e}", quote_double(&page.columns[i].name))))?;
            }
            text.end_row();
            last = Some(row);
        }
        let last = match last {
            Some(row) => Some(self.decode_row(page, &row)?),
            None => None,
        };
        Ok(EncodedPage::finish(text, last))
    }

    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {} WHERE {} IS NULL", PgDialect.table_ref(table), quote_double(&column.name));
        let row = self.client.query_one(&sql, &[]).await.map_err(|e| self.err(e))?;
        Ok(row.get::<_, i64>(0).try_into().unwrap_or(0))
    }

    async fn count_key_ranges(
        &mut self,
        table: &TableName,
        key: &[Column],
        ranges: &[KeyRange],
        rows: &[u64],
    ) -> Result<Vec<(usize, u64)>> {
        let mut out = Vec::new();
        for q in count_queries(&PgDialect, table, key, ranges, rows) {
            let answer = self.run_without_jit(&q.query).await?;
            out.extend(q.differing(&answer, rows).map_err(|e| Error::at_origin(&self.origin, e))?);
        }
        Ok(out)
    }

    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for q in absent_queries(&PgDialect, table, key, keys) {
            let answer = self.run_without_jit(&q).await?;
            out.extend(absent_answer(&answer, keys.len()).map_err(|e| Error::at_origin(&self.origin, e))?);
        }
        Ok(out)
    }
}

impl PostgresSource {
    /// `run` in a read-only transaction with JIT compilation off (PostgreSQL 11 and later).
    ///
    /// Reconciliation statements probe the key's index once per range or key: thousands of tiny
    /// index scans whose summed cost estimate passes `jit_above_cost`, so the server compiled
    /// them first: 6,240 range counts ran in 35 ms and took 260 ms more to JIT-compile. `SET
    /// LOCAL` ends with the transaction, so no setting outlives it on a pooled connection
    /// (Hyperdrive).
    async fn run_without_jit(&mut self, q: &BuiltQuery) -> Result<Vec<Vec<Value>>> {
        // The three go out together, in order, and come back in one round trip. A COMMIT that
        // follows a failed statement ends the transaction as a ROLLBACK would.
        let begin = self.client.batch_execute(
            "BEGIN READ ONLY; SELECT pg_catalog.set_config('jit', 'off', true) \
             WHERE pg_catalog.current_setting('server_version_num')::int >= 110000",
        );
        let (begun, answer, ended) = futures_util::future::join3(begin, self.run(q), self.client.batch_execute("COMMIT")).await;
        begun.map_err(|e| self.err(e))?;
        let answer = answer?;
        ended.map_err(|e| self.err(e))?;
        Ok(answer)
    }

    /// Runs a statement whose text varies with its arguments, with its (text) parameters typed
    /// in the request, so that it is parsed, bound and run in one round trip and not kept
    /// prepared; decodes every cell.
    async fn run(&self, q: &BuiltQuery) -> Result<Vec<Vec<Value>>> {
        let params = q.params.iter().map(|v| (v.as_str(), tokio_postgres::types::Type::TEXT));
        let stream = self.client.query_typed_raw(q.sql.as_str(), params).await.map_err(|e| self.err(e))?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Vec::new();
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut stream).await.map_err(|e| self.err(e))? {
            let mut out = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let Cell(v) = row.try_get(i).map_err(|e| self.err(e))?;
                out.push(v);
            }
            rows.push(out);
        }
        Ok(rows)
    }
}

fn bad_url(why: &str) -> Error {
    super::url::bad_url("postgres", why)
}

/// Parses a `postgres://user:pass@host:port/db?sslmode=...` URL (also `postgresql://`), returning
/// the tokio_postgres Config plus host and port for opening the socket.
///
/// Query parameters: `sslmode` or `ssl-mode` (`disable`, `prefer`, `require`; `verify-ca` and
/// `verify-full` mean `require`, the platform's TLS verifies the certificate), `application_name`,
/// `options`, `channel_binding`, `connect_timeout` (accepted, unused: the caller owns the socket).
/// Errors never quote the URL: a malformed one may put the password anywhere.
pub fn parse_url(url: &str) -> Result<(Config, String, u16)> {
    let parts = super::url::split("postgres", url, &["postgres://", "postgresql://"], 5432)?;
    let mut config = Config::new();
    if let Some(user) = parts.user.filter(|u| !u.is_empty()) {
        config.user(user);
    }
    if let Some(password) = parts.password {
        config.password(password);
    }
    if let Some(db) = parts.database {
        config.dbname(db);
    }
    let (mut host, mut port) = (parts.host, parts.port);
    for (key, value) in parts.params {
        match key.as_str() {
            "sslmode" | "ssl-mode" => {
                config.ssl_mode(match value.to_ascii_lowercase().as_str() {
                    "disable" => SslMode::Disable,
                    "prefer" | "allow" => SslMode::Prefer,
                    "require" | "verify-ca" | "verify-full" | "verify_ca" | "verify_identity" | "required" => SslMode::Require,
                    _ => return Err(bad_url("sslmode must be disable, prefer or require")),
                });
            }
            "application_name" => {
                config.application_name(value);
            }
            "options" => {
                config.options(value);
            }
            "channel_binding" => {
                config.channel_binding(match value.as_str() {
                    "disable" => ChannelBinding::Disable,
                    "prefer" => ChannelBinding::Prefer,
                    "require" => ChannelBinding::Require,
                    _ => return Err(bad_url("channel_binding must be disable, prefer or require")),
                });
            }
            "user" => {
                config.user(value);
            }
            "password" => {
                config.password(value);
            }
            "dbname" => {
                config.dbname(value);
            }
            "host" => host = value,
            "port" => port = super::url::parse_port("postgres", &value)?,
            "connect_timeout" => {}
            other => {
                // Keys are names, not secrets, so this one may be quoted to help the user.
                return Err(bad_url(&format!("unsupported parameter {other:?}")));
            }
        }
    }
    if host.is_empty() {
        return Err(bad_url("no host"));
    }
    if config.get_user().is_none() {
        return Err(bad_url("no user name"));
    }
    config.host(&host);
    config.port(port);
    Ok((config, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Affinity, KeyRange};

    fn col(name: &str, t: &str) -> Column {
        Column { name: name.into(), source_type: t.into(), affinity: Kind::of(t).affinity(), nullable: false }
    }

    #[test]
    fn folds_only_unquoted() {
        assert_eq!(fold_ident(&Ident { name: "Orders".into(), quoted: false }), "orders");
        assert_eq!(fold_ident(&Ident { name: "Orders".into(), quoted: true }), "Orders");
        assert_eq!(fold_ident(&Ident { name: "ÄB".into(), quoted: false }), "Äb");
    }

    #[test]
    fn dialect_expressions() {
        let ts = col("updated_at", "timestamp(3) with time zone");
        assert_eq!(PgDialect.param_expr(&ts, "$1"), "CAST($1::text AS timestamp with time zone)");
        assert_eq!(PgDialect.select_expr(&ts), "\"updated_at\"");
        assert_eq!(PgDialect.select_expr(&col("select", "numeric")), "\"select\"::pg_catalog.text");
        assert_eq!(PgDialect.placeholder(3), "$3");
        let t = TableName { schema: Some("My Schema".into()), name: "Order Items".into() };
        assert_eq!(PgDialect.table_ref(&t), "\"My Schema\".\"Order Items\"");
    }

    #[test]
    fn page_sql_orders_by_the_column_not_its_text() {
        let t = TableName { schema: None, name: "t".into() };
        // A column named like the default alias pushes the alias to the next free name.
        let cols = [col("amount", "numeric(12,2)"), col("id", "bigint"), col("_v0", "money"), col("tags", "text[]")];
        let after = [Value::text("10.50"), Value::Integer(7)];
        let q = page_sql(&PageRequest { table: &t, columns: &cols, order: &[0, 1], after: Some(&after), from: None, limit: 7 });
        assert_eq!(
            q.sql,
            "SELECT \"amount\"::pg_catalog.text AS \"_v1\", \"id\", \"_v0\"::pg_catalog.numeric::pg_catalog.text AS \"_v1\", \
             pg_catalog.array_to_json(\"tags\")::pg_catalog.text AS \"_v1\" FROM \"t\" \
             WHERE \"amount\" >= CAST($1::text AS numeric) AND (\"amount\" > CAST($1::text AS numeric) OR (\"id\" > CAST($2::text AS bigint))) \
             ORDER BY \"amount\", \"id\" LIMIT 7"
        );
        assert_eq!(q.params, vec![Value::text("10.50"), Value::text("7")]);
        let from = Value::Integer(3);
        let page = PageRequest { table: &t, columns: &cols, order: &[1, 0], after: None, from: Some(&from), limit: 7 };
        let q = page_sql(&page);
        assert!(q.sql.contains("WHERE \"id\" >= CAST($1::text AS bigint) ORDER BY \"id\", \"amount\""), "{}", q.sql);
        assert_eq!(q.params, vec![Value::text("3")]);
        // Each key value is encoded for its own column: a boolean and a BC date.
        let cols = [col("ok", "boolean"), col("day", "date"), col("n", "integer")];
        let after = [Value::Integer(1), Value::text("-000043-03-15"), Value::Null];
        let q = page_sql(&PageRequest { table: &t, columns: &cols, order: &[0, 1, 2], after: Some(&after), from: None, limit: 1 });
        assert_eq!(q.params, vec![Value::text("true"), Value::text("0044-03-15 BC"), Value::Null]);
    }

    #[test]
    fn reconciliation_lists_travel_as_text_arrays() {
        use crate::source::dialect::{absent_queries, count_queries};
        let t = TableName { schema: None, name: "t".into() };
        // Keys the index orders as the replica does: counted from a list of ranges.
        let key = [col("id", "bigint"), col("day", "date")];
        let k = |i: i64, s: &str| vec![Value::Integer(i), Value::text(s)];
        let ranges = [KeyRange { lo: Some(k(1, "2026-01-01")), hi: k(9_007_199_254_740_993, "-000043-03-15") }];
        let q = &count_queries(&PgDialect, &t, &key, &ranges, &[5])[0].query;
        assert_eq!(
            q.sql,
            "SELECT x.i, x.c FROM (SELECT _er_v.i, _er_v.n, (SELECT count(*) FROM \"t\" WHERE \"id\" >= _er_v.lo0 AND (\"id\" > _er_v.lo0 OR (\"day\" > _er_v.lo1)) \
             AND \"id\" <= _er_v.hi0 AND (\"id\" < _er_v.hi0 OR (\"day\" <= _er_v.hi1))) AS c \
             FROM (SELECT CAST(_er_vv.c0 AS bigint) AS i, CAST(_er_vv.c1 AS bigint) AS n, CAST(_er_vv.c2::text AS bigint) AS lo0, \
             CAST(_er_vv.c3::text AS date) AS lo1, CAST(_er_vv.c4::text AS bigint) AS hi0, CAST(_er_vv.c5::text AS date) AS hi1 \
             FROM unnest(CAST($1::text AS text[]), CAST($2::text AS text[]), CAST($3::text AS text[]), CAST($4::text AS text[]), \
             CAST($5::text AS text[]), CAST($6::text AS text[])) AS _er_vv(c0, c1, c2, c3, c4, c5)) AS _er_v) x WHERE x.c <> x.n"
        );
        let texts: Vec<&str> = q.params.iter().filter_map(Value::as_str).collect();
        assert_eq!(texts, ["{\"0\"}", "{\"5\"}", "{\"1\"}", "{\"2026-01-01\"}", "{\"9007199254740993\"}", "{\"0044-03-15 BC\"}"]);
        // A text key compares in bytes: one scan, not the list.
        let key = [col("id", "bigint"), col("name", "text")];
        let q = &count_queries(&PgDialect, &t, &key, &ranges, &[5])[0].query;
        assert!(q.sql.starts_with("SELECT b, count(*) FROM (SELECT CASE WHEN \"id\" >= CAST($1::text AS bigint)"), "{}", q.sql);
        // Lookups: any text survives the array literal.
        let q = &absent_queries(&PgDialect, &t, &key, &[k(7, "q\"u\\o,te{}"), k(8, "NULL")])[0];
        assert!(q.sql.contains("CAST(_er_vv.c2::text AS text) AS k1 FROM unnest("), "{}", q.sql);
        assert_eq!(q.params[2], Value::text("{\"q\\\"u\\\\o,te{}\",\"NULL\"}"));
    }

    #[test]
    fn affinity_of_introspected_types() {
        assert_eq!(Kind::of("bigint").affinity(), Affinity::Integer);
        assert_eq!(Kind::of("boolean").affinity(), Affinity::Integer);
        assert_eq!(Kind::of("double precision").affinity(), Affinity::Real);
        assert_eq!(Kind::of("bytea").affinity(), Affinity::Blob);
        assert_eq!(Kind::of("numeric(40,0)").affinity(), Affinity::Text);
    }

    const SECRET: &str = "s3cr3t-P4ss";

    fn url_err(url: &str) -> String {
        let e = parse_url(url).err().unwrap_or_else(|| panic!("accepted {url}"));
        assert_eq!(e.status(), 400);
        assert!(!e.message().contains(SECRET), "password leaked: {}", e.message());
        e.message().to_string()
    }

    #[test]
    fn parses_urls() {
        let (c, host, port) = parse_url(&format!("postgres://app:{SECRET}@db.example.com:6543/shop?sslmode=require")).unwrap();
        assert_eq!((host.as_str(), port), ("db.example.com", 6543));
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_password(), Some(SECRET.as_bytes()));
        assert_eq!(c.get_dbname(), Some("shop"));
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        assert_eq!(c.get_ports(), &[6543]);

        let (c, host, port) = parse_url("postgresql://u%40x:p%2Fw%40@[::1]/d%20b").unwrap();
        assert_eq!((host.as_str(), port), ("::1", 5432));
        assert_eq!(c.get_user(), Some("u@x"));
        assert_eq!(c.get_password(), Some(&b"p/w@"[..]));
        assert_eq!(c.get_dbname(), Some("d b"));
        assert_eq!(c.get_ssl_mode(), SslMode::Prefer);

        let (c, _, _) = parse_url("POSTGRES://u:p@@h?ssl-mode=disable&application_name=er").unwrap();
        assert_eq!(c.get_password(), Some(&b"p@"[..]));
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        assert_eq!(c.get_application_name(), Some("er"));
        for (mode, want) in [("prefer", SslMode::Prefer), ("verify-full", SslMode::Require), ("REQUIRE", SslMode::Require)] {
            assert_eq!(parse_url(&format!("postgres://u@h/d?sslmode={mode}")).unwrap().0.get_ssl_mode(), want);
        }
    }

    #[test]
    fn url_errors_never_show_the_password() {
        assert!(url_err(&format!("mysql://u:{SECRET}@h/d")).contains("postgres://"));
        assert!(url_err(&format!("postgres://u:{SECRET}/d")).contains("port"));
        assert!(url_err(&format!("postgres://u:{SECRET}@h:99999/d")).contains("port"));
        assert!(url_err(&format!("postgres://u:{SECRET}@h/d?sslmode=sometimes")).contains("sslmode"));
        assert!(url_err(&format!("postgres://u:{SECRET}%zz@h/d")).contains("password"));
        assert!(url_err(&format!("postgres://u:{SECRET}@/d")).contains("host"));
        assert!(url_err(&format!("postgres://:{SECRET}@h/d")).contains("user"));
        assert!(url_err(&format!("postgres://u:{SECRET}@h/d?bogus=1")).contains("bogus"));
        assert!(url_err(&format!("postgres://u:{SECRET}@a,b/d")).contains("several hosts"));
        assert!(url_err(&format!("postgres://u:{SECRET}@[::1/d")).contains("["));
    }
}
