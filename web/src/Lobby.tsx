// The lobby: the games waiting and running (refreshed live, one click to join) and the games
// that ended lately (who played and with what latency), from the edge's read API.
import { useEffect, useState } from "react";
import { searchingCounts } from "./matchmaking";

export interface SessionSummary {
  sessionId: string;
  region: string;
  state: "waiting" | "running" | "ended";
  createdBy: string;
  createdAt: number;
  startAt: number;
  players: string[];
  endReason?: string;
}

interface Connection {
  connectionId: string;
  userId: string;
  state: string;
  avgRttMs?: number;
  jitterMs?: number;
  kicked: boolean;
  kickReason?: string;
}

/** How often the lobby asks the edge again. */
const REFRESH_MS = 2000;

async function sessions(query: string): Promise<SessionSummary[] | null> {
  const response = await fetch(`/edge/sessions?${query}`);
  // An edge without a projection store has no lobby to show.
  if (!response.ok) return null;
  return (await response.json()).sessions ?? [];
}

export function Lobby({ onJoin }: { onJoin: (gameId: string) => void }) {
  const [open, setOpen] = useState<SessionSummary[] | null>(null);
  const [ended, setEnded] = useState<SessionSummary[]>([]);
  const [shown, setShown] = useState<string | null>(null);
  const [detail, setDetail] = useState<Connection[] | null>(null);
  const [searching, setSearching] = useState<Record<string, number>>({});

  useEffect(() => {
    let stopped = false;
    const refresh = async () => {
      try {
        const [waiting, running, finished] = await Promise.all([
          sessions("state=waiting&limit=20"),
          sessions("state=running&limit=20"),
          sessions("state=ended&limit=5"),
        ]);
        if (stopped) return;
        setOpen(waiting && running ? [...waiting, ...running] : null);
        setEnded(finished ?? []);
        setSearching(await searchingCounts().catch(() => ({})));
      } catch {
        // The edge is away for a moment: keep what is shown, ask again.
      }
    };
    refresh();
    const timer = setInterval(refresh, REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);

  useEffect(() => {
    if (!shown) return;
    setDetail(null);
    fetch(`/edge/sessions/${encodeURIComponent(shown)}`)
      .then((r) => r.json())
      .then((s) => setDetail(s.connections ?? []), () => setDetail([]));
  }, [shown]);

  if (open === null) return null;
  return (
    <section className="lobby" data-testid="lobby">
      <h2>Games</h2>
      {open.length === 0 && <p>No game is waiting or running: start one.</p>}
      {Object.keys(searching).length > 0 && (
        <p data-testid="searching-counts">
          Searching for a match: {Object.entries(searching).map(([region, n]) => `${region} ${n}`).join(", ")}
        </p>
      )}
      <ul>
        {open.map((s) => (
          <li key={s.sessionId} data-testid="lobby-game" data-game-id={s.sessionId}>
            <span className={`phase phase-${s.state}`}>{s.state}</span> {s.region} — by {s.createdBy}
            {s.players.length > 0 ? `, playing: ${s.players.join(", ")}` : ", nobody connected yet"}{" "}
            <button onClick={() => onJoin(s.sessionId)}>Join</button>
          </li>
        ))}
      </ul>
      {ended.length > 0 && (
        <>
          <h2>Finished</h2>
          <ul>
            {ended.map((s) => (
              <li key={s.sessionId} data-testid="finished-game" data-game-id={s.sessionId}>
                <button className="link" onClick={() => setShown(shown === s.sessionId ? null : s.sessionId)}>
                  {s.region} — by {s.createdBy} ({s.endReason})
                </button>
                {shown === s.sessionId && (
                  <ul data-testid="finished-detail">
                    {detail === null && <li>loading…</li>}
                    {detail?.map((c) => (
                      <li key={c.connectionId}>
                        {c.userId}: {c.avgRttMs !== undefined ? `RTT ${c.avgRttMs} ms, jitter ${c.jitterMs ?? 0} ms` : "not measured"}
                        {c.kicked && ` — kicked (${c.kickReason})`}
                      </li>
                    ))}
                  </ul>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
