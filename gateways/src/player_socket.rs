//! The write side of one player's socket, as its fan-out shard holds it: the bytes the socket
//! did not take yet, written with non-blocking calls as it becomes writable again. It must not
//! block or await: a shard serves thousands of sockets from one task.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::conn_map::ConnMap;
use crate::fanout::{Command, Signal};
use crate::ping::PingsInFlight;
use crate::stream::SocketWriter;

/// The write side of one player's socket.
#[derive(Debug)]
pub(crate) struct PlayerSocket {
    /// Shared with the task that waits for the socket to become writable.
    pub(crate) write: Arc<SocketWriter>,
    /// Bytes the socket did not take yet, oldest first; the front may be partly written.
    pub(crate) pending: VecDeque<Bytes>,
    pub(crate) pending_bytes: usize,
    /// A task is waiting for the socket to become writable.
    pub(crate) waiting: bool,
    /// The session it joined.
    pub(crate) session: Option<String>,
    /// Tells the connection task about ends and drops.
    pub(crate) signals: mpsc::UnboundedSender<Signal>,
    /// The pings the shard wrote and the connection has not had answered yet.
    pub(crate) pings: Arc<PingsInFlight>,
}

/// Writes `bytes` to a socket now if nothing is queued before them, else queues them. Returns
/// whether the socket's queue just overflowed (its player is then dropped as too slow).
pub(crate) fn write_to(
    sockets: &mut ConnMap<PlayerSocket>,
    commands: &mpsc::UnboundedSender<Command>,
    max_pending_bytes: usize,
    connection: u64,
    bytes: &Bytes,
) -> bool {
    let Some(socket) = sockets.get_mut(&connection) else { return false };
    if socket.pending_bytes > max_pending_bytes {
        return false; // already being dropped
    }
    socket.pending_bytes += bytes.len();
    socket.pending.push_back(bytes.clone());
    if socket.pending.len() == 1 {
        drain(socket, commands, connection);
    }
    socket.pending_bytes > max_pending_bytes
}

/// Writes queued bytes until the socket would block; then a task waits for it to be writable.
/// A TLS socket may hold encrypted bytes after the queue is empty: they are sent the same way.
pub(crate) fn drain(socket: &mut PlayerSocket, commands: &mpsc::UnboundedSender<Command>, connection: u64) {
    loop {
        let written = match socket.pending.front() {
            Some(front) => socket.write.try_write(front),
            None => match socket.write.flush() {
                Ok(()) => return,
                Err(error) => Err(error),
            },
        };
        match written {
            Ok(n) => {
                let front = socket.pending.front_mut().expect("only a queued frame is written");
                socket.pending_bytes -= n;
                if n == front.len() {
                    socket.pending.pop_front();
                } else {
                    let _ = front.split_to(n);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                if !socket.waiting {
                    socket.waiting = true;
                    let (write, commands) = (Arc::clone(&socket.write), commands.clone());
                    tokio::spawn(async move {
                        if write.writable().await.is_ok() {
                            let _ = commands.send(Command::Writable { connection });
                        }
                    });
                }
                return;
            }
            Err(_) => {
                // The peer is gone; its reader will see it and detach.
                socket.pending.clear();
                socket.pending_bytes = 0;
                return;
            }
        }
    }
}
