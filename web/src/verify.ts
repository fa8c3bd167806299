// The check a player can make at the end of a game: the revealed seed against seedHash, and
// every tick received against this page's own copy of the engine.

import { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, seedHash, stateAt } from "./engine";
import type { Tick } from "./protocol";

export interface Revealed {
  seed: string;
  /** The hash announced at the start. */
  seedHash: string;
  minBreakSteps?: number;
  maxBreakSteps?: number;
}

/** The verdict shown to the player, a sentence starting with "verified" or "NOT verified". */
export async function verifyGame(revealed: Revealed, ticks: Tick[]): Promise<string> {
  const seed = BigInt(revealed.seed);
  const params = {
    seed,
    minBreakSteps: BigInt(revealed.minBreakSteps ?? DEFAULT_MIN_BREAK_STEPS),
    maxBreakSteps: BigInt(revealed.maxBreakSteps ?? DEFAULT_MAX_BREAK_STEPS),
  };
  const hashOk = (await seedHash(seed)) === revealed.seedHash;
  const wrong = ticks.filter((t) => {
    const s = stateAt(params, t.step);
    return s.value !== t.value || s.round !== t.round || s.broken !== t.broken;
  });
  return hashOk && wrong.length === 0
    ? `verified: the seed matches seedHash and all ${ticks.length} ticks match the engine`
    : `NOT verified: ${hashOk ? "" : "the seed does not match seedHash; "}${wrong.length} tick(s) differ from the engine`;
}
