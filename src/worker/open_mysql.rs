//! Opening a MySQL or MariaDB source with the Worker's IO: this crate's `TcpStream` (the same
//! one PostgreSQL reads through, upgraded to TLS in place when the URL asks for it), the one
//! deadline helper for the client's timers, and the connection details from a Hyperdrive
//! binding, a URL secret or `EXTERNAL_DB_*`.

use super::deadline::{within, CONNECT_TIMEOUT};
use super::env;
use super::socket::TcpStream;
use crate::config::Connection;
use crate::error::{Error, Result};
use crate::source::mysql::cdc::Dialer;
use crate::source::mysql::client::{Conn, Credentials, Timer};
use crate::source::mysql::{self, ConnectOptions, MysqlSource, SslMode};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use worker::{Delay, Env};

struct WorkerTimer;

impl Timer for WorkerTimer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(Delay::from(Duration::from_millis(ms)))
    }
}

fn options(env: &Env, connection: &Connection) -> Result<(ConnectOptions, String)> {
    match connection {
        Connection::Hyperdrive(name) => {
            let hd = env.hyperdrive(name).map_err(|e| Error::bad_request(format!("Hyperdrive binding {name:?}: {e}")))?;
            // The Worker reaches Hyperdrive inside Cloudflare's network (locally: a TCP pass-through);
            // Hyperdrive itself speaks TLS to the origin when the origin offers it.
            let o = ConnectOptions {
                host: hd.host(),
                port: hd.port(),
                credentials: Credentials {
                    user: hd.user(),
                    password: hd.password().into_bytes(),
                    database: Some(hd.database()).filter(|d| !d.is_empty()),
                },
                ssl: SslMode::Disable,
                timeout_ms: mysql::DEFAULT_TIMEOUT_MS,
            };
            Ok((o, format!("hyperdrive {name}")))
        }
        Connection::InstanceDefault => {
            let var = |n: &str| env::string(env, n);
            let host = var("EXTERNAL_DB_HOST").ok_or_else(|| Error::bad_request("EXTERNAL_DB_HOST is not set"))?;
            let port = env::text(env, "EXTERNAL_DB_PORT").and_then(|p| p.parse().ok()).unwrap_or(3306);
            let o = ConnectOptions {
                host,
                port,
                credentials: Credentials {
                    user: var("EXTERNAL_DB_USER").unwrap_or_else(|| "root".into()),
                    password: var("EXTERNAL_DB_PASS").unwrap_or_default().into_bytes(),
                    database: var("EXTERNAL_DB_DATABASE").filter(|d| !d.is_empty()),
                },
                ssl: SslMode::Prefer,
                timeout_ms: mysql::DEFAULT_TIMEOUT_MS,
            };
            Ok((o, "EXTERNAL_DB_* settings".to_string()))
        }
        Connection::UrlSecret(name) => {
            let url = env::string(env, name).ok_or_else(|| Error::bad_request(format!("secret {name:?} is not set")))?;
            let o = mysql::parse_url(&url).map_err(|e| e.context(format!("secret {name}")))?;
            Ok((o, format!("url_secret {name}")))
        }
    }
}

pub async fn open(env: &Env, connection: &Connection) -> Result<MysqlSource<TcpStream>> {
    let (opts, via) = options(env, connection)?;
    let database = opts.credentials.database.clone();
    let origin = format!("mysql via {via} ({}:{}/{})", opts.host, opts.port, database.as_deref().unwrap_or(""));
    let conn = dial(&opts, &origin).await?;
    // The binlog dump of a cdc run takes a connection of its own, opened the same way.
    let dial_origin = origin.clone();
    let dialer: Dialer<TcpStream> = Box::new(move || {
        let (opts, origin) = (opts.clone(), dial_origin.clone());
        Box::pin(async move { dial(&opts, &origin).await })
    });
    Ok(MysqlSource::new(conn, origin, database).with_dialer(dialer))
}

/// A logged-in, set-up connection.
async fn dial(opts: &ConnectOptions, origin: &str) -> Result<Conn<TcpStream>> {
    let (host, port) = (opts.host.clone(), opts.port);
    let socket = TcpStream::connect(&host, port, opts.ssl != SslMode::Disable)
        .map_err(|e| Error::at_origin(origin, format!("cannot open a socket to {host}:{port}: {e}")))?;
    let upgrade = |s: TcpStream| async move { s.start_tls().map_err(|e| e.to_string()) };
    let connect = async {
        // A refused connection shows here with the runtime's reason; reading would only see EOF.
        socket.opened().await.map_err(|e| Error::at_origin(origin, format!("cannot connect to {host}:{port}: {e}")))?;
        mysql::connect(socket, Box::new(WorkerTimer), opts, Some(upgrade)).await.map_err(|e| Error::at_origin(origin, &e).with_cause(e))
    };
    within(CONNECT_TIMEOUT, connect)
        .await
        .unwrap_or_else(|| Err(Error::at_origin(origin, format!("connecting timed out after {} s", CONNECT_TIMEOUT.as_secs()))))
}
