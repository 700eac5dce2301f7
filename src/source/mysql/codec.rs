//! The MySQL client/server protocol as pure functions over byte buffers: framing, and the few
//! packets this client sends and reads. No IO here, so every packet kind is tested natively
//! against bytes captured from a real MariaDB.
//!
//! Written by hand rather than with `mysql_common`: a read-only replica client needs about a
//! dozen packet kinds, and `mysql_common` would add ~1 MB to the Worker's wasm (this whole
//! client, types and auth included, adds ~150 KB), pull in `flate2`, `getrandom` and
//! big-number crates, and decode values into its own types that would still need converting.
//!
//! The client never sets `CLIENT_DEPRECATE_EOF`, so result sets always end their column
//! definitions and their rows with EOF packets, as every MySQL and MariaDB version sends them.

use bytes::{Buf, BytesMut};

/// One packet carries at most this many payload bytes; a payload of exactly this size (or
/// more) continues in the next packet, and a payload that is a multiple of it ends with an
/// empty packet.
pub const MAX_PACKET: usize = 0xFF_FFFF;

pub mod caps {
    pub const LONG_PASSWORD: u32 = 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const SSL: u32 = 1 << 11;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
    pub const DEPRECATE_EOF: u32 = 1 << 24;

    /// What this client can speak; the handshake keeps the part the server offers too.
    pub const CLIENT: u32 = LONG_PASSWORD
        | LONG_FLAG
        | PROTOCOL_41
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | PLUGIN_AUTH_LENENC_CLIENT_DATA;
}

/// Column types on the wire (`enum_field_types`).
pub mod ty {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

pub mod flag {
    pub const UNSIGNED: u16 = 32;
    pub const BINARY: u16 = 128;
    pub const ENUM: u16 = 256;
    pub const SET: u16 = 2048;
}

/// The `binary` character set: byte strings, not text.
pub const BINARY_CHARSET: u16 = 63;
/// utf8mb4_general_ci: known to every server with utf8mb4 (MySQL 5.5.3+, all MariaDB).
pub const UTF8MB4_GENERAL_CI: u8 = 45;

const COM_QUERY: u8 = 0x03;
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_EXECUTE: u8 = 0x17;
const COM_STMT_CLOSE: u8 = 0x19;
/// `SERVER_MORE_RESULTS_EXISTS` in an OK or EOF packet's status.
pub const MORE_RESULTS: u16 = 0x0008;

pub type CodecResult<T> = Result<T, String>;

/// Appends `payload` framed as packets from sequence id `seq`; returns the next sequence id.
pub fn write_packets(out: &mut Vec<u8>, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PACKET);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(seq);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PACKET {
            return seq;
        }
    }
}

/// One logical packet: the payload of one or more frames joined, and the last frame's
/// sequence id (a reply to it uses the next one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub seq: u8,
    pub payload: BytesMut,
}

/// Takes one complete logical packet off the front of `buf`, or `None` when more bytes are
/// needed. Frames of one packet are joined; the common single-frame case copies nothing.
pub fn take_packet(buf: &mut BytesMut) -> Option<Packet> {
    let mut pos = 0;
    let mut frames = 0;
    let seq = loop {
        let header = buf.get(pos..pos + 4)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        let seq = header[3];
        if buf.len() < pos + 4 + len {
            return None;
        }
        pos += 4 + len;
        frames += 1;
        if len < MAX_PACKET {
            break seq;
        }
    };
    let mut frame_bytes = buf.split_to(pos);
    if frames == 1 {
        frame_bytes.advance(4);
        return Some(Packet { seq, payload: frame_bytes });
    }
    let mut payload = BytesMut::with_capacity(pos - 4 * frames);
    while !frame_bytes.is_empty() {
        let len = u32::from_le_bytes([frame_bytes[0], frame_bytes[1], frame_bytes[2], 0]) as usize;
        frame_bytes.advance(4);
        payload.extend_from_slice(&frame_bytes.split_to(len));
    }
    Some(Packet { seq, payload })
}

/// Reads fields off the front of a payload; every read checks the length.
pub struct Reader<'a> {
    b: &'a [u8],
}

