//! One bot player: connect, join, then read frames with tungstenite's frame parser directly and
//! record every tick it receives until the measured window is over.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};
use tokio_util::sync::CancellationToken;

use crate::delay::DelayedStream;
use crate::edge::Ticket;
use crate::stats::StepRecord;
use crate::{BotsConfig, Plan, Shared, now_us};

/// How many frames a player receives before it adds them to the shared count.
const PROGRESS_BATCH: u64 = 64;

/// What one player saw.
#[derive(Debug, Default)]
pub(crate) struct PlayerOutcome {
    pub(crate) connected: bool,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    pub(crate) duplicates: u64,
    pub(crate) out_of_order: u64,
    pub(crate) complete: bool,
    pub(crate) kicked: bool,
    pub(crate) errors: u64,
    /// Frames received while the measured window was open.
    pub(crate) window_messages: u64,
    /// Lateness of each live tick, µs (one scheduled at or after the player sent its join);
    /// merged after the run.
    pub(crate) lateness_us: Vec<i32>,
    /// Ticks scheduled before the player sent its join: history the server replayed on join,
    /// counted as delivered but not in the lateness of live ticks.
    pub(crate) backlog: u64,
    /// serverTimestamp − scheduledAt of each live tick, ms: the part of the lateness spent
    /// before the gateway wrote the tick (generator, log, fan-out).
    pub(crate) server_lateness_ms: Vec<i32>,
    /// An adaptive game's pace when the player left (its last `tick_rate`), and how many
    /// changes it was told of.
    pub(crate) pace_ms: Option<i64>,
    pub(crate) pace_changes: u64,
}

/// The fields of a server frame the bots read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    step: Option<i64>,
    scheduled_at: Option<i64>,
    server_timestamp: Option<i64>,
    from_step: Option<i64>,
    tick_ms: Option<i64>,
}

