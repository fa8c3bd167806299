// The page's game as a React hook: @tickcast/client's `Game` keeps the connection up (join,
// pings, reconnects with backoff, resume, fresh tickets), and its events become the page's
// actions; in client-side tick mode the ticks are also computed here, on the game's clock.

import { useEffect, useRef } from "react";
import { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, Game, stateAt, stepAt } from "@tickcast/client";
import { edge, endpointFor, type PageTicket } from "./edge";
import type { Action, GameState } from "./state";

/** One game per ticket, played until it is over or the ticket changes. */
export function useGame(ticket: PageTicket | null, userId: string, state: GameState, dispatch: (a: Action) => void) {
  // Read by the local ticker, which outlives a render: whether the game is over.
  const finished = useRef(false);
  useEffect(() => {
    finished.current = state.phase === "ended" || state.phase === "kicked";
  }, [state.phase]);

  useEffect(() => {
    if (!ticket) return;
    const game = new Game(ticket, userId, edge, { endpoint: endpointFor, spectator: ticket.spectator });
    dispatch({ type: "connecting" });
    game
      .on("state", (s, reason) => {
        if (s === "connecting") dispatch({ type: "connecting" });
        else if (s === "reconnecting") dispatch({ type: "reconnecting" });
        else if (s === "kicked") dispatch({ type: "kicked", reason: reason ?? "kicked" });
        else if (s === "failed") dispatch({ type: "failed", error: reason ?? "the game failed" });
      })
      .on("joined", (info) => dispatch({ type: "joined", info }))
      .on("countdown", (remainingMs) => dispatch({ type: "countdown", remainingMs }))
      .on("players", (players) => dispatch({ type: "players", players }))
      .on("tick", (tick) => dispatch({ type: "tick", tick }))
      .on("tickRate", (pace) => dispatch({ type: "tickRate", pace }))
      .on("latency", (status) => dispatch({ type: "latency", status }))
      .on("rtt", (rtt) => dispatch({ type: "rtt", rtt }))
      .on("migrated", (region) => dispatch({ type: "migrated", region }))
      .on("error", (error) => dispatch({ type: "failed", error: `${error.code}: ${error.message}` }));
    game.ended.then((end) => dispatch({ type: "ended", end }), () => {});
    return () => game.leave();
  }, [ticket, userId, dispatch]);

  // Client-side tick mode: the ticks come from the engine here, on the game's clock; the server
  // still reports the end (and the same steps, which the page shows once).
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
        dispatch({ type: "tick", tick: { step: next, ...s, scheduledAt, serverTimestamp: Date.now() } });
      }
    }, Math.max(10, Math.floor(ticket.tickMs / 4)));
    return () => window.clearInterval(timer);
  }, [ticket, dispatch]);
}
