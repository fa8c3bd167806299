import { describe, expect, it } from "vitest";
import { seedHash, stateAt } from "./engine";
import type { Tick } from "./protocol";
import { verifyGame } from "./verify";

const params = { seed: 42n, minBreakSteps: 3n, maxBreakSteps: 5n };
const ticks: Tick[] = Array.from({ length: 20 }, (_, step) => ({ step, ...stateAt(params, step), scheduledAt: step, serverTimestamp: step }));

describe("end-of-game verification", () => {
  it("accepts a game whose seed matches its hash and whose ticks match the engine", async () => {
    const revealed = { seed: "42", seedHash: await seedHash(42n), minBreakSteps: 3, maxBreakSteps: 5 };
    expect(await verifyGame(revealed, ticks)).toBe("verified: the seed matches seedHash and all 20 ticks match the engine");
  });

  it("names a forged tick and a seed that does not match its hash", async () => {
    const forged = ticks.map((t) => (t.step === 7 ? { ...t, value: t.value + 1 } : t));
    const revealed = { seed: "42", seedHash: await seedHash(42n), minBreakSteps: 3, maxBreakSteps: 5 };
    expect(await verifyGame(revealed, forged)).toBe("NOT verified: 1 tick(s) differ from the engine");
    expect(await verifyGame({ ...revealed, seedHash: await seedHash(43n) }, ticks)).toMatch(/^NOT verified: the seed does not match seedHash; 0 tick/);
  });
});
