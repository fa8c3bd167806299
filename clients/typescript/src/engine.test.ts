import { describe, expect, it } from "vitest";
import vectors from "../../../engine/tests/vectors/engine-v1.json";
import { breakInterval, seedHash, splitmix64, stateAt, stepAt } from "./engine.js";

// The golden vectors the Rust engine passes, read from the same file: this library's own copy of
// engine v1 must agree with the specification.
describe("engine v1 golden vectors", () => {
  it("splitmix64", () => {
    for (const v of vectors.splitmix64) expect(splitmix64(BigInt(v.x)).toString()).toBe(v.out);
  });
  it("breakInterval", () => {
    for (const v of vectors.break_interval) {
      const out = breakInterval(BigInt(v.seed), BigInt(v.round), BigInt(v.minBreakSteps), BigInt(v.maxBreakSteps));
      expect(Number(out)).toBe(v.out);
    }
  });
  it("stateAt", () => {
    for (const v of vectors.state_at_step) {
      const params = { seed: BigInt(v.seed), minBreakSteps: BigInt(v.minBreakSteps), maxBreakSteps: BigInt(v.maxBreakSteps) };
      expect(stateAt(params, v.step)).toEqual({ value: v.value, round: v.round, broken: v.broken });
    }
  });
  it("stepAt", () => {
    for (const v of vectors.step_at) expect(stepAt(v.startAt, v.tickMs, v.now)).toBe(v.step);
  });
  it("seedHash is the hex SHA-256 of the decimal seed", async () => {
    expect(await seedHash(0n)).toBe("5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9");
  });
});
