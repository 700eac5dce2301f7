//! Opening a config's source with the Worker's IO: sockets, Hyperdrive, secrets.

use super::env;
use super::socket::{StartTls, TcpStream};
use crate::config::{Config, SourceSpec, SourceType};
use crate::error::{Error, Result};
use crate::source::postgres::{self, PostgresSource};
use crate::source::{Column, PageRequest, Source, TableName, TableSchema};
use crate::value::Value;
use futures_util::future::{select, Either};
use std::time::Duration;
use tokio_postgres::config::SslMode;
use worker::{Delay, Env, Socket};

/// Connecting includes DNS, TCP, TLS and auth; an origin that takes longer is treated as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Every source this Worker can open; the engine sees one `Source`.
pub enum AnySource {
    Postgres(PostgresSource),
    Sqlite(super::open_sqlite::SqliteAny),
    Mysql(crate::source::mysql::MysqlSource<Socket>),
}

impl Source for AnySource {
    fn describe_origin(&self) -> String {
        match self {
            AnySource::Postgres(s) => s.describe_origin(),
            AnySource::Sqlite(s) => s.describe_origin(),
            AnySource::Mysql(s) => s.describe_origin(),
        }
    }
    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        match self {
            AnySource::Postgres(s) => s.table_schema(table).await,
            AnySource::Sqlite(s) => s.table_schema(table).await,
            AnySource::Mysql(s) => s.table_schema(table).await,
        }
    }
    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        match self {
            AnySource::Postgres(s) => s.fetch_page(page).await,
            AnySource::Sqlite(s) => s.fetch_page(page).await,
            AnySource::Mysql(s) => s.fetch_page(page).await,
        }
    }
    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        match self {
            AnySource::Postgres(s) => s.count_nulls(table, column).await,
            AnySource::Sqlite(s) => s.count_nulls(table, column).await,
            AnySource::Mysql(s) => s.count_nulls(table, column).await,
        }
    }
}

pub async fn with_timeout<T>(what: &str, origin: &str, limit: Duration, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match select(Box::pin(f), Box::pin(Delay::from(limit))).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(Error::source(origin, format!("{what} timed out after {} s", limit.as_secs()))),
    }
}

pub async fn open(env: &Env, cfg: &Config) -> Result<AnySource> {
    let spec = match &cfg.source {
        Some(s) => s.clone(),
        None => default_spec(env)?,
    };
    match spec.kind {
        SourceType::Postgres => open_postgres(env, &spec).await.map(AnySource::Postgres),
        SourceType::Mysql => super::open_mysql::open(env, &spec).await.map(AnySource::Mysql),
        SourceType::Libsql | SourceType::D1 | SourceType::Starbase => {
            super::open_sqlite::open(env, &spec, cfg.source.is_none()).map(AnySource::Sqlite)
        }
    }
}

/// The instance default as a spec: a `HYPERDRIVE` binding, else `EXTERNAL_DB_*` variables
/// (represented by the pseudo secret name `EXTERNAL_DB_*`).
fn default_spec(env: &Env) -> Result<SourceSpec> {
    let kind = env::default_source_type(env)
        .ok_or_else(|| Error::bad_request("the config has no source and this instance has no default external database"))?;
    if matches!(kind, SourceType::Libsql | SourceType::D1 | SourceType::Starbase) {
        return super::open_sqlite::default_spec(env, kind);
    }
    let hyperdrive = (kind == SourceType::Postgres || kind == SourceType::Mysql)
        .then(|| "HYPERDRIVE".to_string())
        .filter(|h| crate::config::Bindings::has_hyperdrive(env, h));
    Ok(SourceSpec {
        kind,
        url_secret: if hyperdrive.is_none() { Some("EXTERNAL_DB_*".into()) } else { None },
        hyperdrive,
        url: None,
        token_secret: None,
        binding: None,
        account_id: None,
        database_id: None,
    })
}

