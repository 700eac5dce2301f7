//! A TCP stream over `cloudflare:sockets` for the database protocols.
//!
//! `worker::Socket` takes and releases a stream reader for every chunk it reads; profiling a
//! 100k-row PostgreSQL copy showed that lock dance plus its promise plumbing at ~17% of the
//! run. This stream keeps one BYOB reader and one writer for the connection's life, reads
//! into one reused buffer, and serves reads from a cursor into the last chunk instead of
//! re-copying its remainder.
//!
//! A read returns what has arrived, up to the 64 KiB view: 8–64 KiB per read from PostgreSQL
//! under workerd alone. Under Miniflare (tests, `npm start`) every read is 4 KiB whatever the
//! reader mode or view size, because Miniflare's outbound worker passes the socket through;
//! a second read issued at once never found another chunk queued there, so reads are not
//! merged here.

use futures_util::FutureExt;
use js_sys::{Promise, Uint8Array};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
// BYOB: every read lands in the same buffer instead of a fresh array per chunk.
const READ_SIZE = 64 * 1024;
export class ErStream {
  constructor(socket) {
    this.reader = socket.readable.getReader({ mode: "byob" });
    this.writer = socket.writable.getWriter();
    this.buffer = new ArrayBuffer(READ_SIZE);
  }
  // The next bytes (at least one) as a view that is valid until the next read; null at the end.
  async read() {
    const r = await this.reader.read(new Uint8Array(this.buffer));
    if (r.done) return null;
    // The read transferred the buffer into the returned view; reuse it for the next read.
    this.buffer = r.value.buffer;
    return r.value;
  }
  write(bytes) { return this.writer.write(bytes); }
  close() { return this.writer.close(); }
  release() { this.reader.releaseLock(); this.writer.releaseLock(); }
}
// Closes without waiting; a rejection (already closed) must not surface as unhandled.
export function closeQuietly(socket) {
  try { socket.close().catch(() => {}); } catch {}
}
"#)]
extern "C" {
    type ErStream;
    #[wasm_bindgen(constructor, catch)]
    fn new(socket: &JsValue) -> Result<ErStream, JsValue>;
    // Every call that can throw is `catch`: a JS exception unwinding through wasm would
    // leave the connection's task wedged, with no error and no timeout.
    #[wasm_bindgen(method, catch)]
    fn read(this: &ErStream) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn write(this: &ErStream, bytes: &Uint8Array) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &ErStream) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn release(this: &ErStream) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = closeQuietly)]
    fn close_quietly(socket: &worker::worker_sys::Socket);
}

pub struct TcpStream {
    socket: worker::worker_sys::Socket,
    io: ErStream,
    chunk: Vec<u8>,
    at: usize,
    reading: Option<JsFuture>,
    writing: Option<(JsFuture, usize)>,
    closing: Option<JsFuture>,
    /// Set when `start_tls` handed the connection to a TLS stream, which closes it instead.
    handed_over: bool,
}

/// A dropped stream closes its socket at once rather than when the garbage collector gets to
/// it: a server still writing to it (a MySQL binlog dump left mid-stream) sees the connection
/// end and stops, instead of blocking on a full socket until its write timeout.
impl Drop for TcpStream {
    fn drop(&mut self) {
        if !self.handed_over {
            close_quietly(&self.socket);
        }
    }
}

// Workers run one thread; tokio-postgres' connection wants a Send stream.
unsafe impl Send for TcpStream {}
unsafe impl Sync for TcpStream {}

fn js_io(e: JsValue) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, super::js::error_message(&e))
}

impl TcpStream {
    /// Opens `hostname:port`; with `starttls`, the stream can later be upgraded by `start_tls`.
    pub fn connect(hostname: &str, port: u16, starttls: bool) -> Result<TcpStream, String> {
        let address = js_sys::Object::new();
        let set = |o: &js_sys::Object, k: &str, v: JsValue| js_sys::Reflect::set(o, &JsValue::from_str(k), &v).map(|_| ());
        let options = js_sys::Object::new();
        set(&address, "hostname", JsValue::from_str(hostname))
            .and_then(|_| set(&address, "port", JsValue::from_f64(f64::from(port))))
            .and_then(|_| set(&options, "secureTransport", JsValue::from_str(if starttls { "starttls" } else { "off" })))
            .map_err(|e| format!("{e:?}"))?;
        let socket = worker::worker_sys::connect(address.into(), options.into()).map_err(|e| js_io(e).to_string())?;
        Self::wrap(socket).map_err(|e| e.to_string())
    }

    fn wrap(socket: worker::worker_sys::Socket) -> io::Result<TcpStream> {
        let io = ErStream::new(&socket).map_err(js_io)?;
        Ok(TcpStream { socket, io, chunk: Vec::new(), at: 0, reading: None, writing: None, closing: None, handed_over: false })
    }

    /// Resolves once the connection is established; fails with the runtime's reason (refused,
    /// unreachable) where a read would only see the stream end.
    pub async fn opened(&self) -> io::Result<()> {
        JsFuture::from(self.socket.opened().map_err(js_io)?).await.map(|_| ()).map_err(js_io)
    }

    /// Upgrades the connection to TLS in place of this plain stream.
    pub fn start_tls(mut self) -> io::Result<TcpStream> {
        self.io.release().map_err(js_io)?;
        let tls = self.socket.start_tls().map_err(js_io)?;
        self.handed_over = true;
        Self::wrap(tls)
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at >= this.chunk.len() {
            if this.reading.is_none() {
                this.reading = Some(JsFuture::from(this.io.read().map_err(js_io)?));
            }
            let fut = this.reading.as_mut().expect("set above");
            let v = match fut.poll_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    this.reading = None;
                    r.map_err(js_io)?
                }
            };
            if v.is_null() {
                return Poll::Ready(Ok(()));
            }
            // The read's own view: `Uint8Array::new` would copy the chunk into a fresh buffer.
            let view: Uint8Array = v.unchecked_into();
            this.chunk.resize(view.length() as usize, 0);
            view.copy_to(&mut this.chunk);
            this.at = 0;
        }
        let n = buf.remaining().min(this.chunk.len() - this.at);
        buf.put_slice(&this.chunk[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.writing.is_none() {
            this.writing = Some((JsFuture::from(this.io.write(&Uint8Array::from(buf)).map_err(js_io)?), buf.len()));
        }
        let (fut, len) = this.writing.as_mut().expect("set above");
        match fut.poll_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                let len = *len;
                this.writing = None;
                Poll::Ready(r.map(|_| len).map_err(js_io))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Each write resolves only once the bytes are handed to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.closing.is_none() {
            this.closing = Some(JsFuture::from(this.io.close().map_err(js_io)?));
        }
        let fut = this.closing.as_mut().expect("set above");
        fut.poll_unpin(cx).map(|r| r.map(|_| ()).map_err(js_io))
    }
}

/// tokio-postgres' hook for `sslmode`: after the server agrees to TLS, upgrade the socket.
#[derive(Clone, Copy, Default)]
pub struct StartTls;

impl tokio_postgres::tls::TlsConnect<TcpStream> for StartTls {
    type Stream = TcpStream;
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<TcpStream>>;
    fn connect(self, s: TcpStream) -> Self::Future {
        std::future::ready(s.start_tls())
    }
}

impl tokio_postgres::tls::TlsStream for TcpStream {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        tokio_postgres::tls::ChannelBinding::none()
    }
}