fn short() -> String {
    "packet ends early".to_string()
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b }
    }
    pub fn rest(&self) -> &'a [u8] {
        self.b
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub fn bytes(&mut self, n: usize) -> CodecResult<&'a [u8]> {
        if self.b.len() < n {
            return Err(short());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn u8(&mut self) -> CodecResult<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> CodecResult<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> CodecResult<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> CodecResult<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn array<const N: usize>(&mut self) -> CodecResult<[u8; N]> {
        Ok(self.bytes(N)?.try_into().expect("length checked"))
    }
    /// Length-encoded integer; `None` for the NULL marker 0xFB (text rows only).
    pub fn lenenc(&mut self) -> CodecResult<Option<u64>> {
        Ok(Some(match self.u8()? {
            0xFB => return Ok(None),
            0xFC => self.u16()?.into(),
            0xFD => {
                let b = self.bytes(3)?;
                u32::from_le_bytes([b[0], b[1], b[2], 0]).into()
            }
            0xFE => self.u64()?,
            0xFF => return Err("invalid length-encoded integer 0xFF".into()),
            n => n.into(),
        }))
    }
    pub fn lenenc_int(&mut self) -> CodecResult<u64> {
        self.lenenc()?.ok_or_else(|| "unexpected NULL marker".to_string())
    }
    pub fn lenenc_bytes(&mut self) -> CodecResult<&'a [u8]> {
        let n = self.lenenc_int()?;
        self.bytes(usize::try_from(n).map_err(|_| short())?)
    }
    pub fn lenenc_str(&mut self) -> CodecResult<String> {
        Ok(String::from_utf8_lossy(self.lenenc_bytes()?).into_owned())
    }
    /// NUL-terminated bytes; a missing NUL takes the rest (some servers omit the last one).
    pub fn nul_bytes(&mut self) -> &'a [u8] {
        match self.b.iter().position(|&c| c == 0) {
            Some(i) => {
                let s = &self.b[..i];
                self.b = &self.b[i + 1..];
                s
            }
            None => std::mem::take(&mut self.b),
        }
    }
    pub fn nul_str(&mut self) -> String {
        String::from_utf8_lossy(self.nul_bytes()).into_owned()
    }
}

pub fn put_lenenc(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=250 => out.push(n as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

pub fn put_lenenc_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_lenenc(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// The server's greeting (protocol version 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    pub charset: u8,
    pub status: u16,
    /// The 20-byte nonce the password scramble is salted with.
    pub scramble: Vec<u8>,
    pub auth_plugin: String,
}

impl Handshake {
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }
}

pub fn parse_handshake(p: &[u8]) -> CodecResult<Handshake> {
    let mut r = Reader::new(p);
    let version = r.u8()?;
    if version != 10 {
        return Err(format!("unsupported protocol version {version} (expected 10)"));
    }
    let server_version = r.nul_str();
    let connection_id = r.u32()?;
    let mut scramble = r.bytes(8)?.to_vec();
    r.u8()?;
    let mut capabilities = u32::from(r.u16()?);
    let (mut charset, mut status, mut auth_plugin) = (0, 0, String::new());
    if !r.is_empty() {
        charset = r.u8()?;
        status = r.u16()?;
        capabilities |= u32::from(r.u16()?) << 16;
        let data_len = r.u8()? as usize;
        r.bytes(10)?;
        if capabilities & caps::SECURE_CONNECTION != 0 {
            // The second part is at least 13 bytes, the last of them a NUL that is not nonce.
            let part2 = r.bytes(13.max(data_len.saturating_sub(8)))?;
            let part2 = part2.strip_suffix(&[0]).unwrap_or(part2);
            scramble.extend_from_slice(part2);
        }
        if capabilities & caps::PLUGIN_AUTH != 0 {
            auth_plugin = r.nul_str();
        }
    }
    Ok(Handshake { server_version, connection_id, capabilities, charset, status, scramble, auth_plugin })
}

/// The login request (HandshakeResponse41).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<'a> {
    pub capabilities: u32,
    pub user: &'a str,
    pub auth_response: &'a [u8],
    pub database: Option<&'a str>,
    pub auth_plugin: &'a str,
}

