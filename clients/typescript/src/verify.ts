// The end-of-game check anyone can make: the revealed seed against the `seedHash` announced at
// the start, and every tick received against this library's own copy of engine v1 and against
// the game's schedule (its paces).

import { DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS, seedHash, stateAt } from "./engine.js";
import { type Pace, type Tick, scheduledAt } from "./protocol.js";

export interface Verified {
  /** The revealed seed hashes to the seedHash announced at the start. */
  seedHash: boolean;
  /** Every tick received matches the engine and was due when the schedule says. */
  ticks: boolean;
  /** The steps that do not. */
  mismatches: number[];
}

export interface GameFacts {
  /** The revealed seed, as a decimal string. */
  seed: string;
  /** The commitment announced at the start. */
  seedHash: string;
  minBreakSteps?: number;
  maxBreakSteps?: number;
  /** The game's paces, oldest first (its start's first). */
  paces: Pace[];
}

export async function verifyGame(game: GameFacts, ticks: Tick[]): Promise<Verified> {
  const seed = BigInt(game.seed);
  const params = {
    seed,
    minBreakSteps: BigInt(game.minBreakSteps ?? DEFAULT_MIN_BREAK_STEPS),
    maxBreakSteps: BigInt(game.maxBreakSteps ?? DEFAULT_MAX_BREAK_STEPS),
  };
  const mismatches = ticks
    .filter((t) => {
      const s = stateAt(params, t.step);
      const due = scheduledAt(game.paces, t.step);
      return s.value !== t.value || s.round !== t.round || s.broken !== t.broken || (due !== undefined && due !== t.scheduledAt);
    })
    .map((t) => t.step);
  return { seedHash: (await seedHash(seed)) === game.seedHash, ticks: mismatches.length === 0, mismatches };
}
