import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay } from "./backoff.js";
import { EdgeClient, type Ticket } from "./edge.js";
import { stateAt } from "./engine.js";
import { Game, type GameState, type WebSocketLike } from "./game.js";
import type { Tick } from "./protocol.js";
import { StepFilter } from "./steps.js";

// The state machine driven through an in-memory socket: what the gateway would send, when.
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  sent: unknown[] = [];
  closed = false;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.({});
  }
  frame(message: object) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  lost(code: number) {
    this.onclose?.({ code });
  }
}

const params = { seed: 7n, minBreakSteps: 10n, maxBreakSteps: 100n };
const ticket: Ticket = { gameId: "g", region: "eu-west-1", wsEndpoint: "ws://gw/ws/eu-west-1", token: "t1", startAt: 1_000, tickMs: 100, seedHash: "h", minBreakSteps: 10, maxBreakSteps: 100 };
const tick = (step: number) => ({ type: "tick", step, ...stateAt(params, step), scheduledAt: 1_000 + step * 100, serverTimestamp: 0 });
const joined = { type: "session_joined", sessionId: "g", startAt: 1_000, tickMs: 100, seedHash: "h", region: "eu-west-1", players: ["ana"], minBreakSteps: 10, maxBreakSteps: 100 };

function play(edge = new EdgeClient("http://edge")) {
  const game = new Game(ticket, "ana", edge, { webSocket: FakeSocket, livenessMs: 60_000 });
  const states: GameState[] = [];
  const ticks: Tick[] = [];
  game.on("state", (s) => states.push(s)).on("tick", (t) => ticks.push(t));
  return { game, states, ticks, socket: () => FakeSocket.all[FakeSocket.all.length - 1] };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
  FakeSocket.all = [];
});
afterEach(() => vi.useRealTimers());

describe("a game's state machine", () => {
  it("joins, waits, plays each step once and in order, and verifies at the end", async () => {
    const { game, states, ticks, socket } = play();
    await vi.advanceTimersByTimeAsync(0);
    socket().open();
    expect(socket().sent[0]).toEqual({ action: "join", sessionId: "g", userId: "ana", token: "t1" });
    socket().frame(joined);
    expect(game.state).toBe("waiting");
    for (const step of [0, 1, 1, 2, 0, 3]) socket().frame(tick(step));
    expect(ticks.map((t) => t.step)).toEqual([0, 1, 2, 3]);
    socket().frame({ type: "session_ended", reason: "max_rounds", lastStep: 3, seed: "7" });
    const end = await game.ended;
    expect(end.verified.ticks).toBe(true);
    expect(end.verified.mismatches).toEqual([]);
    expect(states).toEqual(["waiting", "playing", "ended"]);
  });

  it("reconnects after a lost socket with a backoff, and resumes from the last step", async () => {
    const { game, states, ticks, socket } = play();
    await vi.advanceTimersByTimeAsync(0);
    socket().open();
    socket().frame(joined);
    socket().frame(tick(0));
    socket().frame(tick(1));
    socket().lost(1006);
    expect(game.state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(250); // the first retry waits less than 250 ms
    expect(FakeSocket.all).toHaveLength(2);
    socket().open();
    expect(socket().sent[0]).toEqual({ action: "resume", sessionId: "g", userId: "ana", token: "t1", lastStep: 1 });
    socket().frame(joined);
    for (const step of [1, 2]) socket().frame(tick(step));
    expect(ticks.map((t) => t.step)).toEqual([0, 1, 2]);
    expect(states).toContain("reconnecting");
  });

  it("asks the edge for a fresh ticket after a close 1012 or a refused token", async () => {
    const edge = new EdgeClient("http://edge");
    const fresh = vi.spyOn(edge, "joinGame").mockResolvedValue({ ...ticket, token: "t2", wsEndpoint: "ws://other/ws/eu-west-1" });
    const { socket } = play(edge);
    await vi.advanceTimersByTimeAsync(0);
    socket().open();
    socket().frame(joined);
    socket().frame(tick(0));
    socket().lost(1012);
    await vi.advanceTimersByTimeAsync(250);
    expect(fresh).toHaveBeenCalledWith("g", "ana");
    expect(socket().url).toBe("ws://other/ws/eu-west-1");
    socket().open();
    expect(socket().sent[0]).toMatchObject({ action: "resume", token: "t2", lastStep: 0 });
    socket().lost(4003);
    await vi.advanceTimersByTimeAsync(500);
    expect(fresh).toHaveBeenCalledTimes(2);
  });

  it("stops at once on a kick: no reconnecting, `ended` rejects", async () => {
    const { game, socket } = play();
    await vi.advanceTimersByTimeAsync(0);
    socket().open();
    socket().frame(joined);
    socket().frame({ type: "kicked", reason: "latency too high" });
    socket().lost(4001);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(game.state).toBe("kicked");
    expect(FakeSocket.all).toHaveLength(1);
    await expect(game.ended).rejects.toThrow(/kicked/);
  });

  it("fails when it cannot reconnect for the give-up time", async () => {
    const game = new Game(ticket, "ana", new EdgeClient("http://edge"), { webSocket: FakeSocket, giveUpAfterMs: 5_000 });
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 40 && game.state !== "failed"; i++) {
      FakeSocket.all[FakeSocket.all.length - 1].lost(1006);
      await vi.advanceTimersByTimeAsync(10_000);
    }
    expect(game.state).toBe("failed");
  });

  it("flags a tick whose state or scheduledAt is not the engine's or the schedule's", async () => {
    const { game, socket } = play();
    await vi.advanceTimersByTimeAsync(0);
    socket().open();
    socket().frame(joined);
    socket().frame(tick(0));
    socket().frame({ ...tick(1), value: 99 });
    socket().frame({ ...tick(2), scheduledAt: 5 });
    socket().frame({ type: "session_ended", reason: "idle", lastStep: 2, seed: "7" });
    const end = await game.ended;
    expect(end.verified).toMatchObject({ ticks: false, mismatches: [1, 2] });
  });
});

describe("backoff and de-duplication", () => {
  it("waits a uniform time below a cap that doubles up to the maximum", () => {
    const bounds = { initialMs: 250, maxMs: 10_000 };
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, bounds, () => 0.999999))).toEqual([249, 499, 999, 1999, 9999]);
    expect(backoffDelay(5, bounds, () => 0)).toBe(0);
    expect(backoffDelay(1_000, bounds, () => 0.5)).toBe(5_000);
  });

  it("hands over each step once, in order", () => {
    const filter = new StepFilter();
    expect([0, 1, 1, 3, 2, 4].filter((s) => filter.accept(s))).toEqual([0, 1, 3, 4]);
  });
});
