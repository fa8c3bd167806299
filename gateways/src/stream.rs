//! The byte stream under a player's WebSocket: reads come straight from the socket's read half,
//! each stamped with the kernel's receive time; writes go to the fan-out, which owns the write
//! half, so a player's control frames and the session's frames share one ordered queue.
//!
//! The receive stamp is why reads use `recvmsg` (`SO_TIMESTAMPNS`) rather than `read`: a pong's
//! arrival is the instant the kernel took it in, not the instant a busy task got to it, so the
//! time a frame waits inside the gateway is never charged to the player.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
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
    /// Room for the receive timestamp's control message, reused by every read.
    cmsg: Vec<u8>,
    /// When the kernel received the newest bytes read (epoch µs).
    received_us: i64,
}

impl PlayerStream {
    pub(crate) fn new(
        prefix: Bytes,
        read: OwnedReadHalf,
        connection: u64,
        fanout: mpsc::UnboundedSender<Command>,
    ) -> Self {
        // Without kernel stamps every read is stamped when it happens, which still works.
        if let Err(error) = setsockopt(read.as_ref(), sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(%error, "no kernel receive timestamps on this socket");
        }
        Self {
            prefix,
            read,
            connection,
            fanout,
            cmsg: nix::cmsg_space!(TimeSpec),
            received_us: crate::now_us(),
        }
    }

    /// When the kernel received the newest bytes this stream has read (epoch µs): for a frame
    /// just parsed, its arrival, however long it then waited to be read.
    pub(crate) const fn received_us(&self) -> i64 {
        self.received_us
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
            self.received_us = crate::now_us();
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        loop {
            ready!(this.read.as_ref().poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let read = this.read.as_ref().try_io(Interest::READABLE, || {
                // `try_io` clears readiness on WouldBlock, so the next poll waits for more.
                let fd = this.read.as_ref().as_raw_fd();
                let mut iov = [IoSliceMut::new(unfilled)];
                let message = recvmsg::<()>(fd, &mut iov, Some(&mut this.cmsg), MsgFlags::MSG_DONTWAIT)
                    .map_err(io::Error::from)?;
                let mut stamp = None;
                if let Ok(cmsgs) = message.cmsgs() {
                    for cmsg in cmsgs {
                        if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                            stamp = Some(ts.tv_sec() * 1_000_000 + ts.tv_nsec() / 1_000);
                        }
                    }
                }
                Ok((message.bytes, stamp))
            });
            match read {
                Ok((n, stamp)) => {
                    if n > 0 {
                        this.received_us = stamp.unwrap_or_else(crate::now_us);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
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
