//! [`Conn`]: a client connection as Pingora's HTTP/1 session reads it. The connection layer
//! reads each request head itself; `Conn` hands those bytes to the session first, then lets
//! it read no further than the end of the request when its length is known, so that bytes of
//! a pipelined next request stay here for the next session (RFC 9112 §9.3.2) instead of
//! being read, and refused, as data after the body.

use bytes::{Buf, BytesMut};
use pingora::protocols::Stream;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Bytes of pipelined requests held while the current request is served; beyond it the
/// client is not read until the current response is done (backpressure).
const PIPELINE_BUFFER: usize = 64 * 1024;

/// What the session may still read of the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// This many bytes (the rest of the head and its body).
    Bytes(u64),
    /// Anything: the body's end is only known to the parser, or the connection became a
    /// tunnel.
    All,
}

/// A client connection: the socket, and the bytes read from it that the session has not
/// taken yet.
#[derive(Debug)]
pub struct Conn {
    io: Stream,
    /// Read from the socket, not yet handed to the session.
    pub(super) buf: BytesMut,
    allow: Allow,
    /// The client closed its side.
    eof: bool,
}

impl Conn {
    pub fn new(io: Stream) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
            allow: Allow::Bytes(0),
            eof: false,
        }
    }

    /// The socket, for the connection layer's own reads and writes between requests.
    pub fn io(&mut self) -> &mut Stream {
        &mut self.io
    }

    /// Reads what the client sends next into the buffer; `Ok(0)` when it closed. While the
    /// buffer is empty (an idle connection) the read goes through a small array, so a waiting
    /// connection holds no buffer.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        if self.buf.is_empty() {
            let mut first = [0u8; 512];
            let n = self.io.read(&mut first).await?;
            self.buf.extend_from_slice(&first[..n]);
            return Ok(n);
        }
        self.buf.reserve(4096);
        self.io.read_buf(&mut self.buf).await
    }

    /// Whether the client has closed its side.
    pub fn eof(&self) -> bool {
        self.eof
    }

    pub fn set_eof(&mut self) {
        self.eof = true;
    }

    /// Lets the session read `allow` (from the buffered bytes first).
    pub fn serve(&mut self, allow: Allow) {
        self.allow = allow;
    }

    /// Back between requests: the session reads nothing more, and unused buffer space is
    /// given back while the connection waits.
    pub fn idle(&mut self) {
        self.allow = Allow::Bytes(0);
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }

    /// Takes from the buffer into `out`, at most `max` bytes.
    fn take_buffered(&mut self, out: &mut ReadBuf<'_>, max: usize) -> usize {
        let n = self.buf.len().min(out.remaining()).min(max);
        out.put_slice(&self.buf[..n]);
        self.buf.advance(n);
        n
    }

    /// While the current request is served and nothing more of it may be read: reads what
    /// the client sends next into the buffer (up to [`PIPELINE_BUFFER`]), and reports the
    /// end of the connection only when nothing is buffered.
    fn poll_between(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.eof {
                // Pipelined requests are still to be answered: the session sees a quiet
                // client, not a closed one.
                return if self.buf.is_empty() {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            }
            if self.buf.len() >= PIPELINE_BUFFER {
                return Poll::Pending;
            }
            // Nearly always nothing is there: a small array, not a zeroed buffer, per poll.
            let mut tmp = [0u8; 1024];
            let mut rb = ReadBuf::new(&mut tmp);
            let res = Pin::new(&mut self.io).poll_read(cx, &mut rb);
            let n = rb.filled().len();
            match res {
                Poll::Ready(Ok(())) if n == 0 => self.eof = true,
                Poll::Ready(Ok(())) => self.buf.extend_from_slice(&tmp[..n]),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let max = match this.allow {
            Allow::All => usize::MAX,
            Allow::Bytes(0) => return this.poll_between(cx),
            Allow::Bytes(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        if !this.buf.is_empty() {
            let n = this.take_buffered(out, max);
            this.consumed(n);
            return Poll::Ready(Ok(()));
        }
        if this.eof {
            return Poll::Ready(Ok(()));
        }
        if max >= out.remaining() {
            // The whole read fits in what may be read: straight from the socket.
            let before = out.filled().len();
            let res = Pin::new(&mut this.io).poll_read(cx, out);
            let n = out.filled().len() - before;
            if matches!(res, Poll::Ready(Ok(()))) && n == 0 {
                this.eof = true;
            }
            this.consumed(n);
            return res;
        }
        // Less may be read than the session asks for: read into the buffer, hand over the
        // allowed part, keep the rest.
        let mut tmp = [0u8; 4096];
        let mut rb = ReadBuf::new(&mut tmp);
        let res = Pin::new(&mut this.io).poll_read(cx, &mut rb);
        let n = rb.filled().len();
        this.buf.extend_from_slice(&tmp[..n]);
        match res {
            Poll::Ready(Ok(())) => {
                if n == 0 {
                    this.eof = true;
                }
                let n = this.take_buffered(out, max);
                this.consumed(n);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl Conn {
    fn consumed(&mut self, n: usize) {
        if let Allow::Bytes(left) = &mut self.allow {
            *left = left.saturating_sub(n as u64);
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[async_trait::async_trait]
impl Shutdown for Conn {
    async fn shutdown(&mut self) {
        self.io.shutdown().await;
    }
}

impl UniqueID for Conn {
    fn id(&self) -> UniqueIDType {
        self.io.id()
    }
}

impl Ssl for Conn {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.io.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.io.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.io.selected_alpn_proto()
    }
}

impl GetTimingDigest for Conn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.io.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> std::time::Duration {
        self.io.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> std::time::Duration {
        self.io.get_write_pending_time()
    }
}

impl GetProxyDigest for Conn {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.io.get_proxy_digest()
    }
}

impl GetSocketDigest for Conn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.io.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.io.set_socket_digest(digest);
    }
}

#[async_trait::async_trait]
impl Peek for Conn {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.buf.is_empty() {
            return self.io.try_peek(buf).await;
        }
        let n = self.buf.len().min(buf.len());
        buf[..n].copy_from_slice(&self.buf[..n]);
        Ok(true)
    }
}
