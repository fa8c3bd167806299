//! The byte stream under a player's WebSocket: reads come straight from the socket's read half,
//! each stamped with the kernel's receive time; writes go to the fan-out, which owns the write
//! half ([`SocketWriter`]), so a player's control frames and the session's frames share one
//! ordered queue. Over TLS the two halves share the session: the reader decrypts, the fan-out
//! encrypts (see [`crate::tls_session`]).
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
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::fanout::Command;
use crate::tls_session::{self as tls, SharedTls};

/// Ciphertext read from a TLS socket at once: a TLS record's largest size.
const CIPHERTEXT_CHUNK: usize = 16 * 1024 + 256;

/// The write half of a player's socket, owned by its fan-out shard.
#[derive(Debug)]
pub(crate) struct SocketWriter {
    tcp: OwnedWriteHalf,
    /// The TLS session, shared with the reader, when the listener has TLS.
    tls: Option<SharedTls>,
}

impl SocketWriter {
    pub(crate) const fn new(tcp: OwnedWriteHalf, tls: Option<SharedTls>) -> Self {
        Self { tcp, tls }
    }

    /// A non-blocking write of (the start of) `bytes`: how many were taken, or `WouldBlock`.
    pub(crate) fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        match &self.tls {
            None => self.tcp.try_write(bytes),
            Some(session) => tls::write(&mut session.lock().unwrap(), &self.tcp, bytes),
        }
    }

    /// Sends what a TLS session holds encrypted and unsent (nothing to do in plain text);
    /// `WouldBlock` if the socket is full.
    pub(crate) fn flush(&self) -> io::Result<()> {
        match &self.tls {
            None => Ok(()),
            Some(session) => tls::flush(&mut session.lock().unwrap(), &self.tcp),
        }
    }

    /// Ends a TLS session cleanly (close_notify) before the socket goes; best effort.
    pub(crate) fn close(&self) {
        if let Some(session) = &self.tls {
            let mut session = session.lock().unwrap();
            session.send_close_notify();
            let _ = tls::flush(&mut session, &self.tcp);
        }
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.tcp.writable().await
    }
}

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
    /// The TLS session (shared with the fan-out's writer) and ciphertext read from the socket
    /// that it has not taken yet, when the listener has TLS.
    tls: Option<TlsRead>,
}

#[derive(Debug)]
struct TlsRead {
    session: SharedTls,
    ciphertext: Box<[u8]>,
    /// `ciphertext[start..end]` is read and not yet fed to the session.
    start: usize,
    end: usize,
}

impl PlayerStream {
    pub(crate) fn new(
        prefix: Bytes,
        read: OwnedReadHalf,
        connection: u64,
        fanout: mpsc::UnboundedSender<Command>,
        tls: Option<SharedTls>,
    ) -> Self {
        // Without kernel stamps every read is stamped when it happens, which still works.
        if let Err(error) = setsockopt(read.as_ref(), sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(%error, "no kernel receive timestamps on this socket");
        }
        Self {
            // A copy: the HTTP server's leftover bytes are a slice of its whole read buffer
            // (8 KiB or more), which the slice would keep allocated for the socket's life.
            prefix: Bytes::copy_from_slice(&prefix),
            read,
            connection,
            fanout,
            cmsg: nix::cmsg_space!(TimeSpec),
            received_us: crate::now_us(),
            tls: tls.map(|session| TlsRead {
                session,
                ciphertext: vec![0; CIPHERTEXT_CHUNK].into_boxed_slice(),
                start: 0,
                end: 0,
            }),
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
        let Some(tls) = &mut this.tls else {
            let (n, stamp) = ready!(recv_stamped(&this.read, &mut this.cmsg, buf.initialize_unfilled(), cx))?;
            if n > 0 {
                this.received_us = stamp.unwrap_or_else(crate::now_us);
            }
            buf.advance(n);
            return Poll::Ready(Ok(()));
        };
        loop {
            {
                let mut session = tls.session.lock().unwrap();
                match tls::read_plain(&mut session, buf.initialize_unfilled()) {
                    Ok(n) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Poll::Ready(Err(error)),
                }
                if tls.start < tls.end {
                    let taken = tls::take_ciphertext(&mut session, &tls.ciphertext[tls.start..tls.end])?;
                    if taken == 0 {
                        // Nothing decrypted and nothing taken: waiting would never end.
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the TLS session takes no more from the client",
                        )));
                    }
                    tls.start += taken;
                    continue;
                }
            }
            let (n, stamp) = ready!(recv_stamped(&this.read, &mut this.cmsg, &mut tls.ciphertext, cx))?;
            if n == 0 {
                return Poll::Ready(Ok(())); // closed without close_notify: the end all the same
            }
            // The arrival of the ciphertext is the arrival of what it carries.
            this.received_us = stamp.unwrap_or_else(crate::now_us);
            (tls.start, tls.end) = (0, n);
        }
    }
}

/// Reads what the socket has into `into` with the kernel's receive stamp (epoch µs), if any.
#[allow(clippy::ptr_arg, reason = "nix's recvmsg takes the control buffer as a Vec")]
fn recv_stamped(
    read: &OwnedReadHalf,
    cmsg: &mut Vec<u8>,
    into: &mut [u8],
    cx: &mut Context<'_>,
) -> Poll<io::Result<(usize, Option<i64>)>> {
    let capacity = into.len();
    loop {
        ready!(read.as_ref().poll_read_ready(cx))?;
        // A read shorter than the buffer took everything the socket held: its readiness is
        // cleared then too, as tokio's own reads do, so the next poll waits for the next
        // segment instead of paying a `recvmsg` that finds nothing (one per pong otherwise).
        let mut drained = None;
        let read = read.as_ref().try_io(Interest::READABLE, || {
            // `try_io` clears readiness on WouldBlock (unless new data arrived meanwhile).
            let fd = read.as_ref().as_raw_fd();
            let mut iov = [IoSliceMut::new(into)];
            let message =
                recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)?;
            let mut stamp = None;
            if let Ok(cmsgs) = message.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                        stamp = Some(ts.tv_sec() * 1_000_000 + ts.tv_nsec() / 1_000);
                    }
                }
            }
            if message.bytes > 0 && message.bytes < capacity {
                drained = Some((message.bytes, stamp));
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok((message.bytes, stamp))
        });
        if let Some(read) = drained {
            return Poll::Ready(Ok(read));
        }
        match read {
            Ok(read) => return Poll::Ready(Ok(read)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Poll::Ready(Err(error)),
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