/// One player: connect, join, record every tick until the measured window is over.
pub(crate) async fn play(
    ticket: Ticket,
    user_id: String,
    config: &BotsConfig,
    plan: Plan,
    shared: &Shared,
    shutdown: CancellationToken,
    seed: u64,
) -> PlayerOutcome {
    let mut outcome = PlayerOutcome::default();
    let last_expected = (plan.measure_end_ms - ticket.start_at).div_euclid(ticket.tick_ms);
    let mut record = StepRecord::new(last_expected);
    outcome.expected = record.expected();
    outcome.lateness_us.reserve(record.expected() as usize);
    let (window_start_us, window_end_us) = (plan.window_start_ms * 1000, plan.window_end_ms * 1000);
    let mut unreported = 0u64;
    let ws_config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0);
    // A place among the connections opened at once (a burst), held until the join is sent.
    let permit = match &shared.connects {
        Some(connects) => connects.acquire().await.ok(),
        None => None,
    };
    let Ok(stream) = TcpStream::connect(host_port(&ticket.ws_endpoint)).await else { return outcome };
    let _ = stream.set_nodelay(true);
    let io: Box<dyn Io> = if config.rtt.is_zero() && config.jitter.is_zero() {
        Box::new(stream)
    } else {
        Box::new(DelayedStream::new(stream, config.rtt, config.jitter, seed))
    };
    let Ok((mut ws, _)) =
        tokio_tungstenite::client_async_with_config(&ticket.ws_endpoint, io, Some(ws_config)).await
    else {
        return outcome;
    };
    outcome.connected = true;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let join = json!({"action":"join","sessionId":ticket.game_id,"userId":user_id,"token":ticket.token});
    // Ticks scheduled before this instant are history, whenever they arrive.
    let join_sent_ms = now_us() / 1000;
    if ws.send(Message::text(join.to_string())).await.is_err() {
        return outcome;
    }
    drop(permit);
    // From here the bot reads frames itself with tungstenite's frame parser, skipping the
    // WebSocket state machine's wakers and buffer zeroing: the bots share the machine with the
    // server they measure, so every microsecond they spend is taken from it.
    let mut io = ws.into_inner();
    let mut buf = BytesMut::with_capacity(4096);
    let mut mask_state = seed | 1;
    // Leave once every expected step is in, or a few seconds after the window (late ticks count).
    let hard_end =
        Instant::now() + Duration::from_millis((plan.measure_end_ms - now_us() / 1000).max(0) as u64 + 5_000);
    // Created once, not per message: a timer or a cancellation waiter registered per received
    // frame costs more than the frame itself, and the waiter list is shared by every player.
    let stop = tokio::time::sleep_until(hard_end);
    let cancelled = shutdown.cancelled();
    tokio::pin!(stop, cancelled);
    'read: loop {
        let read = tokio::select! {
            biased;
            read = io.read_buf(&mut buf) => read,
            () = &mut stop => break,
            () = &mut cancelled => break,
        };
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
        let received_us = now_us();
        loop {
            let (header, payload) = match take_frame(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(()) => {
                    outcome.errors += 1;
                    break 'read;
                }
            };
            match header.opcode {
                OpCode::Data(Data::Text) => {}
                OpCode::Control(Control::Ping) => {
                    let pong = client_frame(WsFrame::pong(payload.freeze()), &mut mask_state);
                    if io.write_all(&pong).await.is_err() {
                        break 'read;
                    }
                    continue;
                }
                OpCode::Control(Control::Close) => break 'read,
                _ => continue,
            }
            unreported += 1;
            if unreported == PROGRESS_BATCH {
                shared.received.fetch_add(unreported, Ordering::Relaxed);
                unreported = 0;
            }
            if (window_start_us..window_end_us).contains(&received_us) {
                outcome.window_messages += 1;
            }
            let Ok(frame) = serde_json::from_slice::<Frame<'_>>(&payload) else {
                outcome.errors += 1;
                continue;
            };
            match frame.kind {
                "tick" => {
                    let (Some(step), Some(scheduled_at)) = (frame.step, frame.scheduled_at) else { continue };
                    if !record.receive(step) {
                        // Outside the measured steps.
                    } else if scheduled_at < join_sent_ms {
                        outcome.backlog += 1;
                    } else {
                        let lateness = (received_us - scheduled_at * 1000)
                            .clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                        outcome.lateness_us.push(lateness as i32);
                        if let Some(server_timestamp) = frame.server_timestamp {
                            outcome
                                .server_lateness_ms
                                .push((server_timestamp - scheduled_at).clamp(-1 << 30, 1 << 30) as i32);
                        }
                    }
                    if record.complete() {
                        break 'read;
                    }
                }
                // An adaptive game slowed or sped up: fewer (or more) of its steps fall in the
                // measured window, and lateness is judged by the new pace's scheduledAt.
                "tick_rate" => {
                    let (Some(from), Some(at), Some(tick_ms)) =
                        (frame.from_step, frame.scheduled_at, frame.tick_ms)
                    else {
                        continue;
                    };
                    outcome.pace_ms = Some(tick_ms);
                    outcome.pace_changes += 1;
                    record.expect_until(from + (plan.measure_end_ms - at).div_euclid(tick_ms.max(1)));
                    if record.complete() {
                        break 'read;
                    }
                }
                "kicked" => outcome.kicked = true,
                "error" => outcome.errors += 1,
                "session_ended" => break 'read,
                _ => {}
            }
        }
    }
    shared.received.fetch_add(unreported, Ordering::Relaxed);
    let _ = io.write_all(&client_frame(WsFrame::close(None), &mut mask_state)).await;
    outcome.expected = record.expected();
    outcome.delivered = record.delivered;
    outcome.duplicates = record.duplicates;
    outcome.out_of_order = record.out_of_order;
    outcome.complete = record.complete();
    outcome
}

/// Splits the next complete frame off `buf`: its header and payload. `Err` on a malformed frame.
fn take_frame(buf: &mut BytesMut) -> Result<Option<(FrameHeader, BytesMut)>, ()> {
    let mut cursor = std::io::Cursor::new(&buf[..]);
    let Some((header, length)) = FrameHeader::parse(&mut cursor).map_err(|_| ())? else { return Ok(None) };
    let header_len = cursor.position() as usize;
    let total = header_len + usize::try_from(length).map_err(|_| ())?;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    Ok(Some((header, frame.split_off(header_len))))
}

/// A client frame's bytes, masked as clients must (RFC 6455 §5.3).
fn client_frame(mut frame: WsFrame, mask_state: &mut u64) -> Vec<u8> {
    *mask_state ^= *mask_state << 13;
    *mask_state ^= *mask_state >> 7;
    *mask_state ^= *mask_state << 17;
    frame.header_mut().mask = Some((*mask_state as u32).to_be_bytes());
    let mut out = Vec::with_capacity(frame.len());
    frame.format(&mut out).expect("writing to a Vec cannot fail");
    out
}

/// The socket type under a bot's WebSocket, plain or delayed.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn host_port(ws_url: &str) -> String {
    let rest = ws_url.split_once("://").map_or(ws_url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}
