//! MySQL and MariaDB as an origin, over this crate's own protocol client: `codec` (sans-io
//! packets), `auth` (password scrambles), `client` (an async connection over any stream with
//! a deadline on every read), `types` (the value mapping table and exact keyset parameters),
//! `binlog` (sans-io binlog events, for change data capture; `BinlogColumns` maps their row
//! values through the same table).
//!
//! Every statement is prepared and executed with the binary protocol: values arrive in their
//! exact binary form (integers as integers, floats as their bytes, dates as fields) and keys go
//! back as typed parameters, never spliced into SQL text.

pub mod auth;
pub mod binlog;
pub mod cdc;
pub mod client;
pub mod codec;
mod types;

pub use types::BinlogColumns;

use crate::batch::{Cells, JsonbBatch};
use crate::error::{Error, Result};
use crate::ident::quote_backtick;
use crate::source::dialect::{absent_answer, absent_queries, count_queries, page_query, BuiltQuery, Dialect};
use crate::source::{Column, EncodedPage, KeyRange, PageRequest, Source, TableName, TableSchema};
use crate::value::Value;
use client::{ClientError, Conn, Credentials, Statement, Timer};
use codec::{Cell, Param};
use std::collections::HashMap;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long one read or write may wait. Generous: a page query over a big table without a
/// matching index may sort for a while before its first row.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// Page statements differ only by table, columns and limit, so a handful covers a run.
const STATEMENT_CACHE_MAX: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it (and the stream can be upgraded).
    Prefer,
    Require,
}

/// Everything a connection needs besides the stream; from `parse_url` or a Hyperdrive binding.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub credentials: Credentials,
    pub ssl: SslMode,
    pub timeout_ms: u64,
}

/// Runs the greeting, optional TLS, login, and the session set-up on `stream`.
///
/// `upgrade` turns the plain stream into TLS after the SSL request (the Worker's
/// `Socket::start_tls`); without it, `Prefer` stays plain and `Require` fails.
pub async fn connect<S, U, F>(stream: S, timer: Box<dyn Timer>, opts: &ConnectOptions, upgrade: Option<U>) -> Result<Conn<S>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    U: FnOnce(S) -> F,
    F: Future<Output = Result<S, String>>,
{
    let mut conn = Conn::new(stream, timer, opts.timeout_ms);
    let hs = conn.read_handshake().await.map_err(|e| match e {
        ClientError::Broken(m) => {
            ClientError::Broken(format!("no MySQL greeting from {}:{} ({m}); is a MySQL server listening there?", opts.host, opts.port))
        }
        other => other,
    })?;
    let server_tls = hs.capabilities & codec::caps::SSL != 0;
    let use_tls = match opts.ssl {
        SslMode::Disable => false,
        SslMode::Prefer => server_tls && upgrade.is_some(),
        SslMode::Require if !server_tls => {
            return Err(ClientError::Config("ssl-mode=require, but the server does not offer TLS".into()));
        }
        SslMode::Require if upgrade.is_none() => {
            return Err(ClientError::Config("ssl-mode=require, but this connection cannot be upgraded to TLS".into()));
        }
        SslMode::Require => true,
    };
    if use_tls {
        conn.ssl_request(&hs, &opts.credentials).await?;
        let seq = conn.seq();
        let (stream, timer, timeout) = conn.into_parts();
        let upgrade = upgrade.expect("checked above");
        let tls = upgrade(stream).await.map_err(|e| ClientError::Broken(format!("TLS upgrade failed: {e}")))?;
        conn = Conn::resume(tls, timer, timeout, seq);
    }
    conn.login(&hs, &opts.credentials, use_tls).await?;
    // UTC so that TIMESTAMP values arrive as UTC; utf8mb4 so that all text arrives as UTF-8.
    conn.execute_simple("SET NAMES utf8mb4, time_zone = '+00:00'").await?;
    Ok(conn)
}

/// MySQL's SQL spelling: backquotes, `?` placeholders that cannot be reused, and parameter
/// expressions that keep comparisons exact (see `types::param_expr`).
pub struct MyDialect;

