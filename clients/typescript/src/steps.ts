// Each step reaches the application once, in order: a resume replays what the gateway holds
// after the last step we had, and a step seen twice (two generators during a hand-over, a
// replay that overlaps) is dropped.

export class StepFilter {
  /** The last step handed to the application, or null before the first. */
  last: number | null = null;

  /** Whether `step` is new: after every step accepted so far. */
  accept(step: number): boolean {
    if (this.last !== null && step <= this.last) return false;
    this.last = step;
    return true;
  }
}
