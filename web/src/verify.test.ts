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
});
