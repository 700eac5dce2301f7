//! A thin async MySQL connection over any byte stream: the codec does the protocol, this
//! moves its bytes, and every read and write has a deadline so that a silent server or a
//! connection lost mid-result ends in an error, never a hang.

use super::auth;
use super::binlog;
use super::codec::{self, caps, ColumnDef, Handshake, Packet, Param, ServerError};
use bytes::BytesMut;
use futures_util::future::{select, Either};
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Sleeps for the deadlines: tokio's timer natively, `worker::Delay` in the Worker.
pub trait Timer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// Why a conversation with the server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with an error; the connection is still usable.
    Server(ServerError),
    /// The connection is gone or out of step: IO error, early close, timeout, bad bytes.
    Broken(String),
    /// A login that cannot go on as configured (plugin, TLS); says what to change.
    Config(String),
    /// A value could not be decoded; the connection is still in step.
    Data(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Server(e) => e.fmt(f),
            ClientError::Broken(m) | ClientError::Config(m) | ClientError::Data(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ClientError {}

pub type ClientResult<T> = Result<T, ClientError>;

fn protocol(what: &str, e: String) -> ClientError {
    ClientError::Broken(format!("protocol error in {what}: {e}"))
}

/// How to log in; the password is only ever used to compute the scramble or, over TLS, sent.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Vec<u8>,
    pub database: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("database", &self.database).finish_non_exhaustive()
    }
}

/// A prepared statement: its id and what a result row looks like.
#[derive(Debug, Clone)]
pub struct Statement {
    pub id: u32,
    pub params: u16,
    pub columns: u16,
}

