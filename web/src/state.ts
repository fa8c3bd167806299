// The page's state, from what its game tells it (the events of @tickcast/client's `Game`).
// Pure, so it is tested without a browser.

import type { EndOfGame, JoinedInfo, LatencyStatus, Pace, Tick } from "@tickcast/client";

export type Phase = "idle" | "connecting" | "countdown" | "running" | "ended" | "kicked" | "reconnecting" | "failed";

export interface GameState {
  phase: Phase;
  region?: string;
  startAt?: number;
  /** The pace in force, ms per step, and the slowest the game may go to. */
  tickMs?: number;
  maxTickMs?: number;
  seedHash?: string;
  players: string[];
  remainingMs?: number;
  /** Every step received, once, in step order. */
  ticks: Tick[];
  /** Every pace known, by fromStep: the chart marks the changes. */
  paces: Pace[];
  /** The client's own round trips to its gateway. */
  rtt: { meanMs: number; jitterMs: number; samples: number } | null;
  latency: LatencyStatus | null;
  kickedReason?: string;
  ended?: { reason: string; lastStep: number; seed: string };
  /** The check at the end: the seed against seedHash, every tick against the engine and the schedule. */
  verified?: EndOfGame["verified"];
  error?: string;
}

export const initialState: GameState = { phase: "idle", players: [], ticks: [], paces: [], rtt: null, latency: null };

export type Action =
  | { type: "connecting" }
  | { type: "reconnecting" }
  | { type: "failed"; error: string }
  | { type: "joined"; info: JoinedInfo }
  | { type: "countdown"; remainingMs: number }
  | { type: "players"; players: string[] }
  | { type: "tick"; tick: Tick }
  | { type: "tickRate"; pace: Pace }
  | { type: "latency"; status: LatencyStatus }
  | { type: "rtt"; rtt: { meanMs: number; jitterMs: number; samples: number } }
  | { type: "migrated"; region: string }
  | { type: "kicked"; reason: string }
  | { type: "ended"; end: EndOfGame };

const over = (state: GameState) => state.phase === "ended" || state.phase === "kicked";

export function reduce(state: GameState, action: Action): GameState {
  switch (action.type) {
    case "connecting":
      return over(state) ? state : { ...state, phase: state.ticks.length > 0 ? "reconnecting" : "connecting", error: undefined };
    case "reconnecting":
      return over(state) ? state : { ...state, phase: "reconnecting" };
    case "failed":
      return { ...state, phase: over(state) ? state.phase : "failed", error: action.error };
    case "joined":
      return {
        ...state,
        phase: state.ticks.length > 0 ? "running" : "countdown",
        region: action.info.region,
        startAt: action.info.startAt,
        tickMs: action.info.tickMs,
        maxTickMs: action.info.maxTickMs,
        seedHash: action.info.seedHash,
        players: action.info.players,
        paces: withPaces(state.paces, action.info.paces),
        error: undefined,
      };
    case "countdown":
      return { ...state, phase: "countdown", remainingMs: action.remainingMs };
    case "players":
      return { ...state, players: action.players };
    case "tick": {
      const last = state.ticks[state.ticks.length - 1];
      // A step already shown (computed here in client-side tick mode, then received) is not shown twice.
      if (last && action.tick.step <= last.step) return state.phase === "running" || over(state) ? state : { ...state, phase: "running" };
      return { ...state, phase: over(state) ? state.phase : "running", ticks: [...state.ticks, action.tick] };
    }
    case "tickRate": {
      const paces = withPaces(state.paces, [action.pace]);
      return { ...state, paces, tickMs: paces[paces.length - 1].tickMs };
    }
    case "latency":
      return { ...state, latency: action.status };
    case "rtt":
      return { ...state, rtt: action.rtt };
    case "migrated":
      return { ...state, region: action.region };
    case "kicked":
      return { ...state, phase: "kicked", kickedReason: action.reason };
    case "ended":
      return {
        ...state,
        phase: "ended",
        ended: { reason: action.end.reason, lastStep: action.end.lastStep, seed: action.end.seed },
        verified: action.end.verified,
      };
  }
}

/** `known` with `more`, one per fromStep (a reason, once known, is kept), in step order. */
export function withPaces(known: Pace[], more: Pace[]): Pace[] {
  const byStep = new Map(known.map((p) => [p.fromStep, p]));
  for (const p of more) byStep.set(p.fromStep, { ...p, reason: p.reason ?? byStep.get(p.fromStep)?.reason });
  return [...byStep.values()].sort((a, b) => a.fromStep - b.fromStep);
}

/** Steps missing between the first and the last received tick. */
export function missingSteps(ticks: Tick[]): number[] {
  const missing: number[] = [];
  for (let i = 1; i < ticks.length; i++) {
    for (let s = ticks[i - 1].step + 1; s < ticks[i].step; s++) missing.push(s);
  }
  return missing;
}

/** What the page says of the check at the end. */
export function verdict(state: GameState): string | null {
  const v = state.verified;
  if (!v) return null;
  return v.seedHash && v.ticks
    ? `verified: the seed matches seedHash and all ${state.ticks.length} ticks match the engine and every scheduledAt follows the game's ${state.paces.length} pace(s)`
    : `NOT verified: ${v.seedHash ? "" : "the seed does not match seedHash; "}${v.mismatches.length} tick(s) differ from the engine or the schedule`;
}
