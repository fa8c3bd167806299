// The check a player can make at the end of a game: the revealed seed against seedHash, every
// tick received against this page's own copy of the engine, and every tick's scheduledAt against
// the game's paces (its start's, and each change it was told of).

import { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, seedHash, stateAt } from "./engine";
import { type Pace, type Tick, scheduledAt } from "./protocol";

export interface Revealed {
  seed: string;
  /** The hash announced at the start. */
  seedHash: string;
  minBreakSteps?: number;
  maxBreakSteps?: number;
}

/** The verdict shown to the player, a sentence starting with "verified" or "NOT verified". */
export async function verifyGame(revealed: Revealed, ticks: Tick[], paces: Pace[] = []): Promise<string> {
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
  const late = paces.length === 0 ? [] : ticks.filter((t) => scheduledAt(paces, t.step) !== t.scheduledAt);
  const schedule = paces.length === 0 ? "" : ` and every scheduledAt follows the game's ${paces.length} pace(s)`;
  return hashOk && wrong.length === 0 && late.length === 0
    ? `verified: the seed matches seedHash and all ${ticks.length} ticks match the engine${schedule}`
    : `NOT verified: ${hashOk ? "" : "the seed does not match seedHash; "}${wrong.length} tick(s) differ from the engine` +
        (late.length > 0 ? `; ${late.length} tick(s) have a scheduledAt off the game's paces` : "");
}
