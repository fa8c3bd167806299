import { describe, expect, it } from "vitest";
import type { EndOfGame, JoinedInfo, Tick } from "@tickcast/client";
import { initialState, missingSteps, reduce, verdict, type Action, type GameState } from "./state";

const feed = (state: GameState, ...actions: Action[]) => actions.reduce(reduce, state);

const tick = (step: number): Action => ({
  type: "tick",
  tick: { step, value: step + 1, round: 0, broken: false, scheduledAt: step * 100, serverTimestamp: step * 100 + 1 } as Tick,
});
const info: JoinedInfo = {
  region: "eu-west-1", startAt: 0, tickMs: 100, maxTickMs: 100, seedHash: "h", players: ["ana"], minBreakSteps: 10, maxBreakSteps: 100,
  paces: [{ fromStep: 0, scheduledAt: 0, tickMs: 100 }],
};
const end = (ok: boolean): EndOfGame => ({
  reason: "max_rounds", lastStep: 1, seed: "42", verified: { seedHash: ok, ticks: ok, mismatches: ok ? [] : [1] },
});

describe("the page's state from its game's events", () => {
  it("goes from joined through the countdown to running and ended, with the verdict", () => {
    let s = reduce(initialState, { type: "connecting" });
    expect(s.phase).toBe("connecting");
    s = feed(s, { type: "joined", info });
    expect(s.phase).toBe("countdown");
    s = feed(s, { type: "players", players: ["ana", "bo"] }, { type: "countdown", remainingMs: 2000 }, tick(0), tick(1), tick(1));
    expect(s.phase).toBe("running");
    expect(s.ticks.map((t) => t.step)).toEqual([0, 1]);
    expect(verdict(s)).toBeNull();
    s = feed(s, { type: "ended", end: end(true) });
    expect(s.phase).toBe("ended");
    expect(verdict(s)).toBe("verified: the seed matches seedHash and all 2 ticks match the engine and every scheduledAt follows the game's 1 pace(s)");
    expect(verdict(feed(s, { type: "ended", end: end(false) }))).toBe("NOT verified: the seed does not match seedHash; 1 tick(s) differ from the engine or the schedule");
  });

  it("follows the pace, the region and the latency the game reports", () => {
    let s = feed(initialState, { type: "joined", info }, tick(0));
    s = feed(s, { type: "tickRate", pace: { fromStep: 12, scheduledAt: 1_350, tickMs: 250, reason: "latency" } });
    expect([s.tickMs, s.paces.length]).toEqual([250, 2]);
    s = feed(s, { type: "migrated", region: "eu-central-1" }, { type: "latency", status: { status: "warning", avgRttMs: 120, jitterMs: 3 } });
    expect([s.region, s.latency?.status]).toEqual(["eu-central-1", "warning"]);
    s = feed(s, { type: "rtt", rtt: { meanMs: 12, jitterMs: 1, samples: 3 } });
    expect(s.rtt?.meanMs).toBe(12);
  });

  it("keeps a kicked or ended game so, whatever the connection does after", () => {
    const kicked = feed(initialState, tick(0), { type: "kicked", reason: "latency too high" });
    for (const action of [{ type: "reconnecting" }, { type: "connecting" }, tick(1)] as Action[]) {
      expect(reduce(kicked, action).phase).toBe("kicked");
    }
    expect(kicked.kickedReason).toBe("latency too high");
  });

  it("counts the steps missing between the first and the last", () => {
    const s = feed(initialState, tick(0), tick(1), tick(4));
    expect(missingSteps(s.ticks)).toEqual([2, 3]);
  });
});
