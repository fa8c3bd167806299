// The tickcast engine v1: the same arithmetic as the Rust engine (docs/engine.md), on BigInt so
// that u64 wrapping is exact. Pure: no clock, no randomness, no floats.

const MASK = (1n << 64n) - 1n;
export const GOLDEN = 0x9e3779b97f4a7c15n;
export const ENGINE_VERSION = 1;
export const DEFAULT_MIN_BREAK_STEPS = 10n;
export const DEFAULT_MAX_BREAK_STEPS = 100n;

export function splitmix64(x: bigint): bigint {
  let z = (x + GOLDEN) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

export interface Params {
  seed: bigint;
  minBreakSteps: bigint;
  maxBreakSteps: bigint;
}

/** Steps in round `round`; its last step is the break. */
export function breakInterval(seed: bigint, round: bigint, min: bigint, max: bigint): bigint {
  const span = (max - min + 1n) & MASK;
  const r = splitmix64(seed ^ ((round * GOLDEN) & MASK));
  const offset = span === 0n ? r : r % span;
  return (min + offset) & MASK;
}

export interface State {
  value: number;
  round: number;
  broken: boolean;
}

/** The state at `step` (before step 0: value 0, round 0), in O(rounds). */
export function stateAt(params: Params, step: number): State {
  if (step < 0) return { value: 0, round: 0, broken: false };
  const target = BigInt(step);
  let round = 0n;
  let roundStart = 0n;
  for (;;) {
    const interval = breakInterval(params.seed, round, params.minBreakSteps, params.maxBreakSteps);
    const off = target - roundStart;
    if (off < interval) {
      return off === interval - 1n
        ? { value: 0, round: Number(round + 1n), broken: true }
        : { value: Number(off + 1n), round: Number(round), broken: false };
    }
    roundStart += interval;
    round += 1n;
  }
}

/** The step due at `now`: floor((now − startAt) / tickMs). */
export function stepAt(startAt: number, tickMs: number, now: number): number {
  return Math.floor((now - startAt) / tickMs);
}

/** Hex SHA-256 of the seed's decimal string: what `seedHash` commits to. */
export async function seedHash(seed: bigint): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(seed.toString()));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
