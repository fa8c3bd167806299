// The edge's HTTP API (docs/protocol.md, "Edge"): game tickets from a start, a join or a match.

/** What the edge hands a player: where to connect and the token to present. */
export interface Ticket {
  gameId: string;
  region: string;
  wsEndpoint: string;
  token: string;
  startAt: number;
  tickMs: number;
  maxTickMs?: number;
  seedHash: string;
  minBreakSteps?: number;
  maxBreakSteps?: number;
  /** Only in client-side tick mode. */
  seed?: string;
}

/** What a game start may ask for; the edge's defaults fill the rest. */
export interface GameOptions {
  preferredRegion?: string;
  tickMs?: number;
  countdownMs?: number;
  maxRounds?: number;
  minBreakSteps?: number;
  maxBreakSteps?: number;
  maxTickMs?: number;
}

/** An answer of the edge that is not a success: its status, code and message. */
export class EdgeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds to wait before the same request may succeed (`Retry-After`). */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "EdgeError";
  }
}

export class EdgeClient {
  constructor(
    readonly edgeUrl: string,
    // Called as a function, not a method: a browser's fetch refuses another `this`.
    private readonly fetchImpl: typeof fetch = (input, init) => globalThis.fetch(input, init),
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetchImpl(this.edgeUrl.replace(/\/$/, "") + path, {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const answer = text ? JSON.parse(text) : {};
    if (!response.ok) {
      const retry = response.headers.get("retry-after");
      throw new EdgeError(response.status, answer.error ?? "http_error", answer.message ?? `HTTP ${response.status}`, retry ? Number(retry) : undefined);
    }
    return answer as T;
  }

  startGame(userId: string, options: GameOptions = {}): Promise<Ticket> {
    return this.request("POST", "/edge/game/start", { userId, ...options });
  }

  joinGame(gameId: string, userId: string): Promise<Ticket> {
    return this.request("POST", `/edge/game/${encodeURIComponent(gameId)}/join`, { userId });
  }
}
