// One game as a client plays it: the WebSocket to its gateway, kept up through lost sockets
// (exponential backoff with full jitter, then `resume` from the last step), fresh tickets when
// the old one stops working (close 1012, a refused or expired token), each step handed to the
// application once and in order, and the check at the end.

import { type BackoffOptions, DEFAULT_BACKOFF, backoffDelay } from "./backoff.js";
import { type EdgeClient, EdgeError, type Ticket } from "./edge.js";
import { CLOSE, type LatencyStatus, type Pace, type ServerMessage, type Tick, encode, mergePaces } from "./protocol.js";
import { StepFilter } from "./steps.js";
import { type Verified, verifyGame } from "./verify.js";

/** Where a game is, as the application sees it (docs/client.md has the diagram). */
export type GameState = "connecting" | "waiting" | "playing" | "reconnecting" | "kicked" | "ended" | "failed";

/** What a game tells the application. */
export interface GameEvents {
  state: (state: GameState, reason?: string) => void;
  tick: (tick: Tick) => void;
  countdown: (remainingMs: number) => void;
  players: (userIds: string[]) => void;
  latency: (status: LatencyStatus) => void;
  tickRate: (pace: Pace) => void;
  migrated: (region: string) => void;
  /** Each `session_joined` (the first join, and every resume): the game as the gateway tells it. */
  joined: (info: JoinedInfo) => void;
  /** After each of the client's own pings is answered: its round trips so far. */
  rtt: (rtt: { meanMs: number; jitterMs: number; samples: number }) => void;
  /** An `error` frame: a request the gateway refused (the game goes on, or a close follows). */
  error: (error: { code: string; message: string }) => void;
}

/** What a `session_joined` says. */
export interface JoinedInfo {
  region: string;
  startAt: number;
  /** The pace in force, and the slowest the game may go to. */
  tickMs: number;
  maxTickMs: number;
  seedHash: string;
  players: string[];
  minBreakSteps: number;
  maxBreakSteps: number;
  paces: Pace[];
}

/** How the game ended, and whether it checks out. */
export interface EndOfGame {
  reason: string;
  lastStep: number;
  seed: string;
  verified: Verified;
}

/** The part of the WebSocket API a game uses: the browser's, Node 22's, or the `ws` package's. */
export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ConnectionOptions {
  /** Another WebSocket implementation (the `ws` package on Node 20 without
   * `--experimental-websocket`); the global one by default. */
  webSocket?: WebSocketConstructor;
  backoff?: BackoffOptions;
  /** How often the client pings for its own round trip, ms (1000). */
  pingIntervalMs?: number;
  /** A socket silent this long (no tick, no pong) is taken for dead and replaced, ms (5000). */
  livenessMs?: number;
  /** A game that cannot reconnect for this long fails, ms (120000). */
  giveUpAfterMs?: number;
  /** The WebSocket URL of a ticket (a page rewrites loopback addresses to its own host). */
  endpoint?: (ticket: Ticket) => string;
  /** Watching a replay (`tickcast replay serve`): every connection joins afresh, and there is
   * no edge to ask for tickets. */
  spectator?: boolean;
}

/** Round trips kept for `rtt()`. */
const RTT_WINDOW = 30;

export class Game {
  readonly gameId: string;
  /** The game's region (it changes if the game moves). */
  region: string;
  /** The commitment announced at the start (a spectator learns it from `session_joined`). */
  seedHash: string;
  state: GameState = "connecting";
  /** Resolves when the game ends, with the check; rejects if the player is kicked, leaves or the
   * game fails. */
  readonly ended: Promise<EndOfGame>;

  private ticket: Ticket;
  private readonly handlers = new Map<keyof GameEvents, Set<(...args: never[]) => void>>();
  private readonly steps = new StepFilter();
  /** Every tick handed over, for the check at the end. */
  private readonly ticks: Tick[] = [];
  private paces: Pace[] = [];
  private readonly rtts: number[] = [];
  private breakSteps: { min?: number; max?: number } = {};
  private socket: WebSocketLike | null = null;
  private attempt = 0;
  /** Set when the ticket stopped working: the next attempt asks the edge for a fresh one. */
  private freshTicket = false;
  private finished = false;
  /** Since when the game has been trying to reconnect (null while connected). */
  private disconnectedSince: number | null = null;
  private pinger: ReturnType<typeof setInterval> | undefined;
  private liveness: ReturnType<typeof setTimeout> | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private resolveEnd!: (end: EndOfGame) => void;
  private rejectEnd!: (error: Error) => void;
  private readonly webSocket: WebSocketConstructor;

