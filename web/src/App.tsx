import { useCallback, useEffect, useReducer, useState } from "react";
import { useGame } from "./connection";
import { edge, type PageTicket, spectatorTicket } from "./edge";
import { Chart } from "./Chart";
import { Lobby } from "./Lobby";
import { MatchSearch } from "./Match";
import { initialState, missingSteps, reduce, verdict } from "./state";

const USER_KEY = "tickcast.userId";

export function App() {
  const [state, dispatch] = useReducer(reduce, initialState);
  const [userId, setUserId] = useState(() => localStorage.getItem(USER_KEY) ?? `player-${Math.floor(Math.random() * 10000)}`);
  const [regions, setRegions] = useState<string[]>([]);
  const [region, setRegion] = useState("");
  const [ticket, setTicket] = useState<PageTicket | null>(null);

  useEffect(() => localStorage.setItem(USER_KEY, userId), [userId]);
  useEffect(() => {
    fetch("/edge/regions").then((r) => r.json()).then((r) => setRegions(r.regions ?? [])).catch(() => {});
  }, []);
  useGame(ticket, userId, state, dispatch);

  // Joining through a share link, or watching a replay (`?watch=ws://HOST:PORT/ws`).
  useEffect(() => {
    const watch = new URLSearchParams(location.search).get("watch");
    if (watch && !ticket) {
      setTicket(spectatorTicket(watch));
      return;
    }
    const join = new URLSearchParams(location.search).get("join");
    if (join && !ticket) edge.joinGame(join, userId).then(setTicket, (e) => dispatch({ type: "failed", error: String(e.message ?? e) }));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // Into a game, from a start or a join: its ticket, and a page address to share or reload.
  const enter = useCallback((request: Promise<PageTicket>) => {
    request.then(
      (t) => {
        setTicket(t);
        history.replaceState(null, "", `?join=${t.gameId}`);
      },
      (e) => dispatch({ type: "failed", error: String(e.message ?? e) }),
    );
  }, []);
  const start = useCallback(
    () => enter(edge.startGame(userId, region ? { preferredRegion: region } : {})),
    [enter, userId, region],
  );
  const join = useCallback(
    (gameId: string) => enter(edge.joinGame(gameId, userId)),
    [enter, userId],
  );

  const shareLink = ticket ? `${location.origin}/?join=${ticket.gameId}` : null;
  const latest = state.ticks[state.ticks.length - 1];
  const rtt = state.rtt;

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
      {!ticket && <MatchSearch userId={userId} regions={regions} onMatched={(t) => enter(Promise.resolve(t))} />}
      {!ticket && <Lobby onJoin={join} />}
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
          <div>
            Pace <b data-testid="pace">{state.tickMs ?? ticket.tickMs} ms</b>
            {(state.maxTickMs ?? ticket.maxTickMs ?? ticket.tickMs) > ticket.tickMs &&
              ` (adaptive, ${ticket.tickMs}–${state.maxTickMs ?? ticket.maxTickMs} ms)`}
          </div>
          <div>Players <b data-testid="players">{state.players.join(", ")}</b></div>
        </section>
      )}
      {ticket && <Chart ticks={state.ticks} paces={state.paces} />}
      {ticket && (
        <section
          className={`latency latency-${state.phase === "kicked" ? "kicked" : state.latency?.status ?? "ok"}`}
          data-testid="latency"
          data-missing={missingSteps(state.ticks).length}
          data-first-step={state.ticks[0]?.step ?? ""}
        >
          <b>Latency</b>{" "}
          {rtt ? `RTT ${rtt.meanMs.toFixed(0)} ms, jitter ${rtt.jitterMs.toFixed(0)} ms` : "measuring…"}
          {state.latency?.status === "warning" && state.phase !== "kicked" && " — warning: your connection is slow; you may be removed"}
          {state.phase === "kicked" && ` — removed from the game (${state.kickedReason})`}
          {state.phase === "reconnecting" && " — connection lost, reconnecting…"}
          {missingSteps(state.ticks).length > 0 && ` — ${missingSteps(state.ticks).length} step(s) missing`}
        </section>
      )}
      {state.ended && (
        <section className="ended" data-testid="ended">
          <p>Game over ({state.ended.reason}) after step {state.ended.lastStep}. Seed: <code>{state.ended.seed}</code></p>
          <p data-testid="verdict">{verdict(state) ?? "verifying…"}</p>
        </section>
      )}
    </main>
  );
}