pub struct Conn<S> {
    stream: S,
    timer: Box<dyn Timer>,
    timeout_ms: u64,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    /// The sequence id of the next packet this side sends.
    seq: u8,
    /// Set once the stream failed or fell out of step; every later call fails at once.
    broken: Option<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S, timer: Box<dyn Timer>, timeout_ms: u64) -> Self {
        Conn { stream, timer, timeout_ms, rbuf: BytesMut::with_capacity(64 * 1024), wbuf: Vec::new(), seq: 0, broken: None }
    }

    /// The stream, e.g. to upgrade it to TLS after `ssl_request`.
    pub fn into_parts(self) -> (S, Box<dyn Timer>, u64) {
        (self.stream, self.timer, self.timeout_ms)
    }

    /// Reassembles after a TLS upgrade: the next packet continues the login's sequence.
    pub fn resume(stream: S, timer: Box<dyn Timer>, timeout_ms: u64, seq: u8) -> Self {
        let mut c = Conn::new(stream, timer, timeout_ms);
        c.seq = seq;
        c
    }

    pub fn seq(&self) -> u8 {
        self.seq
    }

    fn fail<T>(&mut self, m: String) -> ClientResult<T> {
        self.broken = Some(m.clone());
        Err(ClientError::Broken(m))
    }

    fn check(&self) -> ClientResult<()> {
        match &self.broken {
            Some(m) => Err(ClientError::Broken(format!("the connection failed earlier ({m})"))),
            None => Ok(()),
        }
    }

    /// Reads until one whole packet is buffered; each read waits at most the timeout.
    pub async fn read_packet(&mut self) -> ClientResult<Packet> {
        self.check()?;
        loop {
            if let Some(p) = codec::take_packet(&mut self.rbuf) {
                self.seq = p.seq.wrapping_add(1);
                return Ok(p);
            }
            if self.rbuf.capacity() - self.rbuf.len() < 8 * 1024 {
                self.rbuf.reserve(64 * 1024);
            }
            let read = self.stream.read_buf(&mut self.rbuf);
            let timeout = self.timer.sleep(self.timeout_ms);
            match select(Box::pin(read), timeout).await {
                Either::Left((Ok(0), _)) => return self.fail("the server closed the connection".into()),
                Either::Left((Ok(_), _)) => {}
                Either::Left((Err(e), _)) => return self.fail(format!("connection lost: {e}")),
                Either::Right(_) => {
                    return self.fail(format!("the server sent nothing for {} s", self.timeout_ms.div_ceil(1000)));
                }
            }
        }
    }

    /// Sends one payload as the next packet(s) of the current exchange.
    pub async fn write_payload(&mut self, payload: &[u8]) -> ClientResult<()> {
        self.check()?;
        self.wbuf.clear();
        self.seq = codec::write_packets(&mut self.wbuf, self.seq, payload);
        let write = async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        };
        let timeout = self.timer.sleep(self.timeout_ms);
        match select(Box::pin(write), timeout).await {
            Either::Left((Ok(()), _)) => Ok(()),
            Either::Left((Err(e), _)) => self.fail(format!("connection lost while sending: {e}")),
            Either::Right(_) => self.fail(format!("could not send for {} s", self.timeout_ms.div_ceil(1000))),
        }
    }

    /// Starts a new command: sequence ids restart at 0.
    async fn command(&mut self, payload: &[u8]) -> ClientResult<()> {
        self.seq = 0;
        self.write_payload(payload).await
    }

    /// The server's greeting; an ERR here (too many connections, host blocked) is returned.
    pub async fn read_handshake(&mut self) -> ClientResult<Handshake> {
        let p = self.read_packet().await?;
        if p.payload.first() == Some(&0xFF) {
            let e = codec::parse_err(&p.payload).map_err(|e| protocol("the greeting", e))?;
            return Err(ClientError::Server(e));
        }
        match codec::parse_handshake(&p.payload) {
            Ok(h) if h.capabilities & caps::PROTOCOL_41 == 0 => {
                self.fail("the server does not speak protocol 4.1 (MySQL 4.1 or later is needed)".into())
            }
            Ok(h) => Ok(h),
            Err(e) => self.fail(format!("protocol error in the greeting: {e}")),
        }
    }

    fn client_caps(&self, hs: &Handshake, creds: &Credentials) -> u32 {
        let mut c = caps::CLIENT & hs.capabilities | caps::PROTOCOL_41;
        if creds.database.as_deref().is_some_and(|d| !d.is_empty()) && hs.capabilities & caps::CONNECT_WITH_DB != 0 {
            c |= caps::CONNECT_WITH_DB;
        }
        c
    }

    /// Asks to continue in TLS; the caller upgrades the stream next and calls `resume`.
    pub async fn ssl_request(&mut self, hs: &Handshake, creds: &Credentials) -> ClientResult<()> {
        let c = self.client_caps(hs, creds);
        self.write_payload(&codec::ssl_request(c)).await
    }

    /// Logs in after the greeting (and after TLS, when `tls`): sends the login, then answers
    /// plugin switches and caching_sha2_password's requests until the server says OK.
    pub async fn login(&mut self, hs: &Handshake, creds: &Credentials, tls: bool) -> ClientResult<()> {
        let capabilities = self.client_caps(hs, creds) | if tls { caps::SSL } else { 0 };
        let mut plugin = if hs.auth_plugin.is_empty() { "mysql_native_password".to_string() } else { hs.auth_plugin.clone() };
        let mut nonce = hs.scramble.clone();
        let response = auth::first_response(&plugin, &creds.password, &nonce, tls).map_err(ClientError::Config)?;
        let login = codec::Login {
            capabilities,
            user: &creds.user,
            auth_response: &response,
            database: creds.database.as_deref(),
            auth_plugin: &plugin,
        };
        self.write_payload(&codec::login(&login)).await?;
        let mut switches = 0;
        loop {
            let p = self.read_packet().await?;
            match codec::parse_auth_reply(&p.payload).map_err(|e| protocol("the login", e))? {
                codec::AuthReply::Ok => return Ok(()),
                codec::AuthReply::Err(e) => return Err(ClientError::Server(e)),
                codec::AuthReply::Switch { plugin: p, data } => {
                    switches += 1;
                    if switches > 2 {
                        return self.fail("the server keeps switching authentication plugins".into());
                    }
                    plugin = p;
                    nonce = data;
                    let r = auth::first_response(&plugin, &creds.password, &nonce, tls).map_err(ClientError::Config)?;
                    self.write_payload(&r).await?;
                }
                codec::AuthReply::More(data) if plugin == "caching_sha2_password" => match data.first() {
                    Some(&auth::FAST_AUTH_OK) => {}
                    Some(&auth::FULL_AUTH) if tls => self.write_payload(&auth::clear_password(&creds.password)).await?,
                    Some(&auth::FULL_AUTH) => {
                        return Err(ClientError::Config(format!(
                            "caching_sha2_password: the server has no cached login for this user and needs the full \
                             authentication, which sends the password; {}",
                            "this client sends it only over TLS: set ssl-mode=require in the URL, connect through \
                             Hyperdrive, or log in once with another client so the server caches it, or give the user \
                             mysql_native_password"
                        )))
                    }
                    _ => return self.fail(format!("unexpected caching_sha2_password data {}", codec::to_hex(&data))),
                },
                codec::AuthReply::More(_) => return self.fail(format!("unexpected authentication data for {plugin}")),
            }
        }
    }

    /// Reads an OK (or ERR) that answers a command without a result set.
    async fn read_ok(&mut self, what: &str) -> ClientResult<codec::OkPacket> {
        let p = self.read_packet().await?;
        match p.payload.first() {
            Some(0xFF) => Err(ClientError::Server(codec::parse_err(&p.payload).map_err(|e| protocol(what, e))?)),
            Some(0x00) => codec::parse_ok(&p.payload).map_err(|e| protocol(what, e)),
            _ => self.fail(format!("protocol error in {what}: expected OK")),
        }
    }

    /// Runs statements that return no rows (`SET ...`).
    pub async fn execute_simple(&mut self, sql: &str) -> ClientResult<()> {
        self.command(&codec::com_query(sql)).await?;
        let mut ok = self.read_ok("a query").await?;
        // A multi-statement answer: every further result must be an OK too.
        while ok.status & codec::MORE_RESULTS != 0 {
            ok = self.read_ok("a query").await?;
        }
        Ok(())
    }

    /// Reads definitions up to their closing EOF.
    async fn read_defs(&mut self, n: usize, what: &str) -> ClientResult<Vec<ColumnDef>> {
        let mut defs = Vec::with_capacity(n);
        for _ in 0..n {
            let p = self.read_packet().await?;
            match codec::parse_column_def(&p.payload) {
                Ok(d) => defs.push(d),
                Err(e) => return self.fail(format!("protocol error in {what}: {e}")),
            }
        }
        let p = self.read_packet().await?;
        if !codec::is_eof(&p.payload) {
            return self.fail(format!("protocol error in {what}: expected EOF after the definitions"));
        }
        Ok(defs)
    }

    pub async fn prepare(&mut self, sql: &str) -> ClientResult<Statement> {
        self.command(&codec::com_stmt_prepare(sql)).await?;
        let p = self.read_packet().await?;
        if p.payload.first() == Some(&0xFF) {
            return Err(ClientError::Server(codec::parse_err(&p.payload).map_err(|e| protocol("a prepare", e))?));
        }
        let ok = match codec::parse_prepare_ok(&p.payload) {
            Ok(ok) => ok,
            Err(e) => return self.fail(format!("protocol error in a prepare: {e}")),
        };
        if ok.params > 0 {
            self.read_defs(ok.params.into(), "a prepare").await?;
        }
        if ok.columns > 0 {
            self.read_defs(ok.columns.into(), "a prepare").await?;
        }
        Ok(Statement { id: ok.statement_id, params: ok.params, columns: ok.columns })
    }

    /// Frees a statement on the server. It has no answer, so it cannot fail but by IO.
    pub async fn close_statement(&mut self, id: u32) -> ClientResult<()> {
        self.command(&codec::com_stmt_close(id)).await
    }

    /// Starts reading the binlog as replica `server_id`: `COM_REGISTER_SLAVE`, then
    /// `COM_BINLOG_DUMP` of `file` from `position` with `flags` (`binlog::dump_flag`). Set the
    /// session up first (`SET @master_binlog_checksum = @@global.binlog_checksum`, MariaDB's
    /// `@mariadb_slave_capability = 4`); then read with `read_binlog_event` until it answers
    /// `None`. A non-blocking dump that reached the end leaves the connection usable.
    pub async fn binlog_dump(&mut self, file: &str, position: u32, flags: u16, server_id: u32) -> ClientResult<()> {
        self.command(&binlog::com_register_slave(server_id, "edge-replica")).await?;
        self.read_ok("COM_REGISTER_SLAVE").await?;
        self.command(&binlog::com_binlog_dump(file, position, flags, server_id)).await
    }

    /// The next packet of a binlog dump: its payload (0x00 and an event, for
    /// `binlog::Decoder::decode(&payload[1..])`), or `None` at the end of a non-blocking dump.
    pub async fn read_binlog_event(&mut self) -> ClientResult<Option<BytesMut>> {
        let p = self.read_packet().await?;
        match binlog::dump_packet(&p.payload) {
            Ok(binlog::DumpPacket::Event(_)) => Ok(Some(p.payload)),
            Ok(binlog::DumpPacket::Eof) => Ok(None),
            Ok(binlog::DumpPacket::Error(e)) => Err(ClientError::Server(e)),
            Err(e) => self.fail(format!("protocol error in a binlog dump: {}", e.detail)),
        }
    }

    /// Executes `stmt` and hands each binary row to `on_row` with the result's columns.
    /// A statement without a result set (none here) gives no rows.
    pub async fn execute<F>(&mut self, stmt: &Statement, params: &[Param], mut on_row: F) -> ClientResult<Vec<ColumnDef>>
    where
        F: FnMut(&[ColumnDef], &[u8]) -> Result<(), String>,
    {
        if params.len() != usize::from(stmt.params) {
            return Err(ClientError::Data(format!("{} parameters for a statement that has {}", params.len(), stmt.params)));
        }
        self.command(&codec::com_stmt_execute(stmt.id, params)).await?;
        let p = self.read_packet().await?;
        match p.payload.first() {
            Some(0xFF) => return Err(ClientError::Server(codec::parse_err(&p.payload).map_err(|e| protocol("a result", e))?)),
            Some(0x00) => return Ok(Vec::new()),
            _ => {}
        }
        let n = match codec::parse_column_count(&p.payload) {
            Ok(n) if n > 0 && n < 65_536 => n as usize,
            _ => return self.fail("protocol error in a result: bad column count".into()),
        };
        let defs = self.read_defs(n, "a result").await?;
        let mut failed: Option<String> = None;
        loop {
            let p = self.read_packet().await?;
            match p.payload.first() {
                Some(0x00) => {
                    // Keep reading after a decoding failure so the connection stays in step.
                    if failed.is_none() {
                        if let Err(e) = on_row(&defs, &p.payload) {
                            failed = Some(e);
                        }
                    }
                }
                Some(0xFE) if codec::is_eof(&p.payload) => {
                    if codec::eof_status(&p.payload) & codec::MORE_RESULTS != 0 {
                        return self.fail("a statement returned more than one result set".into());
                    }
                    break;
                }
                // A statement can fail after its first rows (e.g. a conversion error).
                Some(0xFF) => return Err(ClientError::Server(codec::parse_err(&p.payload).map_err(|e| protocol("a result", e))?)),
                _ => return self.fail("protocol error in a result: unexpected packet among the rows".into()),
            }
        }
        match failed {
            Some(e) => Err(ClientError::Data(e)),
            None => Ok(defs),
        }
    }
}