  constructor(
    ticket: Ticket,
    private readonly userId: string,
    private readonly edge: EdgeClient,
    private readonly options: ConnectionOptions = {},
  ) {
    this.ticket = ticket;
    this.gameId = ticket.gameId;
    this.region = ticket.region;
    this.seedHash = ticket.seedHash;
    this.breakSteps = { min: ticket.minBreakSteps, max: ticket.maxBreakSteps };
    this.paces = [{ fromStep: 0, scheduledAt: ticket.startAt, tickMs: ticket.tickMs }];
    const webSocket = options.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!webSocket) {
      throw new Error("no WebSocket here: run Node 22, Node 20 with --experimental-websocket, or pass the `ws` package as { webSocket }");
    }
    this.webSocket = webSocket;
    this.ended = new Promise((resolve, reject) => {
      this.resolveEnd = resolve;
      this.rejectEnd = reject;
    });
    // Nobody may await it: its rejection must not end the process.
    this.ended.catch(() => {});
    // After the caller has attached its handlers.
    setTimeout(() => void this.connect(), 0);
  }

  on<E extends keyof GameEvents>(event: E, handler: GameEvents[E]): this {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(handler as (...args: never[]) => void);
    return this;
  }

  off<E extends keyof GameEvents>(event: E, handler: GameEvents[E]): this {
    this.handlers.get(event)?.delete(handler as (...args: never[]) => void);
    return this;
  }

  /** The client's own round trips to its gateway (its pings), over the last 30. */
  rtt(): { meanMs: number; jitterMs: number; samples: number } {
    const n = this.rtts.length;
    if (n === 0) return { meanMs: 0, jitterMs: 0, samples: 0 };
    const mean = this.rtts.reduce((a, b) => a + b, 0) / n;
    const variance = this.rtts.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    return { meanMs: mean, jitterMs: Math.sqrt(variance), samples: n };
  }

  /** The paces so far, oldest first. */
  pacesSoFar(): Pace[] {
    return [...this.paces];
  }

  /** Leaves the game: no more reconnecting; `ended` rejects. */
  leave(): void {
    if (this.finished) return;
    try {
      this.socket?.send(encode({ action: "leave" }));
    } catch {
      // Not connected: nothing to tell the gateway.
    }
    this.stop("ended", "left", new Error("left the game"));
  }

  private emit<E extends keyof GameEvents>(event: E, ...args: Parameters<GameEvents[E]>): void {
    for (const handler of this.handlers.get(event) ?? []) {
      (handler as unknown as (...a: Parameters<GameEvents[E]>) => void)(...args);
    }
  }

  private setState(state: GameState, reason?: string): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state, reason);
  }

  private async connect(): Promise<void> {
    if (this.finished) return;
    if (this.freshTicket && !this.options.spectator) {
      try {
        this.ticket = await this.edge.joinGame(this.gameId, this.userId);
        this.freshTicket = false;
      } catch (e) {
        if (e instanceof EdgeError && (e.code === "unknown_game" || e.code === "game_ended")) {
          return this.stop("failed", `the edge says: ${e.message}`, e);
        }
        // The edge is away or refused for now: try again after a pause.
        return this.reconnectLater(`no fresh ticket yet: ${(e as Error).message}`);
      }
      if (this.finished) return;
    }
    const url = this.options.endpoint ? this.options.endpoint(this.ticket) : this.ticket.wsEndpoint;
    let ws: WebSocketLike;
    try {
      ws = new this.webSocket(url);
    } catch (e) {
      return this.reconnectLater(`cannot open ${url}: ${(e as Error).message}`);
    }
    this.socket = ws;
    ws.onopen = () => {
      const base = { sessionId: this.ticket.gameId, userId: this.userId, token: this.ticket.token };
      const last = this.options.spectator ? null : this.steps.last;
      ws.send(encode(last === null ? { action: "join", ...base } : { action: "resume", ...base, lastStep: last }));
      this.pinger = setInterval(() => {
        try {
          ws.send(encode({ action: "ping", clientTimestamp: Date.now() }));
        } catch {
          // Closing: its close handler takes over.
        }
      }, this.options.pingIntervalMs ?? 1000);
      this.alive(ws);
    };
    ws.onmessage = (event) => {
      this.alive(ws);
      let message: ServerMessage;
      try {
        message = JSON.parse(String(event.data)) as ServerMessage;
      } catch {
        return;
      }
      void this.onMessage(message);
    };
    ws.onclose = (event) => this.onClose(ws, event.code);
    ws.onerror = () => {
      // A close follows.
    };
  }

  /** A frame came: the socket lives; silence from now on for `livenessMs` means it is dead. */
  private alive(ws: WebSocketLike): void {
    clearTimeout(this.liveness);
    this.liveness = setTimeout(() => {
      if (this.socket !== ws) return;
      this.drop(ws);
      this.reconnectLater("no frame from the gateway for too long");
    }, this.options.livenessMs ?? 5000);
  }

  /** Forgets `ws`: its events no longer count, and it is closed. */
  private drop(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    clearInterval(this.pinger);
    clearTimeout(this.liveness);
    if (this.socket === ws) this.socket = null;
    try {
      ws.close();
    } catch {
      // Already closed.
    }
  }

  private onClose(ws: WebSocketLike, code: number): void {
    this.drop(ws);
    if (this.finished) return;
    switch (code) {
      case CLOSE.kicked:
        return this.stop("kicked", "kicked by the server", new Error("kicked"));
      case CLOSE.replaced:
        return this.stop("failed", "a newer connection of this player took over", new Error("replaced"));
      case CLOSE.unauthorized:
      case CLOSE.reconnectElsewhere:
        this.freshTicket = true;
        return this.reconnectLater(code === CLOSE.unauthorized ? "the token was refused" : "the gateway asked to reconnect elsewhere");
      default:
        return this.reconnectLater(`connection closed (${code})`);
    }
  }

  private reconnectLater(reason: string): void {
    if (this.finished) return;
    // A ticket that fails again and again may name a gateway that is gone: ask the edge anew.
    if (this.attempt > 0 && this.attempt % 3 === 0) this.freshTicket = true;
    const now = Date.now();
    this.disconnectedSince ??= now;
    if (now - this.disconnectedSince > (this.options.giveUpAfterMs ?? 120_000)) {
      return this.stop("failed", `could not reconnect: ${reason}`, new Error(reason));
    }
    this.setState("reconnecting", reason);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.connect(), backoffDelay(this.attempt++, this.options.backoff ?? DEFAULT_BACKOFF));
  }

  private stop(state: GameState, reason: string, error?: Error): void {
    this.finished = true;
    clearTimeout(this.retry);
    if (this.socket) this.drop(this.socket);
    this.setState(state, reason);
    if (error) this.rejectEnd(error);
  }

  private async onMessage(m: ServerMessage): Promise<void> {
    if (this.finished) return;
    switch (m.type) {
      case "session_joined":
        this.attempt = 0;
        this.disconnectedSince = null;
        this.region = m.region;
        this.breakSteps = { min: m.minBreakSteps, max: m.maxBreakSteps };
        this.paces = mergePaces(
          this.paces,
          m.paces ?? [{ fromStep: m.paceFromStep ?? 0, scheduledAt: m.paceScheduledAt ?? m.startAt, tickMs: m.tickMs }],
        );
        if (!this.seedHash) this.seedHash = m.seedHash;
        this.emit("joined", {
          region: m.region,
          startAt: m.startAt,
          tickMs: m.tickMs,
          maxTickMs: m.maxTickMs ?? m.tickMs,
          seedHash: m.seedHash,
          players: m.players,
          minBreakSteps: m.minBreakSteps,
          maxBreakSteps: m.maxBreakSteps,
          paces: [...this.paces],
        });
        this.emit("players", m.players);
        this.setState(this.steps.last === null && Date.now() < m.startAt ? "waiting" : "playing");
        return;
      case "countdown":
        this.setState("waiting");
        this.emit("countdown", m.remainingMs);
        return;
      case "players":
        this.emit("players", m.players);
        return;
      case "tick": {
        if (!this.steps.accept(m.step)) return;
        const { type: _, ...tick } = m;
        this.ticks.push(tick);
        this.setState("playing");
        this.emit("tick", tick);
        return;
      }
      case "tick_rate": {
        const pace = { fromStep: m.fromStep, scheduledAt: m.scheduledAt, tickMs: m.tickMs, reason: m.reason };
        const known = this.paces.some((p) => p.fromStep === pace.fromStep);
        this.paces = mergePaces(this.paces, [pace]);
        if (!known) this.emit("tickRate", pace);
        return;
      }
      case "pong":
        this.rtts.push(Math.max(0, Date.now() - m.clientTimestamp));
        if (this.rtts.length > RTT_WINDOW) this.rtts.shift();
        this.emit("rtt", this.rtt());
        return;
      case "latency_status":
        this.emit("latency", { status: m.status, avgRttMs: m.avgRttMs, jitterMs: m.jitterMs });
        return;
      case "kicked":
        return this.stop("kicked", m.reason, new Error(`kicked: ${m.reason}`));
      case "session_migrated":
        this.region = m.region;
        this.freshTicket = true;
        this.emit("migrated", m.region);
        return;
      case "error":
        if (m.code === "invalid_token" || m.code === "expired_token") this.freshTicket = true;
        this.emit("error", { code: m.code, message: m.message });
        return;
      case "session_ended": {
        this.finished = true;
        clearTimeout(this.retry);
        if (this.socket) this.drop(this.socket);
        const verified = await verifyGame(
          { seed: m.seed, seedHash: this.seedHash, minBreakSteps: this.breakSteps.min, maxBreakSteps: this.breakSteps.max, paces: this.paces },
          this.ticks,
        );
        this.setState("ended", m.reason);
        this.resolveEnd({ reason: m.reason, lastStep: m.lastStep, seed: m.seed, verified });
        return;
      }
    }
  }
}
