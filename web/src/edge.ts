// The edge as the page uses it: @tickcast/client's `EdgeClient` on the page's own origin, and
// what only a page needs (a spectator's ticket, a WebSocket URL on the host that served it).

import { EdgeClient, type Ticket } from "@tickcast/client";

/** A ticket, or a spectator's for a recorded game re-broadcast by `tickcast replay serve`. */
export type PageTicket = Ticket & { spectator?: boolean };

/** The edge that served this page. */
export const edge = new EdgeClient(location.origin);

/** The WebSocket URL of a ticket, on the host that served this page when it names loopback
 * (so a page reached through a proxy or a forwarded port connects the same way). */
export function endpointFor(ticket: PageTicket): string {
  const url = new URL(ticket.wsEndpoint);
  if (!ticket.spectator && (url.hostname === "127.0.0.1" || url.hostname === "localhost")) {
    url.host = location.host;
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  }
  return url.toString();
}

/** A spectator's ticket for a replay served at `wsEndpoint`. */
export function spectatorTicket(wsEndpoint: string): PageTicket {
  return { spectator: true, gameId: "replay", region: "", wsEndpoint, token: "spectator", startAt: 0, tickMs: 0, seedHash: "" };
}
