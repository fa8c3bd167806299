// The edge's HTTP API as the page uses it: start or join a game and get a ticket.

export interface Ticket {
  /** A recorded game re-broadcast by `tickcast replay serve`: watch only, no resume. */
  spectator?: boolean;
  gameId: string;
  region: string;
  wsEndpoint: string;
  token: string;
  startAt: number;
  tickMs: number;
  /** The slowest pace an adaptive game may go to (tickMs for a fixed pace). */
  maxTickMs?: number;
  seedHash: string;
  minBreakSteps?: number;
  maxBreakSteps?: number;
  /** Only in client-side tick mode: the page computes the ticks itself from the seed. */
  seed?: string;
}

/** POSTs `body` to the edge; the ticket, or an Error with the edge's message. */
export async function post(path: string, body: unknown): Promise<Ticket> {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.message ?? `HTTP ${response.status}`);
  return answer as Ticket;
}

/** The WebSocket URL of a ticket, on the host that served this page when it names loopback
 * (so a page reached through a proxy or a forwarded port connects the same way). */
export function endpointFor(ticket: Ticket): string {
  const url = new URL(ticket.wsEndpoint);
  if (!ticket.spectator && (url.hostname === "127.0.0.1" || url.hostname === "localhost")) {
    url.host = location.host;
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  }
  return url.toString();
}

/** A spectator's ticket for a replay served at `wsEndpoint`. */
export function spectatorTicket(wsEndpoint: string): Ticket {
  return { spectator: true, gameId: "replay", region: "", wsEndpoint, token: "spectator", startAt: 0, tickMs: 0, seedHash: "" };
}