/// The fixed 32-byte start shared by the login request and the SSL request.
fn login_prefix(out: &mut Vec<u8>, capabilities: u32) {
    out.extend_from_slice(&capabilities.to_le_bytes());
    out.extend_from_slice(&(MAX_PACKET as u32 + 1).to_le_bytes());
    out.push(UTF8MB4_GENERAL_CI);
    out.extend_from_slice(&[0; 23]);
}

/// `SSLRequest`: the login's first 32 bytes with `CLIENT_SSL`; TLS starts right after it.
pub fn ssl_request(capabilities: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    login_prefix(&mut out, capabilities | caps::SSL);
    out
}

pub fn login(l: &Login<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + l.user.len() + l.auth_response.len());
    login_prefix(&mut out, l.capabilities);
    out.extend_from_slice(l.user.as_bytes());
    out.push(0);
    if l.capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        put_lenenc_bytes(&mut out, l.auth_response);
    } else {
        out.push(l.auth_response.len() as u8);
        out.extend_from_slice(l.auth_response);
    }
    if l.capabilities & caps::CONNECT_WITH_DB != 0 {
        out.extend_from_slice(l.database.unwrap_or("").as_bytes());
        out.push(0);
    }
    if l.capabilities & caps::PLUGIN_AUTH != 0 {
        out.extend_from_slice(l.auth_plugin.as_bytes());
        out.push(0);
    }
    out
}

/// An error the server reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub code: u16,
    /// Five characters; empty when the server sent none (errors before the handshake).
    pub state: String,
    pub message: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.state.is_empty() {
            write!(f, "MySQL error {}: {}", self.code, self.message)
        } else {
            write!(f, "MySQL error {} ({}): {}", self.code, self.state, self.message)
        }
    }
}

pub fn parse_err(p: &[u8]) -> CodecResult<ServerError> {
    let mut r = Reader::new(p);
    if r.u8()? != 0xFF {
        return Err("not an error packet".into());
    }
    let code = r.u16()?;
    let mut state = String::new();
    if r.rest().first() == Some(&b'#') {
        r.u8()?;
        state = String::from_utf8_lossy(r.bytes(5)?).into_owned();
    }
    Ok(ServerError { code, state, message: String::from_utf8_lossy(r.rest()).trim_end().to_string() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OkPacket {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
}

/// An OK packet (header 0x00, or 0xFE when it ends a result set under `DEPRECATE_EOF`).
pub fn parse_ok(p: &[u8]) -> CodecResult<OkPacket> {
    let mut r = Reader::new(p);
    let h = r.u8()?;
    if h != 0x00 && h != 0xFE {
        return Err("not an OK packet".into());
    }
    let affected_rows = r.lenenc_int()?;
    let last_insert_id = r.lenenc_int()?;
    let status = r.u16()?;
    let warnings = r.u16()?;
    Ok(OkPacket { affected_rows, last_insert_id, status, warnings })
}

/// An EOF packet: 0xFE and at most 4 more bytes (a longer packet starting 0xFE is a row).
pub fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xFE) && p.len() < 9
}

/// The status flags of an EOF packet (0 for the pre-4.1 form without them).
pub fn eof_status(p: &[u8]) -> u16 {
    match p.get(3..5) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// What answers the login: success, an error, a request to use another plugin, or more data
/// for the current plugin (caching_sha2_password's fast/full path byte, a public key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    Ok,
    Err(ServerError),
    Switch { plugin: String, data: Vec<u8> },
    More(Vec<u8>),
}

pub fn parse_auth_reply(p: &[u8]) -> CodecResult<AuthReply> {
    match p.first() {
        Some(0x00) => Ok(AuthReply::Ok),
        Some(0xFF) => parse_err(p).map(AuthReply::Err),
        Some(0xFE) => {
            let mut r = Reader::new(&p[1..]);
            if r.is_empty() {
                // The pre-4.1 "use the old password hash" request.
                return Ok(AuthReply::Switch { plugin: "mysql_old_password".into(), data: Vec::new() });
            }
            let plugin = r.nul_str();
            let data = r.rest();
            let data = data.strip_suffix(&[0]).unwrap_or(data);
            Ok(AuthReply::Switch { plugin, data: data.to_vec() })
        }
        Some(0x01) => Ok(AuthReply::More(p[1..].to_vec())),
        Some(h) => Err(format!("unexpected reply to the login (header 0x{h:02x})")),
        None => Err("empty reply to the login".into()),
    }
}

pub fn com_query(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sql.len());
    out.push(COM_QUERY);
    out.extend_from_slice(sql.as_bytes());
    out
}

