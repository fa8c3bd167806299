import { useEffect, useRef, useState } from "react";
import type { Ticket } from "@tickcast/client";
import { cancelMatch, measureLatencies, pollMatch, requestMatch } from "./matchmaking";

const POLL_MS = 1000;

type Search =
  | { phase: "idle" }
  | { phase: "measuring" }
  | { phase: "searching"; ticketId: string; since: number; latencies: Record<string, number> }
  | { phase: "over"; message: string };

/** "Find a match": measures the round trip to each region, asks the edge for a match, shows the
 * wait with a cancel button, and hands the game ticket over once matched. */
export function MatchSearch({ userId, regions, onMatched }: { userId: string; regions: string[]; onMatched: (ticket: Ticket) => void }) {
  const [search, setSearch] = useState<Search>({ phase: "idle" });
  const [now, setNow] = useState(() => Date.now());
  const matched = useRef(onMatched);
  matched.current = onMatched;

  const find = async () => {
    setSearch({ phase: "measuring" });
    try {
      const latencies = await measureLatencies(regions);
      const ticketId = await requestMatch(userId, latencies);
      setSearch({ phase: "searching", ticketId, since: Date.now(), latencies });
    } catch (e) {
      setSearch({ phase: "over", message: String((e as Error).message ?? e) });
    }
  };

  useEffect(() => {
    if (search.phase !== "searching") return;
    let stopped = false;
    const timer = setInterval(async () => {
      setNow(Date.now());
      try {
        const status = await pollMatch(search.ticketId);
        if (stopped) return;
        if (status.status === "matched") matched.current(status);
        else if (status.status === "expired") setSearch({ phase: "over", message: "No match found in time: try again, or start a game." });
        else if (status.status === "cancelled") setSearch({ phase: "idle" });
      } catch {
        // The edge is away for a moment: ask again at the next tick.
      }
    }, POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [search]);

  if (search.phase === "searching") {
    const waited = Math.max(0, Math.round((now - search.since) / 1000));
    const near = Object.entries(search.latencies).map(([region, ms]) => `${region} ${ms} ms`).join(", ");
    return (
      <section className="match" data-testid="match">
        <span data-testid="searching">searching… ({waited} s)</span> {near && <small>({near})</small>}{" "}
        <button onClick={() => cancelMatch(search.ticketId).then(() => setSearch({ phase: "idle" }))}>Cancel</button>
      </section>
    );
  }
  return (
    <section className="match" data-testid="match">
      <button onClick={find} disabled={search.phase === "measuring"}>
        {search.phase === "measuring" ? "Measuring…" : "Find a match"}
      </button>
      {search.phase === "over" && <span className="error"> {search.message}</span>}
    </section>
  );
}
