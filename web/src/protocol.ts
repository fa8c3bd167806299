// The client protocol (docs/protocol.md): what the page sends, and a reducer from what the
// server sends to the page's state. Pure, so it is tested without a browser.

/** Client → server messages. */
export type ClientMessage =
  | { action: "join"; sessionId: string; userId: string; token: string }
  | { action: "resume"; sessionId: string; userId: string; token: string; lastStep: number }
  | { action: "ping"; clientTimestamp: number }
  | { action: "leave" };

/** A client message as the text of a WebSocket frame. */
export function encode(message: ClientMessage): string {
  return JSON.stringify(message);
}

/** A pace in force from `fromStep` on: step s is due at scheduledAt + (s − fromStep) · tickMs. */
export interface Pace {
  fromStep: number;
  scheduledAt: number;
  tickMs: number;
  /** Why it changed (absent for the game's first pace). */
  reason?: "latency" | "load";
}

export interface Tick {
  step: number;
  value: number;
  round: number;
  broken: boolean;
  scheduledAt: number;
  serverTimestamp: number;
}

/** Server → client messages. */
export type ServerMessage =
  | {
      type: "session_joined";
      sessionId: string;
      startAt: number;
      /** The pace in force, from paceFromStep (due at paceScheduledAt). */
      tickMs: number;
      maxTickMs?: number;
      paceFromStep?: number;
      paceScheduledAt?: number;
      /** Every pace so far, oldest first. */
      paces?: Pace[];
      seedHash: string;
      region: string;
      players: string[];
      minBreakSteps: number;
      maxBreakSteps: number;
    }
  | { type: "countdown"; remainingMs: number }
  /** An adaptive game's pace changes from fromStep on (sent before that step's tick). */
  | { type: "tick_rate"; fromStep: number; scheduledAt: number; tickMs: number; reason: "latency" | "load" }
  | { type: "players"; players: string[] }
  | ({ type: "tick" } & Tick)
  | { type: "pong"; clientTimestamp: number; serverTimestamp: number }
  | { type: "latency_status"; status: "ok" | "warning"; avgRttMs: number; jitterMs: number }
  | { type: "kicked"; reason: string }
  | { type: "session_ended"; reason: string; lastStep: number; seed: string }
  /** The game moved to another region; the close (1012) that follows makes the page ask the
   * edge for a ticket there and resume from its last step. */
  | { type: "session_migrated"; region: string; fromStep: number }
  | { type: "error"; code: string; message: string };

export type Phase = "idle" | "connecting" | "countdown" | "running" | "ended" | "kicked" | "reconnecting";

export interface GameState {
  phase: Phase;
  sessionId?: string;
  region?: string;
  startAt?: number;
  /** The pace in force, ms per step, and the slowest the game may go to. */
  tickMs?: number;
  maxTickMs?: number;
  /** Every pace known, by fromStep: what each tick's scheduledAt is checked against. */
  paces: Pace[];
  seedHash?: string;
  /** The engine's break bounds, to check the ticks once the seed is out. */
  breakSteps?: { min: number; max: number };
  players: string[];
  remainingMs?: number;
  /** Every step received, once, in step order. */
  ticks: Tick[];
  /** Round trips measured by our own pings (ms), newest last. */
  rtts: number[];
  latency: { status: "ok" | "warning"; avgRttMs: number; jitterMs: number } | null;
  kickedReason?: string;
  ended?: { reason: string; lastStep: number; seed: string };
  error?: string;
}

export const initialState: GameState = { phase: "idle", players: [], ticks: [], rtts: [], latency: null, paces: [] };

export type Action =
  | { type: "connecting" }
  | { type: "disconnected" }
  | { type: "server"; message: ServerMessage; receivedAt: number }
  | { type: "failed"; error: string };

const RTT_WINDOW = 30;

export function reduce(state: GameState, action: Action): GameState {
  switch (action.type) {
    case "connecting":
      // A game that is over stays over, whatever a socket does after.
      if (state.phase === "ended" || state.phase === "kicked") return state;
      return { ...state, phase: state.ticks.length > 0 ? "reconnecting" : "connecting", error: undefined };
    case "disconnected":
      return state.phase === "ended" || state.phase === "kicked" ? state : { ...state, phase: "reconnecting" };
    case "failed":
      return { ...state, error: action.error };
    case "server":
      return onMessage(state, action.message, action.receivedAt);
  }
}