impl Dialect for MyDialect {
    fn quote(&self, ident: &str) -> String {
        quote_backtick(ident)
    }
    fn placeholder(&self, _n: usize) -> String {
        "?".to_string()
    }
    fn reuses_placeholders(&self) -> bool {
        false
    }
    fn param_expr(&self, column: &Column, placeholder: &str) -> String {
        types::param_expr(column, placeholder)
    }
    fn range_column(&self, column: &Column, quoted: &str) -> String {
        if types::compares_as_bytes(column) {
            format!("CAST(CONVERT({quoted} USING utf8mb4) AS BINARY)")
        } else {
            quoted.to_string()
        }
    }
    /// Text bounds travel as the replica's text (utf8mb4, the session's character set) and
    /// compare as its bytes; others as keyset values do.
    fn range_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        if types::compares_as_bytes(column) {
            (format!("CAST({placeholder} AS BINARY)"), value.display_text().map_or(Value::Null, Value::Text))
        } else {
            self.eq_bind(column, value, placeholder)
        }
    }
    /// `k = ?` with the key as keyset pages bind it: the column's collation decides, so `'a'`
    /// finds `'A '` under a case-insensitive PAD SPACE collation, as the table's own key does.
    fn eq_bind(&self, column: &Column, value: &Value, placeholder: &str) -> (String, Value) {
        (types::param_expr(column, placeholder), types::param_value(value, column))
    }
    fn range_indexed(&self, column: &Column) -> bool {
        !types::compares_as_bytes(column)
    }
    fn max_params(&self) -> usize {
        30_000
    }
    fn dual_table(&self) -> &'static str {
        " FROM DUAL"
    }
}

/// The statement `fetch_page` runs for `page`, its key values already in the form the
/// dialect's parameter expressions expect.
pub fn page_sql(page: &PageRequest<'_>) -> BuiltQuery {
    let key_col = |k: usize| &page.columns[page.order[k]];
    let after: Option<Vec<Value>> = page.after.map(|a| a.iter().enumerate().map(|(k, v)| types::param_value(v, key_col(k))).collect());
    let from = page.from.map(|v| types::param_value(v, key_col(0)));
    let encoded = PageRequest { after: after.as_deref(), from: from.as_ref(), ..page.clone() };
    page_query(&MyDialect, &encoded)
}

fn to_param(v: &Value) -> Param {
    match v {
        Value::Null => Param::Null,
        Value::Integer(i) => Param::Int(*i),
        Value::Real(f) => Param::Double(*f),
        Value::Text(s) => Param::Text(s.clone()),
        Value::Blob(b) => Param::Bytes(b.clone()),
    }
}

const COLUMNS_SQL: &str = "\
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
ORDER BY ORDINAL_POSITION";

const PRIMARY_KEY_SQL: &str = "\
SELECT COLUMN_NAME
FROM information_schema.KEY_COLUMN_USAGE
WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
ORDER BY ORDINAL_POSITION";

