// Matchmaking from the page (docs/protocol.md, "Matchmaking"): the round trip to each region,
// timed against its gateway's GET /ws/<region>/ping, and a ticket asked for, polled and
// cancelled at the edge (through @tickcast/client's `EdgeClient`).

import type { Ticket } from "@tickcast/client";
import { edge } from "./edge";

/** Tries per region; the fastest counts (the first may pay for a new connection). */
const PINGS_PER_REGION = 3;

/** The round trip to each region, ms (the fastest of a few tries); regions that do not answer
 * are left out. */
export async function measureLatencies(regions: string[]): Promise<Record<string, number>> {
  const latencies: Record<string, number> = {};
  for (const region of regions) {
    let best = Infinity;
    for (let i = 0; i < PINGS_PER_REGION; i++) {
      const sent = performance.now();
      try {
        const response = await fetch(`/ws/${encodeURIComponent(region)}/ping`, { cache: "no-store" });
        if (response.status === 204) best = Math.min(best, performance.now() - sent);
      } catch {
        // Unreachable now: the region is left out unless another try answers.
      }
    }
    if (best !== Infinity) latencies[region] = Math.round(best);
  }
  return latencies;
}

/** A ticket's answer: searching, matched (with the game ticket), expired or cancelled. */
export type MatchStatus =
  | { status: "searching"; waitedMs: number }
  | ({ status: "matched"; players: string[]; latencyMs: number | null } & Ticket)
  | { status: "expired" }
  | { status: "cancelled" };

/** Asks for a match; the ticket's id. */
export async function requestMatch(userId: string, latencies: Record<string, number>): Promise<string> {
  const body = Object.keys(latencies).length > 0 ? { userId, latencies } : { userId };
  return (await edge.request<{ ticketId: string }>("POST", "/edge/match", body)).ticketId;
}

export function pollMatch(ticketId: string): Promise<MatchStatus> {
  return edge.request("GET", `/edge/match/${encodeURIComponent(ticketId)}`);
}

export async function cancelMatch(ticketId: string): Promise<void> {
  await edge.request("DELETE", `/edge/match/${encodeURIComponent(ticketId)}`).catch(() => {});
}

/** Players searching, per region they could be matched in. */
export async function searchingCounts(): Promise<Record<string, number>> {
  return (await edge.request<{ searching: Record<string, number> }>("GET", "/edge/match")).searching;
}
