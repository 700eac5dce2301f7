//! Opening a PostgreSQL source with the Worker's IO: this crate's `TcpStream` (upgraded with
//! StartTLS when `sslmode` asks), and the connection details from a Hyperdrive binding, a URL
//! secret or the instance's `EXTERNAL_DB_*` variables.

use super::deadline::{within, CONNECT_TIMEOUT};
use super::env;
use super::socket::{StartTls, TcpStream};
use crate::config::Connection;
use crate::error::{Error, Result};
use crate::source::postgres::{self, PostgresSource};
use tokio_postgres::config::SslMode;
use worker::Env;

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

/// The driver's configuration, host and port, and how the origin is named in messages.
fn settings(env: &Env, connection: &Connection) -> Result<(tokio_postgres::Config, String, u16, String)> {
    Ok(match connection {
        Connection::Hyperdrive(name) => {
            let hd = env.hyperdrive(name).map_err(|e| Error::bad_request(format!("Hyperdrive binding {name:?}: {e}")))?;
            let mut c = tokio_postgres::Config::new();
            c.user(hd.user()).password(hd.password()).dbname(hd.database()).ssl_mode(SslMode::Disable);
            (c, hd.host(), hd.port(), format!("hyperdrive {name}"))
        }
        Connection::InstanceDefault => {
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
        }
        Connection::UrlSecret(name) => {
            let url = env::string(env, name).ok_or_else(|| Error::bad_request(format!("secret {name:?} is not set")))?;
            let (c, host, port) = postgres::parse_url(&url).map_err(|e| e.context(format!("secret {name}")))?;
            (c, host, port, format!("url_secret {name}"))
        }
    })
}

pub async fn open(env: &Env, connection: &Connection) -> Result<PostgresSource> {
    let (config, host, port, via) = settings(env, connection)?;
    let origin = format!("postgres via {via} ({host}:{port}/{})", config.get_dbname().unwrap_or(""));
    let connect = |config: tokio_postgres::Config| {
        let (host, origin) = (host.clone(), origin.clone());
        async move {
            let socket = TcpStream::connect(&host, port, config.get_ssl_mode() != SslMode::Disable)
                .map_err(|e| Error::at_origin(&origin, format!("cannot open a socket: {e}")))?;
            let connect = config.connect_raw(socket, StartTls);
            match within(CONNECT_TIMEOUT, connect).await {
                Some(Ok(c)) => Ok(c),
                Some(Err(e)) => Err(Error::at_origin(&origin, postgres::describe_error(&e)).with_cause(e)),
                None => Err(Error::at_origin(&origin, format!("connecting timed out after {} s", CONNECT_TIMEOUT.as_secs()))),
            }
        }
    };
    let plain_fallback = *connection == Connection::InstanceDefault && config.get_ssl_mode() == SslMode::Prefer;
    let (client, connection) = match connect(config.clone()).await {
        Ok(c) => c,
        // StarbaseDB reaches EXTERNAL_DB_* without TLS. TLS is tried first here, but the
        // platform's TLS always verifies the certificate (libpq's `prefer` does not), so a
        // server with a self-signed one gets a second, plain attempt; both failures are told.
        Err(tls) if plain_fallback => {
            let mut plain = config.clone();
            plain.ssl_mode(SslMode::Disable);
            connect(plain)
                .await
                .map_err(|e| Error::at_origin(&origin, format!("with TLS: {}; without TLS: {}", tls.detail(), e.detail())))?
        }
        Err(e) => return Err(e),
    };
    wasm_bindgen_futures::spawn_local(async move {
        let _ = connection.await;
    });
    // Values the server renders as text (arrays through array_to_json, casts, and every value
    // of a change feed) depend on the session: fix it, so a copy and a feed store the same.
    client
        .batch_execute(&postgres::SESSION_SETTINGS.join("; "))
        .await
        .map_err(|e| Error::at_origin(&origin, postgres::describe_error(&e)).with_cause(e))?;
    Ok(PostgresSource::new(client, origin))
}
