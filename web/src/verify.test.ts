import { describe, expect, it } from "vitest";
import vectors from "../../engine/tests/vectors/engine-v1.json";
import { seedHash } from "./engine";
import type { Tick } from "./protocol";
import { verifyGame } from "./verify";

// The ticks of one game as the golden vectors give them (the same file the Rust engine passes),
// not as this page's engine computes them: the check must agree with the specification.
const game = { seed: "7", minBreakSteps: 10, maxBreakSteps: 100 };
const ticks: Tick[] = vectors.state_at_step
  .filter((v) => v.seed === game.seed && v.minBreakSteps === game.minBreakSteps && v.maxBreakSteps === game.maxBreakSteps && v.step >= 0)
  .map((v) => ({ step: v.step, value: v.value, round: v.round, broken: v.broken, scheduledAt: v.step, serverTimestamp: v.step }));

describe("end-of-game verification", () => {
  it("has the golden vectors of a whole game to check", () => {
    expect(ticks.length).toBeGreaterThan(5);
    expect(ticks.some((t) => t.broken)).toBe(true);
  });

  it("accepts a game whose seed matches its hash and whose ticks match the engine", async () => {
    const revealed = { ...game, seedHash: await seedHash(7n) };
    expect(await verifyGame(revealed, ticks)).toBe(`verified: the seed matches seedHash and all ${ticks.length} ticks match the engine`);
  });

  it("names a forged tick and a seed that does not match its hash", async () => {
    const forged = ticks.map((t, i) => (i === 3 ? { ...t, value: t.value + 1 } : t));
    const revealed = { ...game, seedHash: await seedHash(7n) };
    expect(await verifyGame(revealed, forged)).toBe("NOT verified: 1 tick(s) differ from the engine");
    expect(await verifyGame({ ...revealed, seedHash: await seedHash(8n) }, ticks)).toMatch(/^NOT verified: the seed does not match seedHash; 0 tick/);
  });

  it("checks every scheduledAt against the game's paces, a change included", async () => {
    const revealed = { ...game, seedHash: await seedHash(7n) };
    // One ms per step (the vectors' scheduledAt is the step), then 5 ms from the fifth tick's step
    // (the page checks when each step is due, not where the server may change the pace).
    const from = ticks[4].step;
    const paces = [
      { fromStep: 0, scheduledAt: 0, tickMs: 1 },
      { fromStep: from, scheduledAt: from - 1 + 5, tickMs: 5, reason: "latency" as const },
    ];
    const paced = ticks.map((t) => (t.step < from ? t : { ...t, scheduledAt: from - 1 + 5 * (t.step - from + 1) }));
    expect(await verifyGame(revealed, paced, paces)).toBe(
      `verified: the seed matches seedHash and all ${ticks.length} ticks match the engine and every scheduledAt follows the game's 2 pace(s)`,
    );
    const moved = paced.find((t) => t.step >= from)!.step;
    const off = paced.map((t) => (t.step === moved ? { ...t, scheduledAt: t.scheduledAt + 1 } : t));
    expect(await verifyGame(revealed, off, paces)).toBe(
      "NOT verified: 0 tick(s) differ from the engine; 1 tick(s) have a scheduledAt off the game's paces",
    );
    expect(await verifyGame(revealed, paced, paces.slice(0, 1))).toMatch(/^NOT verified: .* scheduledAt off/);
  });
});
