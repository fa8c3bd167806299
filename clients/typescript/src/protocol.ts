// The client protocol (docs/protocol.md, "Gateway"): what a player sends and what a gateway
// answers, as types, and the close codes a client acts on.

/** A tick as the application gets it: each step once, in order. */
export interface Tick {
  step: number;
  value: number;
  round: number;
  broken: boolean;
  /** When the step was due (epoch ms), by the game's pace. */
  scheduledAt: number;
  /** When the gateway wrote it (epoch ms). */
  serverTimestamp: number;
}

/** A pace in force from `fromStep` on: step s is due at scheduledAt + (s − fromStep) · tickMs. */
export interface Pace {
  fromStep: number;
  scheduledAt: number;
  tickMs: number;
  /** Why it changed; absent for the game's first pace. */
  reason?: "latency" | "load";
}

/** The server's judgement of the player's round trips (`latency_status`). */
export interface LatencyStatus {
  status: "ok" | "warning";
  avgRttMs: number;
  jitterMs: number;
}

/** Client → gateway. */
export type ClientMessage =
  | { action: "join"; sessionId: string; userId: string; token: string }
  | { action: "resume"; sessionId: string; userId: string; token: string; lastStep: number }
  | { action: "ping"; clientTimestamp: number }
  | { action: "leave" };

/** Gateway → client. */
export type ServerMessage =
  | {
      type: "session_joined";
      sessionId: string;
      startAt: number;
      tickMs: number;
      maxTickMs?: number;
      paceFromStep?: number;
      paceScheduledAt?: number;
      paces?: Pace[];
      seedHash: string;
      region: string;
      players: string[];
      minBreakSteps: number;
      maxBreakSteps: number;
    }
  | { type: "countdown"; remainingMs: number }
  | { type: "players"; players: string[] }
  | ({ type: "tick" } & Tick)
  | { type: "tick_rate"; fromStep: number; scheduledAt: number; tickMs: number; reason: "latency" | "load" }
  | { type: "pong"; clientTimestamp: number; serverTimestamp: number }
  | ({ type: "latency_status" } & LatencyStatus)
  | { type: "kicked"; reason: string }
  | { type: "session_ended"; reason: string; lastStep: number; seed: string }
  | { type: "session_migrated"; region: string; fromStep: number }
  | { type: "error"; code: string; message: string };

/** A client message as the text of a WebSocket frame. */
export function encode(message: ClientMessage): string {
  return JSON.stringify(message);
}

/** Close codes a client acts on. */
export const CLOSE = {
  /** The gateway is stopping or the game moved: get a fresh ticket and resume elsewhere. */
  reconnectElsewhere: 1012,
  /** Kicked (after a `kicked` frame): stop. */
  kicked: 4001,
  /** A newer connection of the same player in the same game took over: stop. */
  replaced: 4002,
  /** The token was refused (expired, forged, another game's): get a fresh ticket. */
  unauthorized: 4003,
} as const;

/** `paces` with `more`, one per fromStep (a known reason is kept), in step order. */
export function mergePaces(paces: Pace[], more: Pace[]): Pace[] {
  const byStep = new Map(paces.map((p) => [p.fromStep, p]));
  for (const p of more) byStep.set(p.fromStep, { ...p, reason: p.reason ?? byStep.get(p.fromStep)?.reason });
  return [...byStep.values()].sort((a, b) => a.fromStep - b.fromStep);
}

/** When `step` is due by the latest of `paces` at or before it (the first before the start). */
export function scheduledAt(paces: Pace[], step: number): number | undefined {
  let pace = paces[0];
  for (const p of paces) if (p.fromStep <= step) pace = p;
  return pace === undefined ? undefined : pace.scheduledAt + (step - pace.fromStep) * pace.tickMs;
}
