//! Opening a MySQL or MariaDB source with the Worker's IO: a `worker::Socket` (upgraded to
//! TLS in place when the URL asks for it), `worker::Delay` for the client's deadlines, and
//! the connection details from a Hyperdrive binding, a URL secret or `EXTERNAL_DB_*`.

use super::env;
use super::sources::with_timeout;
use crate::config::SourceSpec;
use crate::error::{Error, Result};
use crate::source::mysql::client::{Credentials, Timer};
use crate::source::mysql::{self, ConnectOptions, MysqlSource, SslMode};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use worker::{Delay, Env, SecureTransport, Socket};

/// Greeting, TLS, login and session set-up together; an origin that takes longer is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

struct WorkerTimer;

impl Timer for WorkerTimer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(Delay::from(Duration::from_millis(ms)))
    }
}

fn options(env: &Env, spec: &SourceSpec) -> Result<(ConnectOptions, String)> {
    if let Some(name) = &spec.hyperdrive {
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
        return Ok((o, format!("hyperdrive {name}")));
    }
    if spec.url_secret.as_deref() == Some("EXTERNAL_DB_*") {
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
        return Ok((o, "EXTERNAL_DB_* settings".to_string()));
    }
    let name = spec.url_secret.as_deref().unwrap_or_default();
    let url = env::string(env, name).ok_or_else(|| Error::bad_request(format!("secret {name:?} is not set")))?;
    let o = mysql::parse_url(&url).map_err(|e| e.context(format!("secret {name}")))?;
    Ok((o, format!("url_secret {name}")))
}

pub async fn open(env: &Env, spec: &SourceSpec) -> Result<MysqlSource<Socket>> {
    let (opts, via) = options(env, spec)?;
    let database = opts.credentials.database.clone();
    let origin = format!("mysql via {via} ({}:{}/{})", opts.host, opts.port, database.as_deref().unwrap_or(""));
    let mut builder = Socket::builder();
    if opts.ssl != SslMode::Disable {
        builder = builder.secure_transport(SecureTransport::StartTls);
    }
    let socket = builder
        .connect(opts.host.clone(), opts.port)
        .map_err(|e| Error::source(&origin, format!("cannot open a socket to {}:{}: {e}", opts.host, opts.port)))?;
    let upgrade = |s: Socket| async move { Ok::<_, String>(s.start_tls()) };
    let connect = async {
        // A refused connection shows here with the runtime's reason; reading would only see EOF.
        socket.opened().await.map_err(|e| Error::source(&origin, format!("cannot connect to {}:{}: {e}", opts.host, opts.port)))?;
        mysql::connect(socket, Box::new(WorkerTimer), &opts, Some(upgrade)).await.map_err(|e| Error::source(&origin, e))
    };
    let conn = with_timeout("connecting", &origin, CONNECT_TIMEOUT, connect).await?;
    Ok(MysqlSource::new(conn, origin, database))
}