pub fn com_stmt_prepare(sql: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + sql.len());
    out.push(COM_STMT_PREPARE);
    out.extend_from_slice(sql.as_bytes());
    out
}

pub fn com_stmt_close(statement_id: u32) -> Vec<u8> {
    let mut out = vec![COM_STMT_CLOSE];
    out.extend_from_slice(&statement_id.to_le_bytes());
    out
}

/// The first answer to COM_STMT_PREPARE (definitions of its parameters and columns follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOk {
    pub statement_id: u32,
    pub columns: u16,
    pub params: u16,
    pub warnings: u16,
}

pub fn parse_prepare_ok(p: &[u8]) -> CodecResult<PrepareOk> {
    let mut r = Reader::new(p);
    if r.u8()? != 0 {
        return Err("not a COM_STMT_PREPARE_OK packet".into());
    }
    let statement_id = r.u32()?;
    let columns = r.u16()?;
    let params = r.u16()?;
    r.u8()?;
    let warnings = if r.rest().len() >= 2 { r.u16()? } else { 0 };
    Ok(PrepareOk { statement_id, columns, params, warnings })
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Int(i64),
    UInt(u64),
    Double(f64),
    /// Text in the connection's character set (utf8mb4).
    Text(String),
    Bytes(Vec<u8>),
}

pub fn com_stmt_execute(statement_id: u32, params: &[Param]) -> Vec<u8> {
    let mut out = vec![COM_STMT_EXECUTE];
    out.extend_from_slice(&statement_id.to_le_bytes());
    out.push(0); // CURSOR_TYPE_NO_CURSOR: the whole result set follows at once
    out.extend_from_slice(&1u32.to_le_bytes());
    if params.is_empty() {
        return out;
    }
    let mut nulls = vec![0u8; params.len().div_ceil(8)];
    for (i, p) in params.iter().enumerate() {
        if *p == Param::Null {
            nulls[i / 8] |= 1 << (i % 8);
        }
    }
    out.extend_from_slice(&nulls);
    out.push(1); // types follow: they may differ from one execution to the next
    for p in params {
        let (t, unsigned) = match p {
            Param::Null => (ty::NULL, false),
            Param::Int(_) => (ty::LONGLONG, false),
            Param::UInt(_) => (ty::LONGLONG, true),
            Param::Double(_) => (ty::DOUBLE, false),
            Param::Text(_) => (ty::VAR_STRING, false),
            Param::Bytes(_) => (ty::BLOB, false),
        };
        out.push(t);
        out.push(if unsigned { 0x80 } else { 0 });
    }
    for p in params {
        match p {
            Param::Null => {}
            Param::Int(i) => out.extend_from_slice(&i.to_le_bytes()),
            Param::UInt(u) => out.extend_from_slice(&u.to_le_bytes()),
            Param::Double(f) => out.extend_from_slice(&f.to_le_bytes()),
            Param::Text(s) => put_lenenc_bytes(&mut out, s.as_bytes()),
            Param::Bytes(b) => put_lenenc_bytes(&mut out, b),
        }
    }
    out
}

/// A column of a result set (ColumnDefinition41), with what decoding its values needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub charset: u16,
    pub length: u32,
    pub ty: u8,
    pub flags: u16,
    pub decimals: u8,
}

pub fn parse_column_def(p: &[u8]) -> CodecResult<ColumnDef> {
    let mut r = Reader::new(p);
    let _catalog = r.lenenc_bytes()?;
    let schema = r.lenenc_str()?;
    let table = r.lenenc_str()?;
    let _org_table = r.lenenc_bytes()?;
    let name = r.lenenc_str()?;
    let _org_name = r.lenenc_bytes()?;
    let _fixed_len = r.lenenc_int()?;
    let charset = r.u16()?;
    let length = r.u32()?;
    let ty = r.u8()?;
    let flags = r.u16()?;
    let decimals = r.u8()?;
    Ok(ColumnDef { schema, table, name, charset, length, ty, flags, decimals })
}

