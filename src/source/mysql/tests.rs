//! The codec and the client against bytes captured from MariaDB 10.11
//! (`tests/fixtures/mysql_protocol.txt`): every packet kind this client reads is parsed from
//! the server's real bytes, every packet it writes is compared with what the server accepted,
//! and whole conversations are replayed through the async client.

use super::client::{ClientError, Conn, Credentials, Timer};
use super::codec::{self, from_hex, ty, AuthReply, Param};
use super::*;
use crate::source::Affinity;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

const FIXTURE: &str = include_str!("../../../tests/fixtures/mysql_protocol.txt");

/// The chunks of one `[section]`: (client wrote it, bytes).
fn section(name: &str) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in FIXTURE.lines() {
        if let Some(s) = line.strip_prefix('[') {
            inside = s.trim_end_matches(']') == name;
        } else if inside {
            if let Some(h) = line.strip_prefix("> ") {
                out.push((true, from_hex(h)));
            } else if let Some(h) = line.strip_prefix("< ") {
                out.push((false, from_hex(h)));
            }
        }
    }
    assert!(!out.is_empty(), "no section {name}");
    out
}

/// All packets the server sent in a section, in order.
fn server_packets(name: &str) -> Vec<codec::Packet> {
    let mut buf = BytesMut::new();
    for (_, b) in section(name).iter().filter(|(w, _)| !w) {
        buf.extend_from_slice(b);
    }
    let mut out = Vec::new();
    while let Some(p) = codec::take_packet(&mut buf) {
        out.push(p);
    }
    assert!(buf.is_empty(), "trailing bytes");
    out
}

/// All payloads the client wrote in a section, in order.
fn client_payloads(name: &str) -> Vec<Vec<u8>> {
    let mut buf = BytesMut::new();
    for (_, b) in section(name).iter().filter(|(w, _)| *w) {
        buf.extend_from_slice(b);
    }
    let mut out = Vec::new();
    while let Some(p) = codec::take_packet(&mut buf) {
        out.push(p.payload.to_vec());
    }
    out
}

const CAPS_SENT: u32 = 0x002E_A20C;

fn creds() -> Credentials {
    Credentials { user: "er_cap".into(), password: b"s3cret".to_vec(), database: Some("er_my_capture".into()) }
}

