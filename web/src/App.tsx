import { useCallback, useEffect, useReducer, useRef, useState } from "react";
import { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, seedHash, stateAt, stepAt } from "./engine";
import { initialState, missingSteps, reduce, rttStats, type ServerMessage, type Tick } from "./protocol";

interface Ticket {
  /** A recorded game re-broadcast by `tickcast replay serve`: watch only, no resume. */
  spectator?: boolean;
  gameId: string;
  region: string;
  wsEndpoint: string;
  token: string;
  startAt: number;
  tickMs: number;
  seedHash: string;
  minBreakSteps?: number;
  maxBreakSteps?: number;
  /** Only in client-side tick mode: the page computes the ticks itself from the seed. */
  seed?: string;
}

const USER_KEY = "tickcast.userId";

async function post(path: string, body: unknown): Promise<Ticket> {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.message ?? `HTTP ${response.status}`);
  return answer as Ticket;
}

/** The WebSocket URL of a ticket, on the host that served this page when it names loopback. */
function endpointFor(ticket: Ticket): string {
  const url = new URL(ticket.wsEndpoint);
  if (!ticket.spectator && (url.hostname === "127.0.0.1" || url.hostname === "localhost")) {
    url.host = location.host;
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  }
  return url.toString();
}

export function App() {
  const [state, dispatch] = useReducer(reduce, initialState);
  const [userId, setUserId] = useState(() => localStorage.getItem(USER_KEY) ?? `player-${Math.floor(Math.random() * 10000)}`);
  const [regions, setRegions] = useState<string[]>([]);
  const [region, setRegion] = useState("");
  const [ticket, setTicket] = useState<Ticket | null>(null);
  const [verdict, setVerdict] = useState<string | null>(null);
  const socket = useRef<WebSocket | null>(null);
  const lastStep = useRef<number | null>(null);
  const finished = useRef(false);

  useEffect(() => localStorage.setItem(USER_KEY, userId), [userId]);
  useEffect(() => {
    fetch("/edge/regions").then((r) => r.json()).then((r) => setRegions(r.regions ?? [])).catch(() => {});
  }, []);
  useEffect(() => {
    lastStep.current = state.ticks.length ? state.ticks[state.ticks.length - 1].step : null;
    finished.current = state.phase === "ended" || state.phase === "kicked";
  }, [state.ticks, state.phase]);

  // One connection per ticket; on a drop, reconnect with exponential backoff and resume
  // from the last step shown.
  useEffect(() => {
    if (!ticket) return;
    let attempt = 0;
    let timer: number | undefined;
    let pinger: number | undefined;
    let closed = false;
    const connect = () => {
      dispatch({ type: "connecting" });
      const ws = new WebSocket(endpointFor(ticket));
      socket.current = ws;
      // For the browser tests (and the curious): the live connection, to drop it by hand.
      (window as unknown as { tickcastSocket?: WebSocket }).tickcastSocket = ws;
      ws.onopen = () => {
        attempt = 0;
        const base = { sessionId: ticket.gameId, userId, token: ticket.token };
        const resume = lastStep.current !== null && !ticket.spectator;
        ws.send(JSON.stringify(resume ? { action: "resume", ...base, lastStep: lastStep.current } : { action: "join", ...base }));
        pinger = window.setInterval(() => ws.send(JSON.stringify({ action: "ping", clientTimestamp: Date.now() })), 1000);
      };
      ws.onmessage = (e) => dispatch({ type: "server", message: JSON.parse(e.data) as ServerMessage, receivedAt: Date.now() });
      ws.onclose = () => {
        window.clearInterval(pinger);
        dispatch({ type: "disconnected" });
        if (closed || finished.current) return;
        const delay = Math.min(10_000, 250 * 2 ** attempt++);
        timer = window.setTimeout(connect, delay);
      };
    };
    connect();
    return () => {
      closed = true;
      window.clearTimeout(timer);
      window.clearInterval(pinger);
      socket.current?.close();
    };
  }, [ticket, userId]);

  // Client-side tick mode: the ticks come from our own engine, on the game's clock; the server
  // still reports the end (and the same steps, which the reducer shows once).
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
        dispatch({ type: "server", message: { type: "tick", step: next, ...s, scheduledAt, serverTimestamp: Date.now() }, receivedAt: Date.now() });
      }
    }, Math.max(10, Math.floor(ticket.tickMs / 4)));
    return () => window.clearInterval(timer);
  }, [ticket]);

  // Joining through a share link, or watching a replay (`?watch=ws://HOST:PORT/ws`).
  useEffect(() => {
    const watch = new URLSearchParams(location.search).get("watch");
    if (watch && !ticket) {
      setTicket({ spectator: true, gameId: "replay", region: "", wsEndpoint: watch, token: "spectator", startAt: 0, tickMs: 0, seedHash: "" });
      return;
    }
    const join = new URLSearchParams(location.search).get("join");
    if (join && !ticket) post(`/edge/game/${encodeURIComponent(join)}/join`, { userId }).then(setTicket, (e) => dispatch({ type: "failed", error: String(e.message ?? e) }));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // At the end: the revealed seed against seedHash, and every tick against the engine.
  useEffect(() => {
    if (!state.ended || !ticket) return;
    const seed = BigInt(state.ended.seed);
    const params = {
      seed,
      minBreakSteps: BigInt(state.breakSteps?.min ?? ticket.minBreakSteps ?? DEFAULT_MIN_BREAK_STEPS),
      maxBreakSteps: BigInt(state.breakSteps?.max ?? ticket.maxBreakSteps ?? DEFAULT_MAX_BREAK_STEPS),
    };
    seedHash(seed).then((hash) => {
      const wrong = state.ticks.filter((t) => {
        const s = stateAt(params, t.step);
        return s.value !== t.value || s.round !== t.round || s.broken !== t.broken;
      });
      const hashOk = hash === (state.seedHash ?? ticket.seedHash);
      setVerdict(
        hashOk && wrong.length === 0
          ? `verified: the seed matches seedHash and all ${state.ticks.length} ticks match the engine`
          : `NOT verified: ${hashOk ? "" : "the seed does not match seedHash; "}${wrong.length} tick(s) differ from the engine`,
      );
    });
  }, [state.ended, state.ticks, state.seedHash, state.breakSteps, ticket]);

  const start = useCallback(() => {
    setVerdict(null);
    post("/edge/game/start", region ? { userId, preferredRegion: region } : { userId }).then(
      (t) => {
        setTicket(t);
        history.replaceState(null, "", `?join=${t.gameId}`);
      },
      (e) => dispatch({ type: "failed", error: String(e.message ?? e) }),
    );
  }, [userId, region]);

  const shareLink = ticket ? `${location.origin}/?join=${ticket.gameId}` : null;
  const latest = state.ticks[state.ticks.length - 1];
  const rtt = rttStats(state.rtts);

  return (
    <main>
      <header>
        <h1>tickcast</h1>
        <span className={`phase phase-${state.phase}`} data-testid="phase">{state.phase}</span>
      </header>
      {!ticket && (
        <section className="controls">
          <label>
            Player <input value={userId} onChange={(e) => setUserId(e.target.value)} maxLength={64} />
          </label>
          <label>
            Region
            <select value={region} onChange={(e) => setRegion(e.target.value)}>
              <option value="">automatic</option>
              {regions.map((r) => <option key={r}>{r}</option>)}
            </select>
          </label>
          <button onClick={start}>Start Game</button>
        </section>
      )}
      {state.error && <p className="error" role="alert">{state.error}</p>}
      {ticket?.spectator && <p className="share">Watching a recorded game from {ticket.wsEndpoint}</p>}
      {ticket?.seed && <p className="share" data-testid="local-mode">Ticks computed in this page from the seed (client-side tick mode)</p>}
      {shareLink && !ticket?.spectator && (
        <p className="share">
          Share this game: <a href={shareLink} data-testid="share-link">{shareLink}</a>
        </p>
      )}
      {state.phase === "countdown" && state.remainingMs !== undefined && (
        <p className="countdown" data-testid="countdown">Starts in {(state.remainingMs / 1000).toFixed(1)} s</p>
      )}
      {ticket && (
        <section className="status">
          <div>Step <b data-testid="step">{latest?.step ?? "–"}</b></div>
          <div>Value <b>{latest?.value ?? "–"}</b></div>
          <div>Round <b data-testid="round">{latest?.round ?? "–"}</b></div>
          <div>Region <b>{state.region ?? ticket.region}</b></div>
          <div>Players <b data-testid="players">{state.players.join(", ")}</b></div>
        </section>
      )}
      {ticket && <Chart ticks={state.ticks} />}
      {ticket && (
        <section
          className={`latency latency-${state.phase === "kicked" ? "kicked" : state.latency?.status ?? "ok"}`}
          data-testid="latency"
          data-missing={missingSteps(state.ticks).length}
          data-first-step={state.ticks[0]?.step ?? ""}
        >
          <b>Latency</b>{" "}
          {rtt ? `RTT ${rtt.mean.toFixed(0)} ms, jitter ${rtt.jitter.toFixed(0)} ms` : "measuring…"}
          {state.latency?.status === "warning" && " — warning: your connection is slow; you may be removed"}
          {state.phase === "kicked" && ` — removed from the game (${state.kickedReason})`}
          {state.phase === "reconnecting" && " — connection lost, reconnecting…"}
          {missingSteps(state.ticks).length > 0 && ` — ${missingSteps(state.ticks).length} step(s) missing`}
        </section>
      )}
      {state.ended && (
        <section className="ended" data-testid="ended">
          <p>Game over ({state.ended.reason}) after step {state.ended.lastStep}. Seed: <code>{state.ended.seed}</code></p>
          <p data-testid="verdict">{verdict ?? "verifying…"}</p>
        </section>
      )}
    </main>
  );
}

/** Value over steps, breaks marked. */
function Chart({ ticks }: { ticks: Tick[] }) {
  const width = 720;
  const height = 220;
  const shown = ticks.slice(-600);
  if (shown.length === 0) return <svg className="chart" viewBox={`0 0 ${width} ${height}`} data-testid="chart" />;
  const first = shown[0].step;
  const span = Math.max(1, shown[shown.length - 1].step - first);
  const top = Math.max(1, ...shown.map((t) => t.value));
  const x = (step: number) => ((step - first) / span) * (width - 20) + 10;
  const y = (value: number) => height - 10 - (value / top) * (height - 20);
  const points = shown.map((t) => `${x(t.step).toFixed(1)},${y(t.value).toFixed(1)}`).join(" ");
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${width} ${height}`}
      data-testid="chart"
      data-points={shown.length}
      data-recent={shown.slice(-50).map((t) => `${t.step}:${t.value}:${t.round}`).join(" ")}
    >
      <polyline points={points} fill="none" stroke="currentColor" strokeWidth="1.5" />
      {shown.filter((t) => t.broken).map((t) => (
        <line key={t.step} x1={x(t.step)} x2={x(t.step)} y1={10} y2={height - 10} className="break" />
      ))}
    </svg>
  );
}
