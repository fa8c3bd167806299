//! The byte stream under a player's WebSocket: reads come straight from the socket's read half;
//! writes go to the fan-out, which owns the write half, so a player's control frames and the
//! session's frames share one ordered queue.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;

use crate::fanout::Command;

#[derive(Debug)]
pub(crate) struct PlayerStream {
    /// Bytes the HTTP server read past the upgrade request, served before the socket.
    prefix: Bytes,
    read: OwnedReadHalf,
    connection: u64,
    fanout: mpsc::UnboundedSender<Command>,
}

impl PlayerStream {
    pub(crate) const fn new(
        prefix: Bytes,
        read: OwnedReadHalf,
        connection: u64,
        fanout: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self { prefix, read, connection, fanout }
    }
}

impl AsyncRead for PlayerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for PlayerStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let command = Command::Write { connection: self.connection, bytes: Bytes::copy_from_slice(buf) };
        match self.fanout.send(command) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
