// @tickcast/client: play tickcast games from a browser or Node (docs/client.md).

import { type BackoffOptions } from "./backoff.js";
import { EdgeClient, EdgeError, type GameOptions, type Ticket } from "./edge.js";
import { type ConnectionOptions, Game } from "./game.js";

export { type BackoffOptions, DEFAULT_BACKOFF, backoffDelay } from "./backoff.js";
export { EdgeClient, EdgeError, type GameOptions, type Ticket } from "./edge.js";
export {
  type ConnectionOptions,
  type EndOfGame,
  Game,
  type GameEvents,
  type GameState,
  type JoinedInfo,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./game.js";
export { type LatencyStatus, type Pace, type Tick, scheduledAt } from "./protocol.js";
export { type Verified, verifyGame } from "./verify.js";
export { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, type Params, type State, seedHash, stateAt, stepAt } from "./engine.js";

export interface ClientOptions extends ConnectionOptions {
  /** The edge's base URL, e.g. http://127.0.0.1:8080. */
  edgeUrl: string;
  userId: string;
  /** Another fetch implementation; the global one by default. */
  fetch?: typeof fetch;
  backoff?: BackoffOptions;
}

export interface MatchOptions {
  /** Round trips to regions, ms; without any, the edge's hints choose one region. */
  latencies?: Record<string, number>;
  preferredRegion?: string;
  /** How often the ticket is polled, ms (1000). */
  pollMs?: number;
  /** Cancels the search (the ticket too). */
  signal?: AbortSignal;
}

/** A player of one edge: starts, joins or finds games, each a [`Game`]. */
export class TickcastClient {
  readonly edge: EdgeClient;

  constructor(private readonly options: ClientOptions) {
    this.edge = new EdgeClient(options.edgeUrl, options.fetch);
  }

  /** Starts a game (every option the edge's default when left out) and connects to it. */
  async startGame(options: GameOptions = {}): Promise<Game> {
    return this.play(await this.edge.startGame(this.options.userId, options));
  }

  /** Joins game `gameId` and connects to it. */
  async joinGame(gameId: string): Promise<Game> {
    return this.play(await this.edge.joinGame(gameId, this.options.userId));
  }

  /** Asks for a match and waits for it; the matched game, connected. Rejects with an
   * [`EdgeError`] if the ticket expires or is cancelled. */
  async findMatch(options: MatchOptions = {}): Promise<Game> {
    const body: Record<string, unknown> = { userId: this.options.userId };
    if (options.latencies && Object.keys(options.latencies).length > 0) body.latencies = options.latencies;
    if (options.preferredRegion) body.preferredRegion = options.preferredRegion;
    const { ticketId } = await this.edge.request<{ ticketId: string }>("POST", "/edge/match", body);
    const path = `/edge/match/${encodeURIComponent(ticketId)}`;
    const cancel = () => void this.edge.request("DELETE", path).catch(() => {});
    options.signal?.addEventListener("abort", cancel, { once: true });
    try {
      for (;;) {
        if (options.signal?.aborted) throw new EdgeError(499, "cancelled", "the search was cancelled");
        let answer: { status: string } & Ticket;
        try {
          answer = await this.edge.request<{ status: string } & Ticket>("GET", path);
        } catch (e) {
          // An edge that just started may not have read the ticket yet (503): ask again.
          if (!(e instanceof EdgeError) || e.status !== 503) throw e;
          await new Promise((r) => setTimeout(r, (e.retryAfterS ?? 1) * 1000));
          continue;
        }
        if (answer.status === "matched") return this.play(answer);
        if (answer.status !== "searching") throw new EdgeError(410, answer.status, `the match ticket ${answer.status}`);
        await new Promise((r) => setTimeout(r, options.pollMs ?? 1000));
      }
    } finally {
      options.signal?.removeEventListener("abort", cancel);
    }
  }

  /** Connects to the game of `ticket` (one from the edge). */
  play(ticket: Ticket): Game {
    return new Game(ticket, this.options.userId, this.edge, this.options);
  }
}
