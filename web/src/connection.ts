// The page's connection to its gateway as React hooks: join, pings every second, reconnect with
// exponential backoff and resume from the last step shown — through a fresh ticket from the edge
// when a stopping gateway said to reconnect elsewhere (close 1012); and, in client-side tick
// mode, the ticks computed here on the game's clock.

import { useEffect, useRef } from "react";
import { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, stateAt, stepAt } from "./engine";
import { endpointFor, post, type Ticket } from "./edge";
import { encode, type Action, type GameState, type ServerMessage } from "./protocol";

/** The longest pause between two reconnection attempts. */
const MAX_BACKOFF_MS = 10_000;
/** WebSocket close code "service restart": the gateway is stopping; another one takes the game. */
const CLOSE_RECONNECT_ELSEWHERE = 1012;

/** One connection per ticket, kept up until the game is over or the ticket changes. */
export function useConnection(ticket: Ticket | null, userId: string, state: GameState, dispatch: (a: Action) => void) {
  // Read by the socket's callbacks, which outlive a render: the last step shown (where a resume
  // starts) and whether the game is over (no reconnecting then).
  const lastStep = useRef<number | null>(null);
  const finished = useRef(false);
  useEffect(() => {
    lastStep.current = state.ticks.length ? state.ticks[state.ticks.length - 1].step : null;
    finished.current = state.phase === "ended" || state.phase === "kicked";
  }, [state.ticks, state.phase]);

  useEffect(() => {
    if (!ticket) return;
    let attempt = 0;
    let timer: number | undefined;
    let pinger: number | undefined;
    let closed = false;
    let socket: WebSocket | null = null;
    // The ticket in use: the first, or a fresh one from the edge after a 1012 (another gateway).
    let current = ticket;
    // Set by a 1012: every attempt asks the edge for a ticket until a socket opens (the edge
    // may still name the stopping gateway for a moment).
    let refresh = false;
    const connect = async () => {
      dispatch({ type: "connecting" });
      if (refresh) {
        try {
          current = await post(`/edge/game/${encodeURIComponent(ticket.gameId)}/join`, { userId });
        } catch {
          // The edge is away or refused: try the ticket we have, and ask again next time.
        }
        if (closed) return;
      }
      const ws = new WebSocket(endpointFor(current));
      socket = ws;
      ws.onopen = () => {
        attempt = 0;
        refresh = false;
        const base = { sessionId: current.gameId, userId, token: current.token };
        const resume = lastStep.current !== null && !ticket.spectator;
        ws.send(encode(resume ? { action: "resume", ...base, lastStep: lastStep.current! } : { action: "join", ...base }));
        pinger = window.setInterval(() => ws.send(encode({ action: "ping", clientTimestamp: Date.now() })), 1000);
      };
      ws.onmessage = (e) => {
        const message = JSON.parse(e.data) as ServerMessage;
        // Known here, not after the next render: a close that follows at once must not reconnect.
        if (message.type === "kicked" || message.type === "session_ended") finished.current = true;
        dispatch({ type: "server", message, receivedAt: Date.now() });
      };
      ws.onclose = (event) => {
        window.clearInterval(pinger);
        dispatch({ type: "disconnected" });
        if (closed || finished.current) return;
        if (event.code === CLOSE_RECONNECT_ELSEWHERE && !ticket.spectator) refresh = true;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt++);
        timer = window.setTimeout(() => void connect(), delay);
      };
    };
    void connect();
    return () => {
      closed = true;
      window.clearTimeout(timer);
      window.clearInterval(pinger);
      socket?.close();
    };
  }, [ticket, userId, dispatch]);

  // Client-side tick mode: the ticks come from our own engine, on the game's clock; the server
  // still reports the end (and the same steps, which the reducer shows once).
  useEffect(() => {
    if (!ticket?.seed) return;
    const params = {
      seed: BigInt(ticket.seed),
      minBreakSteps: BigInt(ticket.minBreakSteps ?? DEFAULT_MIN_BREAK_STEPS),
      maxBreakSteps: BigInt(ticket.maxBreakSteps ?? DEFAULT_MAX_BREAK_STEPS),
    };
    let next = 0;
    const timer = window.setInterval(() => {
      const due = stepAt(ticket.startAt, ticket.tickMs, Date.now());
      if (finished.current) return;
      for (; next <= due; next++) {
        const s = stateAt(params, next);
        const scheduledAt = ticket.startAt + next * ticket.tickMs;
        dispatch({ type: "server", message: { type: "tick", step: next, ...s, scheduledAt, serverTimestamp: Date.now() }, receivedAt: Date.now() });
      }
    }, Math.max(10, Math.floor(ticket.tickMs / 4)));
    return () => window.clearInterval(timer);
  }, [ticket, dispatch]);
}