/// `-c search_path=<schema>` as a startup option: the name quoted (case kept), with the
/// backslash escapes PostgreSQL's option splitting expects for spaces and backslashes.
fn search_path_option(schema: &str) -> String {
    let quoted = crate::ident::quote_double(schema);
    let mut escaped = String::with_capacity(quoted.len());
    for c in quoted.chars() {
        if c.is_whitespace() || c == '\\' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("-c search_path={escaped}")
}

async fn open_postgres(env: &Env, spec: &SourceSpec) -> Result<PostgresSource> {
    let (config, host, port, via) = if let Some(name) = &spec.hyperdrive {
        let hd = env.hyperdrive(name).map_err(|e| Error::bad_request(format!("Hyperdrive binding {name:?}: {e}")))?;
        let mut c = tokio_postgres::Config::new();
        c.user(hd.user()).password(hd.password()).dbname(hd.database()).ssl_mode(SslMode::Disable);
        (c, hd.host(), hd.port(), format!("hyperdrive {name}"))
    } else if spec.url_secret.as_deref() == Some("EXTERNAL_DB_*") {
        let var = |n: &str| env::string(env, n);
        let host = var("EXTERNAL_DB_HOST").ok_or_else(|| Error::bad_request("EXTERNAL_DB_HOST is not set"))?;
        let port = env::text(env, "EXTERNAL_DB_PORT").and_then(|p| p.parse().ok()).unwrap_or(5432);
        let mut c = tokio_postgres::Config::new();
        c.user(var("EXTERNAL_DB_USER").unwrap_or_else(|| "postgres".into()));
        if let Some(p) = var("EXTERNAL_DB_PASS") {
            c.password(p);
        }
        c.dbname(var("EXTERNAL_DB_DATABASE").unwrap_or_else(|| "postgres".into()));
        c.ssl_mode(SslMode::Prefer);
        // StarbaseDB's default schema: unqualified tables resolve there first.
        if let Some(schema) = var("EXTERNAL_DB_DEFAULT_SCHEMA").filter(|s| !s.is_empty()) {
            c.options(search_path_option(&schema));
        }
        (c, host, port, "EXTERNAL_DB_* settings".to_string())
    } else {
        let name = spec.url_secret.as_deref().unwrap_or_default();
        let url = env::string(env, name).ok_or_else(|| Error::bad_request(format!("secret {name:?} is not set")))?;
        let (c, host, port) = postgres::parse_url(&url).map_err(|e| e.context(format!("secret {name}")))?;
        (c, host, port, format!("url_secret {name}"))
    };
    let origin = format!("postgres via {via} ({host}:{port}/{})", config.get_dbname().unwrap_or(""));
    let connect = |config: tokio_postgres::Config| {
        let (host, origin) = (host.clone(), origin.clone());
        async move {
            let socket = TcpStream::connect(&host, port, config.get_ssl_mode() != SslMode::Disable)
                .map_err(|e| Error::source(&origin, format!("cannot open a socket: {e}")))?;
            let connect =
                async { config.connect_raw(socket, StartTls).await.map_err(|e| Error::source(&origin, postgres::describe_error(&e))) };
            with_timeout("connecting", &origin, CONNECT_TIMEOUT, connect).await
        }
    };
    let plain_fallback = spec.url_secret.as_deref() == Some("EXTERNAL_DB_*") && config.get_ssl_mode() == SslMode::Prefer;
    let (client, connection) = match connect(config.clone()).await {
        Ok(c) => c,
        // StarbaseDB reaches EXTERNAL_DB_* without TLS. TLS is tried first here, but the
        // platform's TLS always verifies the certificate (libpq's `prefer` does not), so a
        // server with a self-signed one gets a second, plain attempt; both failures are told.
        Err(tls) if plain_fallback => {
            let mut plain = config.clone();
            plain.ssl_mode(SslMode::Disable);
            let prefix = format!("source {origin}: ");
            let strip = |e: &Error| e.message().strip_prefix(prefix.as_str()).unwrap_or(e.message()).to_string();
            connect(plain).await.map_err(|e| Error::source(&origin, format!("with TLS: {}; without TLS: {}", strip(&tls), strip(&e))))?
        }
        Err(e) => return Err(e),
    };
    wasm_bindgen_futures::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(PostgresSource::new(client, origin))
}