pub struct MysqlSource<S> {
    conn: Conn<S>,
    origin: String,
    /// The connection's default database, for unqualified table names.
    database: Option<String>,
    statements: HashMap<String, Statement>,
    /// Opens the binlog dump's own connection (`cdc::Dialer`); without one the change feed
    /// cannot read.
    dialer: Option<cdc::Dialer<S>>,
    feed: cdc::FeedState,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MysqlSource<S> {
    /// `origin` names the source in errors (`mysql via url_secret MY_URL (host:3306/db)`).
    pub fn new(conn: Conn<S>, origin: String, database: Option<String>) -> Self {
        MysqlSource {
            conn,
            origin,
            database: database.filter(|d| !d.is_empty()),
            statements: HashMap::new(),
            dialer: None,
            feed: cdc::FeedState::default(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::at_origin(&self.origin, e)
    }

    async fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        if self.statements.len() >= STATEMENT_CACHE_MAX {
            for (_, s) in std::mem::take(&mut self.statements) {
                self.conn.close_statement(s.id).await.map_err(|e| self.err(e))?;
            }
        }
        let s = self.conn.prepare(sql).await.map_err(|e| self.err(e))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Runs `sql` with `params` and decodes every row completely.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let stmt = self.statement(sql).await?;
        let params: Vec<Param> = params.iter().map(to_param).collect();
        let mut rows = Vec::new();
        let result = self
            .conn
            .execute(&stmt, &params, |defs, payload| {
                rows.push(decode_row(payload, defs)?);
                Ok(())
            })
            .await;
        match result {
            Ok(_) => Ok(rows),
            Err(e) => {
                // A statement the server rejects now (a table altered since) is prepared afresh next time.
                if matches!(e, ClientError::Server(_)) {
                    self.statements.remove(sql);
                }
                Err(self.err(e))
            }
        }
    }

    /// Runs a statement whose text varies with its arguments: prepared, executed, closed.
    async fn query_once(&mut self, q: &BuiltQuery) -> Result<Vec<Vec<Value>>> {
        let stmt = self.conn.prepare(&q.sql).await.map_err(|e| self.err(e))?;
        let params: Vec<Param> = q.params.iter().map(to_param).collect();
        let mut rows = Vec::new();
        let result = self
            .conn
            .execute(&stmt, &params, |defs, payload| {
                rows.push(decode_row(payload, defs)?);
                Ok(())
            })
            .await;
        let closed = self.conn.close_statement(stmt.id).await;
        result.map_err(|e| self.err(e))?;
        closed.map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.display_text().unwrap_or_default(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Source for MysqlSource<S> {
    fn describe_origin(&self) -> String {
        self.origin.clone()
    }
    fn source_type(&self) -> crate::config::SourceType {
        crate::config::SourceType::Mysql
    }
    async fn feed(&mut self, op: crate::source::FeedOp<'_>) -> Result<crate::source::FeedAnswer> {
        self.feed_op(op).await
    }
    fn position_order(&self) -> crate::source::PositionOrder {
        cdc::at_or_after
    }
    async fn added_column_value(&mut self, table: &TableName, column: &Column) -> Result<Option<Value>> {
        self.added_value(table, column).await
    }

    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        let shown = MyDialect.table_ref(table);
        if table.schema.is_none() && self.database.is_none() {
            return Err(self.err(format!(
                "table {shown} names no database and the connection has none: write it as `database`.{shown}, or put the database in the URL"
            )));
        }
        let schema_param = table.schema.clone().map_or(Value::Null, Value::Text);
        let rows = self.query(COLUMNS_SQL, &[schema_param, Value::text(&table.name)]).await?;
        let Some(first) = rows.first() else {
            let db = table.schema.as_deref().or(self.database.as_deref()).unwrap_or_default();
            return Err(self.err(format!("table {shown} does not exist in database {}", quote_backtick(db))));
        };
        let (schema, name) = (text(&first[0]), text(&first[1]));
        let columns = rows
            .iter()
            .map(|r| {
                let source_type = text(&r[3]);
                Column {
                    name: text(&r[2]),
                    affinity: types::Kind::of(&source_type).affinity(),
                    source_type,
                    nullable: text(&r[4]).eq_ignore_ascii_case("YES"),
                }
            })
            .collect();
        let pk = self.query(PRIMARY_KEY_SQL, &[Value::Text(schema), Value::Text(name)]).await?;
        Ok(TableSchema { columns, primary_key: pk.iter().map(|r| text(&r[0])).collect() })
    }

    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        let q = page_sql(page);
        let rows = self.query(&q.sql, &q.params).await?;
        if let Some(r) = rows.first() {
            if r.len() != page.columns.len() {
                return Err(self.err(format!("a page returned {} columns, {} were asked for", r.len(), page.columns.len())));
            }
        }
        Ok(rows)
    }

    /// The binary-protocol cells go straight into the batch (`types::encode`); only the
    /// last row is decoded into values, for the checkpoint.
    async fn fetch_batch(&mut self, page: &PageRequest<'_>, max_bytes: usize) -> Result<EncodedPage> {
        let q = page_sql(page);
        let stmt = self.statement(&q.sql).await?;
        let params: Vec<Param> = q.params.iter().map(to_param).collect();
        let mut text = JsonbBatch::new(page.columns, max_bytes);
        let mut last: Vec<u8> = Vec::new();
        let result = self
            .conn
            .execute(&stmt, &params, |defs, payload| {
                if defs.len() != page.columns.len() {
                    return Err(format!("a page returned {} columns, {} were asked for", defs.len(), page.columns.len()));
                }
                let mut cells: Vec<Cell<'_>> = Vec::with_capacity(defs.len());
                codec::parse_binary_row(payload, defs, &mut cells)?;
                text.begin_row();
                for (cell, d) in cells.into_iter().zip(defs) {
                    types::encode(cell, d, &mut text).map_err(|e| format!("column {}: {e}", quote_backtick(&d.name)))?;
                }
                text.end_row();
                last.clear();
                last.extend_from_slice(payload);
                Ok(())
            })
            .await;
        let defs = match result {
            Ok(defs) => defs,
            Err(e) => {
                // A statement the server rejects now (a table altered since) is prepared afresh next time.
                if matches!(e, ClientError::Server(_)) {
                    self.statements.remove(&q.sql);
                }
                return Err(self.err(e));
            }
        };
        let last = if text.rows() > 0 { Some(decode_row(&last, &defs).map_err(|e| self.err(e))?) } else { None };
        Ok(EncodedPage::finish(text, last))
    }

    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM {} WHERE {} IS NULL", MyDialect.table_ref(table), quote_backtick(&column.name));
        let rows = self.query(&sql, &[]).await?;
        Ok(rows.first().and_then(|r| r[0].as_i64()).unwrap_or(0).try_into().unwrap_or(0))
    }

    async fn count_key_ranges(
        &mut self,
        table: &TableName,
        key: &[Column],
        ranges: &[KeyRange],
        rows: &[u64],
    ) -> Result<Vec<(usize, u64)>> {
        let mut out = Vec::new();
        for q in count_queries(&MyDialect, table, key, ranges, rows) {
            let answer = self.query_once(&q.query).await?;
            out.extend(q.differing(&answer, rows).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }

    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for q in absent_queries(&MyDialect, table, key, keys) {
            let answer = self.query_once(&q).await?;
            out.extend(absent_answer(&answer, keys.len()).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }
}

/// Decodes one binary row into values; a failure names the column.
pub fn decode_row(payload: &[u8], defs: &[codec::ColumnDef]) -> std::result::Result<Vec<Value>, String> {
    let mut cells: Vec<Cell<'_>> = Vec::with_capacity(defs.len());
    codec::parse_binary_row(payload, defs, &mut cells)?;
    cells.into_iter().zip(defs).map(|(c, d)| types::decode(c, d).map_err(|e| format!("column {}: {e}", quote_backtick(&d.name)))).collect()
}

fn bad_url(why: &str) -> Error {
    super::url::bad_url("mysql", why)
}

fn parse_port(p: &str) -> Result<u16> {
    super::url::parse_port("mysql", p)
}

/// Parses `mysql://user:pass@host:port/db?ssl-mode=...` (also `mariadb://`).
///
/// Query parameters: `ssl-mode` or `sslmode` (`disable`, `prefer`, `require`, and MySQL's
/// spellings `DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`, `VERIFY_IDENTITY`: the last two
/// mean require, the platform's TLS verifies the certificate), `ssl=true|false`, `user`,
/// `password`, `database`, `connect_timeout`/`connectTimeout` (seconds: the read deadline),
/// `charset` (only utf8mb4: every session is utf8mb4). Errors never quote the URL.
pub fn parse_url(url: &str) -> Result<ConnectOptions> {
    let parts = super::url::split("mysql", url, &["mysql://", "mariadb://"], 3306)?;
    let mut user = parts.user.unwrap_or_default();
    let mut password = parts.password.unwrap_or_default();
    let (mut host, mut port, mut database) = (parts.host, parts.port, parts.database);
    let mut ssl = SslMode::Prefer;
    let mut timeout_ms = DEFAULT_TIMEOUT_MS;
    for (key, value) in parts.params {
        match key.as_str() {
            "ssl-mode" | "sslmode" | "ssl_mode" | "sslMode" => {
                ssl = match value.to_ascii_lowercase().replace('-', "_").as_str() {
                    "disable" | "disabled" => SslMode::Disable,
                    "prefer" | "preferred" | "allow" => SslMode::Prefer,
                    "require" | "required" | "verify_ca" | "verify_identity" | "verify_full" => SslMode::Require,
                    _ => return Err(bad_url("ssl-mode must be disable, prefer or require")),
                }
            }
            "ssl" => {
                ssl = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" => SslMode::Require,
                    "false" | "0" => SslMode::Disable,
                    _ => return Err(bad_url("ssl must be true or false")),
                }
            }
            "user" => user = value,
            "password" => password = value.into_bytes(),
            "database" | "dbname" => database = Some(value),
            "host" => host = value,
            "port" => port = parse_port(&value)?,
            "connect_timeout" | "connectTimeout" => {
                let s: u64 =
                    value.parse().ok().filter(|&s| s > 0).ok_or_else(|| bad_url("connect_timeout must be a positive number of seconds"))?;
                timeout_ms = s.saturating_mul(1000);
            }
            "charset" if value.eq_ignore_ascii_case("utf8mb4") => {}
            "charset" => return Err(bad_url("charset: only utf8mb4 is supported (every session uses it)")),
            other => {
                // Keys are names, not secrets, so this one may be quoted to help the user.
                return Err(bad_url(&format!("unsupported parameter {other:?}")));
            }
        }
    }
    if host.is_empty() {
        return Err(bad_url("no host"));
    }
    if user.is_empty() {
        return Err(bad_url("no user name"));
    }
    Ok(ConnectOptions { host, port, credentials: Credentials { user, password, database }, ssl, timeout_ms })
}

#[cfg(test)]
mod tests;