#[test]
fn greeting_and_login() {
    let packets = server_packets("session");
    let hs = codec::parse_handshake(&packets[0].payload).unwrap();
    assert_eq!(hs.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert!(hs.is_mariadb());
    assert_eq!(hs.scramble.len(), 20);
    assert_eq!(hs.auth_plugin, "mysql_native_password");
    assert_eq!(hs.charset, 45);
    assert!(hs.capabilities & codec::caps::PROTOCOL_41 != 0);
    assert_eq!(hs.capabilities & codec::caps::SSL, 0, "this test server has no TLS");
    // The login the server accepted, rebuilt byte for byte from the greeting.
    let response = auth::native_password(b"s3cret", &hs.scramble);
    let login = codec::login(&codec::Login {
        capabilities: CAPS_SENT,
        user: "er_cap",
        auth_response: &response,
        database: Some("er_my_capture"),
        auth_plugin: "mysql_native_password",
    });
    assert_eq!(login, client_payloads("session")[0]);
    assert_eq!(packets[1].seq, 2);
    assert_eq!(codec::parse_auth_reply(&packets[1].payload).unwrap(), AuthReply::Ok);
    let ok = codec::parse_ok(&packets[1].payload).unwrap();
    assert_eq!((ok.affected_rows, ok.status, ok.warnings), (0, 2, 0));
}

#[test]
fn ssl_request_is_the_login_prefix() {
    let r = codec::ssl_request(CAPS_SENT);
    assert_eq!(r.len(), 32);
    assert_eq!(&r[4..], &client_payloads("session")[0][4..32]);
    assert_eq!(u32::from_le_bytes(r[..4].try_into().unwrap()), CAPS_SENT | codec::caps::SSL);
}

#[test]
fn error_packets() {
    let e = codec::parse_err(&server_packets("wrong_password")[1].payload).unwrap();
    assert_eq!(e.code, 1045);
    assert_eq!(e.to_string(), "MySQL error 1045 (28000): Access denied for user 'er_cap'@'127.0.0.1' (using password: YES)");
    let packets = server_packets("session");
    let err = packets.iter().find(|p| p.payload.first() == Some(&0xFF)).unwrap();
    assert_eq!(codec::parse_err(&err.payload).unwrap().to_string(), "MySQL error 1146 (42S02): Table 'er_my_capture.nope' doesn't exist");
    // Errors before the handshake carry no SQL state.
    let e = codec::parse_err(&from_hex("ff1004546f6f206d616e7920636f6e6e656374696f6e73")).unwrap();
    assert_eq!(e.to_string(), "MySQL error 1040: Too many connections");
}

#[test]
fn auth_switch() {
    let packets = server_packets("auth_switch");
    let hs = codec::parse_handshake(&packets[0].payload).unwrap();
    let AuthReply::Switch { plugin, data } = codec::parse_auth_reply(&packets[1].payload).unwrap() else { panic!("not a switch") };
    assert_eq!(plugin, "mysql_native_password");
    assert_eq!(data, hs.scramble);
    let sent = client_payloads("auth_switch");
    assert_eq!(sent[0][sent[0].len() - 22..], *b"caching_sha2_password\0");
    assert_eq!(sent[1], auth::native_password(b"s3cret", &data));
    assert_eq!(codec::parse_auth_reply(&packets[2].payload).unwrap(), AuthReply::Ok);
    assert_eq!(codec::parse_auth_reply(&from_hex("0103")).unwrap(), AuthReply::More(vec![3]));
}

/// Statement ids the server gave in the capture.
const STMT: u32 = 7;
const COUNT_STMT: u32 = 9;

const PAGE_SQL: &str = "SELECT * FROM v WHERE id >= ? AND id > CAST(? AS UNSIGNED) ORDER BY id";

fn params() -> Vec<Param> {
    vec![Param::Int(i64::MIN), Param::Text("0".into())]
}

#[test]
fn commands_match_the_captured_bytes() {
    let sent = client_payloads("session");
    assert_eq!(sent[1], codec::com_query("SET NAMES utf8mb4, time_zone = '+00:00'"));
    assert_eq!(sent[2], codec::com_stmt_prepare(PAGE_SQL));
    assert_eq!(sent[3], codec::com_stmt_execute(STMT, &params()));
    assert_eq!(sent[4], codec::com_stmt_close(STMT));
    assert_eq!(sent[5], codec::com_stmt_prepare("SELECT * FROM nope"));
    assert_eq!(sent[7], codec::com_stmt_execute(COUNT_STMT, &[]));
    // Every other parameter kind, by its documented layout.
    let x = codec::com_stmt_execute(7, &[Param::Null, Param::UInt(u64::MAX), Param::Double(0.5), Param::Bytes(vec![0, 1])]);
    let mut want = vec![0x17, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0b0001, 1, 6, 0, 8, 0x80, 5, 0, 252, 0];
    want.extend_from_slice(&u64::MAX.to_le_bytes());
    want.extend_from_slice(&0.5f64.to_le_bytes());
    want.extend_from_slice(&[2, 0, 1]);
    assert_eq!(x, want);
}

#[test]
fn prepare_and_binary_result_set() {
    let packets = server_packets("session");
    // [0] greeting [1] OK [2] OK(SET) [3] PREPARE_OK [4..6] param defs + EOF ...
    let ok = codec::parse_prepare_ok(&packets[3].payload).unwrap();
    assert_eq!((ok.statement_id, ok.params, ok.columns), (STMT, 2, 20));
    assert!(codec::is_eof(&packets[6].payload));
    let mut i = 7 + 20;
    assert!(codec::is_eof(&packets[i].payload));
    i += 1;
    assert_eq!(codec::parse_column_count(&packets[i].payload).unwrap(), 20);
    let defs: Vec<_> = packets[i + 1..i + 21].iter().map(|p| codec::parse_column_def(&p.payload).unwrap()).collect();
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["id", "i", "ti", "n", "d", "f", "db", "dt", "ts", "tm", "y", "j", "bl", "b1", "b64", "e", "s", "t", "dd", "bn"]);
    assert_eq!((defs[0].ty, defs[0].flags & codec::flag::UNSIGNED), (ty::LONGLONG, codec::flag::UNSIGNED));
    assert_eq!((defs[7].ty, defs[7].decimals), (ty::DATETIME, 6));
    assert_eq!(defs[8].ty, ty::TIMESTAMP);
    assert_eq!((defs[11].ty, defs[11].charset), (ty::BLOB, 45), "MariaDB's JSON is LONGTEXT");
    assert_eq!((defs[12].ty, defs[12].charset), (ty::BLOB, codec::BINARY_CHARSET));
    assert_eq!(defs[0].schema, "er_my_capture");
    assert_eq!(defs[0].table, "v");
    i += 21;
    assert!(codec::is_eof(&packets[i].payload));
    let row1 = decode_row(&packets[i + 1].payload, &defs).unwrap();
    let row2 = decode_row(&packets[i + 2].payload, &defs).unwrap();
    assert!(codec::is_eof(&packets[i + 3].payload));
    let t = Value::text;
    assert_eq!(
        row1,
        vec![
            Value::Integer(1),
            Value::Integer(0),
            Value::Integer(0),
            Value::Integer(5),
            t("0.000000000000000000000000000000"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            t("00:00:00"),
            Value::Null,
            Value::Null,
            Value::Blob(vec![]),
            Value::Integer(0),
            Value::Integer(0),
            t("a"),
            t(""),
            t(""),
            t("2026-12-31"),
            Value::Null,
        ]
    );
    assert_eq!(
        row2,
        vec![
            t("18446744073709551615"),
            Value::Integer(i64::MIN),
            Value::Integer(1),
            Value::Null,
            t("-12345678901234567890123456789012345.123456789012345678901234567891"),
            Value::Real(0.1),
            Value::Real(0.1),
            t("2026-01-02T03:04:05.123456"),
            // Written as 03:04:05.654321 in a +02:00 session.
            t("2026-01-02T01:04:05.654321Z"),
            t("-838:59:59"),
            Value::Integer(2026),
            t(r#"{"a": 1e400}"#),
            Value::Blob(vec![0, 0xFF, 0]),
            Value::Integer(1),
            t("18446744073709551615"),
            t("b"),
            t("p,q"),
            t("😀"),
            t("0000-00-00"),
            Value::Blob(b"ab\0".to_vec()),
        ]
    );
    // A row cut short is an error, not a panic.
    let p = &packets[i + 2].payload;
    for cut in [1, 5, p.len() / 2, p.len() - 1] {
        assert!(decode_row(&p[..cut], &defs).is_err(), "cut at {cut}");
    }
}

#[test]
fn framing_round_trips_and_splits_big_payloads() {
    // Every captured server stream, fed one byte at a time, gives the same packets.
    for name in ["session", "wrong_password", "auth_switch"] {
        let whole = server_packets(name);
        let bytes: Vec<u8> = section(name).into_iter().filter(|(w, _)| !w).flat_map(|(_, b)| b).collect();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(p) = codec::take_packet(&mut buf) {
                got.push(p);
            }
        }
        assert_eq!(got, whole, "{name}");
        // And framing them again gives the server's bytes back.
        let mut again = Vec::new();
        for p in &whole {
            let next = codec::write_packets(&mut again, p.seq, &p.payload);
            assert_eq!(next, p.seq.wrapping_add(1));
        }
    }
    for len in [0, 1, codec::MAX_PACKET - 1, codec::MAX_PACKET, codec::MAX_PACKET + 1, 2 * codec::MAX_PACKET, 40 << 20] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut framed = Vec::new();
        let next = codec::write_packets(&mut framed, 250, &payload);
        let frames = len / codec::MAX_PACKET + 1;
        assert_eq!(framed.len(), len + 4 * frames, "len {len}");
        assert_eq!(next, 250u8.wrapping_add(frames as u8), "sequence ids wrap");
        let mut buf = BytesMut::from(&framed[..framed.len() - 1]);
        assert!(codec::take_packet(&mut buf).is_none(), "incomplete");
        buf.extend_from_slice(&framed[framed.len() - 1..]);
        buf.extend_from_slice(&[1, 0, 0, 9, 0xAB]);
        let p = codec::take_packet(&mut buf).unwrap();
        assert_eq!(p.payload.len(), len);
        assert!(p.payload[..] == payload[..], "len {len}");
        assert_eq!(p.seq, next.wrapping_sub(1));
        assert_eq!(codec::take_packet(&mut buf).unwrap().payload[..], [0xAB]);
    }
}

