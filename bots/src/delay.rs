//! A socket whose writes reach the network after a delay: how a bot simulates its share of a
//! round trip (its pong answers and its messages leave late), keeping the byte order.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Reads straight from the socket; writes are queued and written by a task once due.
#[derive(Debug)]
pub struct DelayedStream {
    read: OwnedReadHalf,
    /// Chunks and when they are due; the writer task owns the write half.
    writes: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    /// Due time of the last queued chunk: later chunks are never due before it.
    last_due: Instant,
    delay: Duration,
    jitter: Duration,
    /// xorshift state for the jitter.
    rng: u64,
}

impl DelayedStream {
    /// Wraps `stream`; each write is delayed by `delay` ± up to `jitter` (uniform).
    #[must_use]
    pub fn new(stream: TcpStream, delay: Duration, jitter: Duration, seed: u64) -> Self {
        let (read, write) = stream.into_split();
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_when_due(write, queue));
        Self { read, writes, last_due: Instant::now(), delay, jitter, rng: seed | 1 }
    }

    fn next_delay(&mut self) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let span = self.jitter.as_micros() as u64 * 2 + 1;
        let offset = Duration::from_micros(self.rng % span);
        (self.delay + offset).saturating_sub(self.jitter)
    }
}

async fn write_when_due(mut write: OwnedWriteHalf, mut queue: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>) {
    while let Some((due, chunk)) = queue.recv().await {
        tokio::time::sleep_until(due).await;
        if write.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

impl AsyncRead for DelayedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for DelayedStream {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let due = (Instant::now() + self.next_delay()).max(self.last_due);
        self.last_due = due;
        match self.writes.send((due, buf.to_vec())) {
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