/// The start of a result set: how many column definitions follow (0 means it was an OK).
pub fn parse_column_count(p: &[u8]) -> CodecResult<u64> {
    Reader::new(p).lenenc_int()
}

/// A value of a binary-protocol row, still in wire form: numbers decoded, everything
/// length-prefixed as its bytes, temporal values as their fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bytes(&'a [u8]),
    /// Date or datetime fields (all zero for the zero date).
    DateTime {
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        micro: u32,
    },
    Time {
        negative: bool,
        days: u32,
        hour: u8,
        minute: u8,
        second: u8,
        micro: u32,
    },
}

/// Splits a binary-protocol row into one `Cell` per column.
pub fn parse_binary_row<'a>(p: &'a [u8], columns: &[ColumnDef], out: &mut Vec<Cell<'a>>) -> CodecResult<()> {
    let mut r = Reader::new(p);
    if r.u8()? != 0 {
        return Err("not a binary row".into());
    }
    // The NULL bitmap of a result row is offset by two bits.
    let bitmap = r.bytes((columns.len() + 9) / 8)?;
    out.clear();
    for (i, c) in columns.iter().enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            out.push(Cell::Null);
            continue;
        }
        let unsigned = c.flags & flag::UNSIGNED != 0;
        let cell = match c.ty {
            ty::TINY => {
                let b = r.u8()?;
                if unsigned {
                    Cell::Int(b.into())
                } else {
                    Cell::Int((b as i8).into())
                }
            }
            ty::SHORT | ty::YEAR => {
                let v = r.u16()?;
                if unsigned || c.ty == ty::YEAR {
                    Cell::Int(v.into())
                } else {
                    Cell::Int((v as i16).into())
                }
            }
            ty::LONG | ty::INT24 => {
                let v = r.u32()?;
                if unsigned {
                    Cell::Int(v.into())
                } else {
                    Cell::Int((v as i32).into())
                }
            }
            ty::LONGLONG => {
                let v = r.u64()?;
                if unsigned {
                    Cell::UInt(v)
                } else {
                    Cell::Int(v as i64)
                }
            }
            ty::FLOAT => Cell::Float(f32::from_le_bytes(r.array()?)),
            ty::DOUBLE => Cell::Double(f64::from_le_bytes(r.array()?)),
            ty::NULL => Cell::Null,
            ty::DATE | ty::NEWDATE | ty::DATETIME | ty::TIMESTAMP | ty::DATETIME2 | ty::TIMESTAMP2 => {
                let n = r.u8()? as usize;
                let mut f = Reader::new(r.bytes(n)?);
                let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut micro) = (0, 0, 0, 0, 0, 0, 0);
                if n >= 4 {
                    year = f.u16()?;
                    month = f.u8()?;
                    day = f.u8()?;
                }
                if n >= 7 {
                    hour = f.u8()?;
                    minute = f.u8()?;
                    second = f.u8()?;
                }
                if n >= 11 {
                    micro = f.u32()?;
                }
                Cell::DateTime { year, month, day, hour, minute, second, micro }
            }
            ty::TIME | ty::TIME2 => {
                let n = r.u8()? as usize;
                let mut f = Reader::new(r.bytes(n)?);
                let (mut negative, mut days, mut hour, mut minute, mut second, mut micro) = (false, 0, 0, 0, 0, 0);
                if n >= 8 {
                    negative = f.u8()? != 0;
                    days = f.u32()?;
                    hour = f.u8()?;
                    minute = f.u8()?;
                    second = f.u8()?;
                }
                if n >= 12 {
                    micro = f.u32()?;
                }
                Cell::Time { negative, days, hour, minute, second, micro }
            }
            // Strings, blobs, decimals, BIT, ENUM/SET, JSON, GEOMETRY and anything newer.
            _ => Cell::Bytes(r.lenenc_bytes()?),
        };
        out.push(cell);
    }
    if !r.is_empty() {
        return Err(format!("{} unexpected bytes after the row's last column", r.rest().len()));
    }
    Ok(())
}

/// Bytes as lower-case hex, for protocol fixtures and messages.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
pub fn from_hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    crate::value::unhex(&s).expect("valid hex fixture")
}
