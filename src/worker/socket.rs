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
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
// BYOB: every read lands in the same buffer instead of a fresh array per chunk.
const READ_SIZE = 64 * 1024;
export class ErStream {
  // `delivered(view, undefined)` receives each read's bytes (a view valid until the next read,
  // null at the end), `delivered(undefined, error)` its failure. The handlers are made once per
  // stream, so a read allocates no closure: each would outlive the young generation while the
  // read waits, and be garbage in V8's old space until a major GC.
  constructor(socket, delivered) {
    this.reader = socket.readable.getReader({ mode: "byob" });
    this.writer = socket.writable.getWriter();
    this.buffer = new ArrayBuffer(READ_SIZE);
    this.delivered = delivered;
    this.onChunk = (r) => {
      if (r.done) return this.deliver(null, undefined);
      // The read transferred the buffer into the returned view; reuse it for the next read.
      this.buffer = r.value.buffer;
      this.deliver(r.value, undefined);
    };
    this.onError = (e) => this.deliver(undefined, e ?? new Error("the socket read failed"));
  }
  deliver(view, error) { if (this.delivered) this.delivered(view, error); }
  // Starts reading the next bytes (at least one); their delivery follows.
  startRead() { this.reader.read(new Uint8Array(this.buffer)).then(this.onChunk, this.onError); }
  // After this nothing is delivered: the Rust side that would receive it is gone.
  detach() { this.delivered = null; }
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
    fn new(socket: &JsValue, delivered: &Closure<dyn FnMut(JsValue, JsValue)>) -> Result<ErStream, JsValue>;
    // Every call that can throw is `catch`: a JS exception unwinding through wasm would
    // leave the connection's task wedged, with no error and no timeout.
    #[wasm_bindgen(method, catch, js_name = startRead)]
    fn start_read(this: &ErStream) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    fn detach(this: &ErStream);
    #[wasm_bindgen(method, catch)]
    fn write(this: &ErStream, bytes: &Uint8Array) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &ErStream) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn release(this: &ErStream) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = closeQuietly)]
    fn close_quietly(socket: &worker::worker_sys::Socket);
}

/// Where the stream's reads land: the last chunk, how far it has been read, and what the
/// read in flight (if any) will wake.
struct Inbox {
    chunk: Vec<u8>,
    at: usize,
    state: ReadState,
    waker: Option<Waker>,
}

enum ReadState {
    Idle,
    Reading,
    Ended,
    Failed(io::Error),
}

pub struct TcpStream {
    socket: worker::worker_sys::Socket,
    io: ErStream,
    inbox: Rc<RefCell<Inbox>>,
    // Kept alive as long as `io` may call it; `Drop` detaches `io` first.
    _delivered: Closure<dyn FnMut(JsValue, JsValue)>,
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
        self.io.detach();
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
        let inbox = Rc::new(RefCell::new(Inbox { chunk: Vec::new(), at: 0, state: ReadState::Idle, waker: None }));
        let delivered = {
            let inbox = Rc::clone(&inbox);
            Closure::new(move |view: JsValue, error: JsValue| {
                let mut inbox = inbox.borrow_mut();
                inbox.state = if !error.is_undefined() {
                    ReadState::Failed(js_io(error))
                } else if view.is_null() {
                    ReadState::Ended
                } else {
                    let view: Uint8Array = view.unchecked_into();
                    let Inbox { chunk, at, .. } = &mut *inbox;
                    chunk.resize(view.length() as usize, 0);
                    view.copy_to(chunk);
                    *at = 0;
                    ReadState::Idle
                };
                if let Some(w) = inbox.waker.take() {
                    w.wake();
                }
            })
        };
        let io = ErStream::new(&socket, &delivered).map_err(js_io)?;
        Ok(TcpStream { socket, io, inbox, _delivered: delivered, writing: None, closing: None, handed_over: false })
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
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut inbox = self.inbox.borrow_mut();
        if inbox.at < inbox.chunk.len() {
            let Inbox { chunk, at, .. } = &mut *inbox;
            let n = buf.remaining().min(chunk.len() - *at);
            buf.put_slice(&chunk[*at..*at + n]);
            *at += n;
            return Poll::Ready(Ok(()));
        }
        match std::mem::replace(&mut inbox.state, ReadState::Reading) {
            // Nothing put in `buf` is the end of the stream.
            ReadState::Ended => {
                inbox.state = ReadState::Ended;
                Poll::Ready(Ok(()))
            }
            ReadState::Failed(e) => {
                inbox.state = ReadState::Idle;
                Poll::Ready(Err(e))
            }
            ReadState::Reading => {
                inbox.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            ReadState::Idle => {
                // The delivery comes in a later microtask, never inside this call.
                if let Err(e) = self.io.start_read() {
                    inbox.state = ReadState::Idle;
                    return Poll::Ready(Err(js_io(e)));
                }
                inbox.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
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
