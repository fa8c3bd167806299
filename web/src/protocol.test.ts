import { describe, expect, it } from "vitest";
import { encode, initialState, missingSteps, reduce, rttStats, scheduledAt, type GameState, type ServerMessage } from "./protocol";

const feed = (state: GameState, ...messages: ServerMessage[]) =>
  messages.reduce((s, message) => reduce(s, { type: "server", message, receivedAt: 1000 }), state);

const tick = (step: number) =>
  ({ type: "tick", step, value: step + 1, round: 0, broken: false, scheduledAt: step * 100, serverTimestamp: step * 100 + 1 }) as const;

describe("protocol reducer", () => {
  it("goes from joined through the countdown to running and ended", () => {
    let s = reduce(initialState, { type: "connecting" });
    expect(s.phase).toBe("connecting");
    s = feed(s, { type: "session_joined", sessionId: "g", startAt: 0, tickMs: 100, seedHash: "h", region: "eu-west-1", players: ["ana"], minBreakSteps: 10, maxBreakSteps: 100 });
    expect(s.phase).toBe("countdown");
    expect(s.breakSteps).toEqual({ min: 10, max: 100 });
    s = feed(s, { type: "players", players: ["ana", "bo"] });
    expect(s.players).toEqual(["ana", "bo"]);
    s = feed(s, { type: "countdown", remainingMs: 2000 }, tick(0), tick(1));
    expect(s.phase).toBe("running");
    expect(s.ticks.map((t) => t.step)).toEqual([0, 1]);
    s = feed(s, { type: "session_ended", reason: "max_rounds", lastStep: 1, seed: "42" });
    expect(s.phase).toBe("ended");
    expect(s.ended).toEqual({ reason: "max_rounds", lastStep: 1, seed: "42" });
  });

  it("follows a game to its new region, and shows nothing for a frame it does not know", () => {
    let s = feed(initialState, { type: "session_joined", sessionId: "g", startAt: 0, tickMs: 100, seedHash: "h", region: "eu-west-1", players: ["ana"], minBreakSteps: 10, maxBreakSteps: 100 }, tick(0));
    s = feed(s, { type: "session_migrated", region: "eu-central-1", fromStep: 1 });
    expect(s.phase).toBe("running");
    expect(s.region).toBe("eu-central-1");
    const unknown = { type: "something_new", field: 1 } as unknown as ServerMessage;
    expect(feed(s, unknown)).toBe(s);
  });

  it("follows an adaptive game's pace: the one in force at the join, then each change", () => {
    let s = feed(initialState, {
      type: "session_joined", sessionId: "g", startAt: 0, tickMs: 250, maxTickMs: 400, paceFromStep: 12, paceScheduledAt: 1350,
      paces: [{ fromStep: 0, scheduledAt: 0, tickMs: 100 }, { fromStep: 12, scheduledAt: 1350, tickMs: 250 }],
      seedHash: "h", region: "eu-west-1", players: ["ana"], minBreakSteps: 10, maxBreakSteps: 100,
    });
    expect([s.tickMs, s.maxTickMs, s.paces.length]).toEqual([250, 400, 2]);
    s = feed(s, { type: "tick_rate", fromStep: 30, scheduledAt: 6000, tickMs: 100, reason: "latency" });
    s = feed(s, { type: "tick_rate", fromStep: 30, scheduledAt: 6000, tickMs: 100, reason: "latency" });
    expect(s.tickMs).toBe(100);
    expect(s.paces.map((p) => p.fromStep)).toEqual([0, 12, 30]);
    expect([scheduledAt(s.paces, 11), scheduledAt(s.paces, 13), scheduledAt(s.paces, 31)]).toEqual([1100, 1600, 6100]);
  });

  it("keeps a kicked or ended game so, whatever the socket does after", () => {
    const kicked = feed(initialState, tick(0), { type: "kicked", reason: "latency too high" });
    for (const action of [{ type: "disconnected" }, { type: "connecting" }] as const) {
      expect(reduce(kicked, action).phase).toBe("kicked");
    }
    const ended = feed(initialState, tick(0), { type: "session_ended", reason: "max_rounds", lastStep: 0, seed: "1" });
    expect(reduce(ended, { type: "connecting" }).phase).toBe("ended");
  });

  it("shows a step once when a resume replays it, and keeps the chart without holes", () => {
    let s = feed(initialState, tick(0), tick(1), tick(2));
    s = reduce(s, { type: "disconnected" });
    expect(s.phase).toBe("reconnecting");
    s = feed(s, tick(2), tick(3));
    expect(s.ticks.map((t) => t.step)).toEqual([0, 1, 2, 3]);
    expect(missingSteps(s.ticks)).toEqual([]);
    expect(missingSteps([tick(0), tick(3)].map(({ type: _, ...t }) => t))).toEqual([1, 2]);
  });

  it("measures round trips from pongs and shows warnings and kicks plainly", () => {
    let s = reduce(initialState, { type: "server", message: { type: "pong", clientTimestamp: 900, serverTimestamp: 950 }, receivedAt: 1000 });
    s = reduce(s, { type: "server", message: { type: "pong", clientTimestamp: 1900, serverTimestamp: 1950 }, receivedAt: 2020 });
    expect(s.rtts).toEqual([100, 120]);
    expect(rttStats(s.rtts)).toEqual({ mean: 110, jitter: 10 });
    s = feed(s, { type: "latency_status", status: "warning", avgRttMs: 120, jitterMs: 10 });
    expect(s.latency?.status).toBe("warning");
    s = feed(s, { type: "kicked", reason: "latency" });
    expect(s.phase).toBe("kicked");
    expect(reduce(s, { type: "disconnected" }).phase).toBe("kicked");
  });
});

describe("client messages", () => {
  it("are the JSON the gateway expects", () => {
    expect(JSON.parse(encode({ action: "resume", sessionId: "g", userId: "ana", token: "t", lastStep: 41 }))).toEqual({
      action: "resume",
      sessionId: "g",
      userId: "ana",
      token: "t",
      lastStep: 41,
    });
    expect(encode({ action: "ping", clientTimestamp: 5 })).toBe('{"action":"ping","clientTimestamp":5}');
  });
});