#[test]
fn length_encoded_integers() {
    for n in [0u64, 250, 251, 0xFFFF, 0x1_0000, 0xFF_FFFF, 0x100_0000, u64::MAX] {
        let mut b = Vec::new();
        codec::put_lenenc(&mut b, n);
        let mut r = codec::Reader::new(&b);
        assert_eq!(r.lenenc_int().unwrap(), n);
        assert!(r.is_empty());
    }
    assert_eq!(codec::Reader::new(&[0xFB]).lenenc().unwrap(), None);
    assert!(codec::Reader::new(&[0xFC, 1]).lenenc().is_err());
}

/// Plays the server's side of a captured conversation: hands out its bytes and checks that
/// the client writes exactly what it wrote then.
struct Replay {
    steps: VecDeque<(bool, Vec<u8>)>,
}

impl Replay {
    fn new(name: &str) -> Self {
        // Join consecutive chunks of one direction: the client may read and write in other sizes.
        let mut steps: VecDeque<(bool, Vec<u8>)> = VecDeque::new();
        for (w, b) in section(name) {
            match steps.back_mut() {
                Some((lw, lb)) if *lw == w => lb.extend_from_slice(&b),
                _ => steps.push_back((w, b)),
            }
        }
        Replay { steps }
    }
}

impl tokio::io::AsyncRead for Replay {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.steps.front_mut() {
            None => Poll::Ready(Ok(())),
            Some((true, _)) => Poll::Ready(Err(std::io::Error::other("the client reads where it should write"))),
            Some((false, b)) => {
                let n = b.len().min(buf.remaining()).min(7);
                buf.put_slice(&b[..n]);
                b.drain(..n);
                if b.is_empty() {
                    self.steps.pop_front();
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl tokio::io::AsyncWrite for Replay {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let Some((true, want)) = self.steps.front_mut() else {
            return Poll::Ready(Err(std::io::Error::other(format!("unexpected write {}", codec::to_hex(data)))));
        };
        let n = data.len().min(want.len());
        if data[..n] != want[..n] {
            let m = format!("wrote {} but the capture has {}", codec::to_hex(data), codec::to_hex(want));
            return Poll::Ready(Err(std::io::Error::other(m)));
        }
        want.drain(..n);
        if want.is_empty() {
            self.steps.pop_front();
        }
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct TokioTimer;
impl Timer for TokioTimer {
    fn sleep(&self, ms: u64) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}

fn options() -> ConnectOptions {
    ConnectOptions { host: "127.0.0.1".into(), port: 3306, credentials: creds(), ssl: SslMode::Disable, timeout_ms: 2000 }
}

type NoUpgrade = fn(Replay) -> std::future::Ready<Result<Replay, String>>;

#[tokio::test]
async fn replays_a_whole_session() {
    let mut conn = connect::<_, NoUpgrade, _>(Replay::new("session"), Box::new(TokioTimer), &options(), None).await.unwrap();
    let st = conn.prepare(PAGE_SQL).await.unwrap();
    assert_eq!((st.id, st.params, st.columns), (STMT, 2, 20));
    let mut rows = Vec::new();
    let defs = conn
        .execute(&st, &params(), |defs, p| {
            rows.push(decode_row(p, defs)?);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(defs.len(), 20);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][0], Value::text("18446744073709551615"));
    conn.close_statement(st.id).await.unwrap();
    match conn.prepare("SELECT * FROM nope").await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, 1146),
        other => panic!("{other:?}"),
    }
    // A server error leaves the connection usable.
    let st = conn.prepare("SELECT COUNT(*) FROM v WHERE n IS NULL").await.unwrap();
    let mut count = None;
    conn.execute(&st, &[], |defs, p| {
        count = Some(decode_row(p, defs)?);
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(count, Some(vec![Value::Integer(1)]));
}

#[tokio::test]
async fn replays_a_wrong_password_and_an_auth_switch() {
    let wrong = ConnectOptions { credentials: Credentials { password: b"wrong".to_vec(), ..creds() }, ..options() };
    let e = connect::<_, NoUpgrade, _>(Replay::new("wrong_password"), Box::new(TokioTimer), &wrong, None).await.err().unwrap();
    assert!(matches!(&e, ClientError::Server(s) if s.code == 1045), "{e:?}");

    // The capture claimed caching_sha2_password in the login; so does this replay.
    let mut conn = Conn::new(Replay::new("auth_switch"), Box::new(TokioTimer), 2000);
    let mut hs = conn.read_handshake().await.unwrap();
    hs.auth_plugin = "caching_sha2_password".into();
    conn.login(&hs, &creds(), false).await.unwrap();
}

/// A server that answers nothing, then one that hangs up halfway through a packet.
#[tokio::test]
async fn silent_and_vanishing_servers_fail_fast() {
    let (client, _server) = tokio::io::duplex(1024);
    let mut conn = Conn::new(client, Box::new(TokioTimer), 300);
    let started = std::time::Instant::now();
    let e = conn.read_handshake().await.unwrap_err();
    assert!(e.to_string().contains("sent nothing"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let again = conn.read_packet().await.unwrap_err();
    assert!(again.to_string().contains("failed earlier"), "{again}");

    let mut replay = Replay::new("session");
    // Keep the greeting and half of the first OK, then end the stream.
    replay.steps.truncate(3);
    let half = replay.steps[2].1.len() / 2;
    replay.steps[2].1.truncate(half);
    let e = connect::<_, NoUpgrade, _>(replay, Box::new(TokioTimer), &options(), None).await.err().unwrap();
    assert!(e.to_string().contains("closed the connection"), "{e}");
}

/// A server that sends canned replies, one per read, and records what the client writes.
struct Canned {
    replies: VecDeque<Vec<u8>>,
    written: Vec<u8>,
}

impl Canned {
    fn new(replies: &[&str]) -> Self {
        Canned { replies: replies.iter().map(|r| from_hex(r)).collect(), written: Vec::new() }
    }
}

impl tokio::io::AsyncRead for Canned {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.replies.pop_front() {
            Some(b) => buf.put_slice(&b),
            // Silence, as from a server that stopped answering.
            None => return Poll::Pending,
        }
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Canned {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, d: &[u8]) -> Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(d);
        Poll::Ready(Ok(d.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn caching_sha2_paths() {
    let greeting = server_packets("session")[0].payload.to_vec();
    let mut hs = codec::parse_handshake(&greeting).unwrap();
    hs.auth_plugin = "caching_sha2_password".into();
    // Fast path: the server had the login cached (0x01 0x03), then OK.
    let mut conn = Conn::new(Canned::new(&["020000020103", "0700000300000002000000"]), Box::new(TokioTimer), 500);
    conn.login(&hs, &creds(), false).await.unwrap();
    let (sink, _, _) = conn.into_parts();
    let expected = auth::caching_sha2_password(b"s3cret", &hs.scramble);
    assert!(sink.written.windows(expected.len()).any(|w| w == expected), "the login carries the SHA-256 scramble");
    assert!(sink.written.ends_with(b"caching_sha2_password\0"));
    // Full path without TLS: a clear error naming what to configure, and no password sent.
    let mut conn = Conn::new(Canned::new(&["020000020104"]), Box::new(TokioTimer), 500);
    let e = conn.login(&hs, &creds(), false).await.unwrap_err();
    assert!(matches!(e, ClientError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("ssl-mode=require") && e.to_string().contains("Hyperdrive"), "{e}");
    let (sink, _, _) = conn.into_parts();
    assert!(!sink.written.windows(6).any(|w| w == b"s3cret"));
    // Full path over TLS: the password, NUL-terminated, then OK.
    let mut conn = Conn::new(Canned::new(&["020000020104", "0700000500000002000000"]), Box::new(TokioTimer), 500);
    conn.login(&hs, &creds(), true).await.unwrap();
    let (sink, _, _) = conn.into_parts();
    assert!(sink.written.ends_with(&[7, 0, 0, 3, b's', b'3', b'c', b'r', b'e', b't', 0]));
}

/// The captured greeting with `CLIENT_SSL` set, as a server with TLS would send it.
fn greeting_with_tls() -> Vec<u8> {
    let mut p = server_packets("session")[0].payload.to_vec();
    let version_end = p[1..].iter().position(|&b| b == 0).unwrap() + 1;
    let caps_at = version_end + 1 + 4 + 8 + 1;
    p[caps_at + 1] |= (codec::caps::SSL >> 8) as u8;
    assert!(codec::parse_handshake(&p).unwrap().capabilities & codec::caps::SSL != 0);
    let mut framed = Vec::new();
    codec::write_packets(&mut framed, 0, &p);
    framed
}

#[tokio::test]
async fn tls_upgrade_sits_between_the_ssl_request_and_the_login() {
    let upgraded = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = upgraded.clone();
    let upgrade = move |s: Canned| {
        flag.set(true);
        // What went out before TLS: the SSL request alone, sequence id 1.
        assert_eq!(s.written.len(), 4 + 32);
        assert_eq!(s.written[..4], [32, 0, 0, 1]);
        std::future::ready(Ok::<_, String>(s))
    };
    let greeting = codec::to_hex(&greeting_with_tls());
    // After TLS: login OK (seq 3), then the SET's OK.
    let canned = Canned::new(&[&greeting, "0700000300000002000000", "0700000100000002000000"]);
    let opts = ConnectOptions { ssl: SslMode::Require, ..options() };
    let conn = connect(canned, Box::new(TokioTimer), &opts, Some(upgrade)).await.unwrap();
    assert!(upgraded.get());
    let (s, _, _) = conn.into_parts();
    let mut buf = BytesMut::from(&s.written[..]);
    let ssl = codec::take_packet(&mut buf).unwrap();
    let login = codec::take_packet(&mut buf).unwrap();
    assert_eq!((ssl.seq, login.seq), (1, 2), "the login continues the sequence after the SSL request");
    assert_eq!(ssl.payload[..], login.payload[..32], "the SSL request is the login's first 32 bytes");
    assert!(u32::from_le_bytes(login.payload[..4].try_into().unwrap()) & codec::caps::SSL != 0);
}

#[tokio::test]
async fn ssl_modes_without_a_tls_server_or_stream() {
    // `prefer` with a server that has no TLS goes on in plain text, never calling the upgrade.
    let opts = ConnectOptions { ssl: SslMode::Prefer, ..options() };
    let never = |_: Replay| -> std::future::Ready<Result<Replay, String>> { panic!("upgraded a connection to a server without TLS") };
    let mut conn = connect(Replay::new("session"), Box::new(TokioTimer), &opts, Some(never)).await.unwrap();
    assert_eq!(conn.prepare(PAGE_SQL).await.unwrap().id, STMT);
    // `require` fails clearly when the server or the stream cannot do TLS, before any login.
    let opts = ConnectOptions { ssl: SslMode::Require, ..options() };
    let e = connect::<_, NoUpgrade, _>(Replay::new("session"), Box::new(TokioTimer), &opts, None).await.err().unwrap();
    assert_eq!(e.to_string(), "ssl-mode=require, but the server does not offer TLS");
    let canned = Canned::new(&[&codec::to_hex(&greeting_with_tls())]);
    let e = connect::<_, fn(Canned) -> std::future::Ready<Result<Canned, String>>, _>(canned, Box::new(TokioTimer), &opts, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(&e, ClientError::Config(m) if m.contains("cannot be upgraded")), "{e:?}");
}

/// Rows stop arriving mid-result: the client gives up after its deadline.
#[tokio::test]
async fn a_server_that_stalls_mid_result_times_out() {
    let packets = server_packets("session");
    // The execute's column count and first three definitions, then silence.
    let i = i_after_prepare(&packets);
    let mut first = Vec::new();
    for p in &packets[i..i + 4] {
        codec::write_packets(&mut first, p.seq, &p.payload);
    }
    let mut conn = Conn::new(Canned::new(&[&codec::to_hex(&first)]), Box::new(TokioTimer), 300);
    let st = client::Statement { id: STMT, params: 2, columns: 20 };
    let started = std::time::Instant::now();
    let e = conn.execute(&st, &params(), |_, _| Ok(())).await.unwrap_err();
    assert!(matches!(e, ClientError::Broken(_)) && e.to_string().contains("sent nothing"), "{e:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// Index of the execute's column-count packet in the session's server packets.
fn i_after_prepare(packets: &[codec::Packet]) -> usize {
    // greeting, OK, OK, PREPARE_OK, 2 param defs, EOF, 20 column defs, EOF
    let i = 3 + 1 + 2 + 1 + 20 + 1;
    assert_eq!(codec::parse_column_count(&packets[i].payload).unwrap(), 20);
    i
}

#[test]
fn page_sql_binds_keys_exactly() {
    let t = TableName { schema: Some("shop".into()), name: "or`ders".into() };
    let col =
        |n: &str, ty: &str| Column { name: n.into(), source_type: ty.into(), affinity: types::Kind::of(ty).affinity(), nullable: false };
    let cols =
        [col("updated", "timestamp(6)"), col("id", "bigint(20) unsigned"), col("amount", "decimal(12,2)"), col("raw", "varbinary(4)")];
    let after =
        [Value::text("2026-01-02T03:04:05.000001Z"), Value::text("18446744073709551615"), Value::text("1.50"), Value::Blob(vec![0xFF])];
    let q = page_sql(&PageRequest { table: &t, columns: &cols, order: &[0, 1, 2, 3], after: Some(&after), from: None, limit: 7 });
    assert_eq!(
        q.sql,
        "SELECT `updated`, `id`, `amount`, `raw` FROM `shop`.`or``ders` WHERE `updated` >= ? AND (`updated` > ? OR \
         (`id` >= CAST(? AS UNSIGNED) AND (`id` > CAST(? AS UNSIGNED) OR (`amount` >= CAST(? AS DECIMAL(12,2)) AND \
         (`amount` > CAST(? AS DECIMAL(12,2)) OR (`raw` > UNHEX(?))))))) ORDER BY `updated`, `id`, `amount`, `raw` LIMIT 7"
    );
    let ts = Value::text("2026-01-02 03:04:05.000001");
    let id = Value::text("18446744073709551615");
    assert_eq!(q.params, vec![ts.clone(), ts, id.clone(), id, Value::text("1.50"), Value::text("1.50"), Value::text("FF")]);
    let from = Value::text("2026-01-01T00:00:00.000000Z");
    let q = page_sql(&PageRequest { table: &t, columns: &cols, order: &[0, 1], after: None, from: Some(&from), limit: 7 });
    assert!(q.sql.ends_with("WHERE `updated` >= ? ORDER BY `updated`, `id` LIMIT 7"), "{}", q.sql);
    assert_eq!(q.params, vec![Value::text("2026-01-01 00:00:00.000000")]);
    assert_eq!(types::Kind::of("bigint(20) unsigned").affinity(), Affinity::Any);
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
    let o = parse_url(&format!("mysql://app:{SECRET}@db.example.com:3307/shop?ssl-mode=require")).unwrap();
    assert_eq!((o.host.as_str(), o.port, o.ssl), ("db.example.com", 3307, SslMode::Require));
    assert_eq!(o.credentials.user, "app");
    assert_eq!(o.credentials.password, SECRET.as_bytes());
    assert_eq!(o.credentials.database.as_deref(), Some("shop"));
    assert_eq!(o.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert!(!format!("{o:?}").contains(SECRET), "Debug leaks the password");

    let o = parse_url("mariadb://u%40x:p%2Fw%40@[::1]/d%20b?sslmode=DISABLED&connect_timeout=5").unwrap();
    assert_eq!((o.host.as_str(), o.port, o.ssl), ("::1", 3306, SslMode::Disable));
    assert_eq!(o.credentials.user, "u@x");
    assert_eq!(o.credentials.password, b"p/w@");
    assert_eq!(o.credentials.database.as_deref(), Some("d b"));
    assert_eq!(o.timeout_ms, 5000);
    let o = parse_url("MYSQL://root@127.0.0.1").unwrap();
    assert_eq!((o.ssl, o.credentials.database, o.credentials.password.len()), (SslMode::Prefer, None, 0));
    for (mode, want) in [("prefer", SslMode::Prefer), ("VERIFY_IDENTITY", SslMode::Require), ("required", SslMode::Require)] {
        assert_eq!(parse_url(&format!("mysql://u@h/d?ssl-mode={mode}")).unwrap().ssl, want);
    }
}

#[test]
fn url_errors_never_show_the_password() {
    assert!(url_err(&format!("postgres://u:{SECRET}@h/d")).contains("mysql://"));
    assert!(url_err(&format!("mysql://u:{SECRET}/d")).contains("port"));
    assert!(url_err(&format!("mysql://u:{SECRET}@h:99999/d")).contains("port"));
    assert!(url_err(&format!("mysql://u:{SECRET}@h/d?ssl-mode=sometimes")).contains("ssl-mode"));
    assert!(url_err(&format!("mysql://u:{SECRET}%zz@h/d")).contains("password"));
    assert!(url_err(&format!("mysql://u:{SECRET}@/d")).contains("host"));
    assert!(url_err(&format!("mysql://:{SECRET}@h/d")).contains("user"));
    assert!(url_err(&format!("mysql://u:{SECRET}@h/d?bogus=1")).contains("bogus"));
    assert!(url_err(&format!("mysql://u:{SECRET}@a,b/d")).contains("several hosts"));
    assert!(url_err(&format!("mysql://u:{SECRET}@h/d?charset=latin1")).contains("utf8mb4"));
}