function onMessage(state: GameState, m: ServerMessage, receivedAt: number): GameState {
  switch (m.type) {
    case "session_joined":
      return {
        ...state,
        phase: state.ticks.length > 0 ? "running" : "countdown",
        sessionId: m.sessionId,
        region: m.region,
        startAt: m.startAt,
        tickMs: m.tickMs,
        maxTickMs: m.maxTickMs ?? m.tickMs,
        paces: withPaces(
          state.paces,
          m.paces ?? [{ fromStep: m.paceFromStep ?? 0, scheduledAt: m.paceScheduledAt ?? m.startAt, tickMs: m.tickMs }],
        ),
        seedHash: m.seedHash,
        breakSteps: { min: m.minBreakSteps, max: m.maxBreakSteps },
        players: m.players,
        error: undefined,
      };
    case "countdown":
      return { ...state, phase: "countdown", remainingMs: m.remainingMs };
    case "tick_rate": {
      const paces = withPaces(state.paces, [{ fromStep: m.fromStep, scheduledAt: m.scheduledAt, tickMs: m.tickMs, reason: m.reason }]);
      return { ...state, paces, tickMs: paces[paces.length - 1].tickMs };
    }
    case "players":
      return { ...state, players: m.players };
    case "tick": {
      const last = state.ticks[state.ticks.length - 1];
      // A step already shown (a resume replays from our last step) is not shown twice.
      if (last && m.step <= last.step) return state.phase === "running" ? state : { ...state, phase: "running" };
      const { type: _, ...tick } = m;
      return { ...state, phase: state.phase === "ended" ? "ended" : "running", ticks: [...state.ticks, tick] };
    }
    case "pong": {
      const rtt = Math.max(0, receivedAt - m.clientTimestamp);
      return { ...state, rtts: [...state.rtts.slice(-(RTT_WINDOW - 1)), rtt] };
    }
    case "latency_status":
      return { ...state, latency: { status: m.status, avgRttMs: m.avgRttMs, jitterMs: m.jitterMs } };
    case "kicked":
      return { ...state, phase: "kicked", kickedReason: m.reason };
    case "session_ended":
      return { ...state, phase: "ended", ended: { reason: m.reason, lastStep: m.lastStep, seed: m.seed } };
    case "session_migrated":
      return { ...state, region: m.region };
    case "error":
      return { ...state, error: `${m.code}: ${m.message}` };
    default:
      // A frame type this page does not know (a newer server): nothing to show.
      return state;
  }
}

/** `known` with `more`, one per fromStep (a reason, once known, is kept), in step order. */
export function withPaces(known: Pace[], more: Pace[]): Pace[] {
  const byStep = new Map(known.map((p) => [p.fromStep, p]));
  for (const p of more) byStep.set(p.fromStep, { ...p, reason: p.reason ?? byStep.get(p.fromStep)?.reason });
  return [...byStep.values()].sort((a, b) => a.fromStep - b.fromStep);
}

/** When `step` is due by the latest of `paces` at or before it (the first before the start). */
export function scheduledAt(paces: Pace[], step: number): number | undefined {
  let pace = paces[0];
  for (const p of paces) if (p.fromStep <= step) pace = p;
  return pace === undefined ? undefined : pace.scheduledAt + (step - pace.fromStep) * pace.tickMs;
}

/** Mean and population standard deviation of the measured round trips. */
export function rttStats(rtts: number[]): { mean: number; jitter: number } | null {
  if (rtts.length === 0) return null;
  const mean = rtts.reduce((a, b) => a + b, 0) / rtts.length;
  const variance = rtts.reduce((a, b) => a + (b - mean) ** 2, 0) / rtts.length;
  return { mean, jitter: Math.sqrt(variance) };
}

/** Steps missing between the first and the last received tick. */
export function missingSteps(ticks: Tick[]): number[] {
  const missing: number[] = [];
  for (let i = 1; i < ticks.length; i++) {
    for (let s = ticks[i - 1].step + 1; s < ticks[i].step; s++) missing.push(s);
  }
  return missing;
}
