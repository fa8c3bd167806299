//! A player's TLS session after the upgrade: taken out of `tokio-rustls` and shared by the
//! socket's two sides. The reader decrypts what the player sends and the fan-out shard encrypts
//! what it writes, each with non-blocking socket calls, so a TLS player costs the fan-out an
//! encryption per frame and nothing else (no task, no copy through a proxy).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use rustls::ServerConnection;
use tokio::net::tcp::OwnedWriteHalf;

/// A player's TLS session after the upgrade, shared by its reader (decrypts) and its fan-out
/// shard (encrypts): one session serves both directions, so they take turns. Held only for one
/// call into rustls, never across an await.
pub(crate) type SharedTls = Arc<Mutex<ServerConnection>>;

/// The write half as `io::Write` for rustls: a non-blocking write that says `WouldBlock` when
/// the kernel's buffer is full.
struct NonBlocking<'a>(&'a OwnedWriteHalf);

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends what the session has encrypted and not sent yet; `WouldBlock` if the socket is full.
pub(crate) fn flush(tls: &mut ServerConnection, socket: &OwnedWriteHalf) -> io::Result<()> {
    while tls.wants_write() {
        if tls.write_tls(&mut NonBlocking(socket))? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Encrypts as much of `plain` as the session takes and sends what the socket takes: returns
/// the plaintext bytes taken. What is encrypted and not yet sent waits in the session (at most
/// its buffer limit) for [`flush`]; `WouldBlock` only when nothing could be taken.
pub(crate) fn write(tls: &mut ServerConnection, socket: &OwnedWriteHalf, plain: &[u8]) -> io::Result<usize> {
    flush(tls, socket)?;
    let taken = tls.writer().write(plain)?;
    if taken == 0 && !plain.is_empty() {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    match flush(tls, socket) {
        Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
        _ => Ok(taken),
    }
}

/// Feeds the session ciphertext read from the socket; returns how much it took. Decrypted
/// bytes wait in the session for [`read_plain`].
pub(crate) fn take_ciphertext(tls: &mut ServerConnection, mut ciphertext: &[u8]) -> io::Result<usize> {
    let before = ciphertext.len();
    tls.read_tls(&mut ciphertext)?;
    tls.process_new_packets().map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    Ok(before - ciphertext.len())
}

/// Decrypted bytes into `out`: `Ok(0)` once the peer has closed the session, `WouldBlock`
/// when more ciphertext is needed.
pub(crate) fn read_plain(tls: &mut ServerConnection, out: &mut [u8]) -> io::Result<usize> {
    tls.reader().read(out)
}
