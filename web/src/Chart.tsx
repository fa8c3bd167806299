import type { Pace, Tick } from "@tickcast/client";

/** Value over steps, breaks marked, and the steps where the pace changed. */
export function Chart({ ticks, paces = [] }: { ticks: Tick[]; paces?: Pace[] }) {
  const width = 720;
  const height = 220;
  const shown = ticks.slice(-600);
  if (shown.length === 0) return <svg className="chart" viewBox={`0 0 ${width} ${height}`} data-testid="chart" />;
  const first = shown[0].step;
  const span = Math.max(1, shown[shown.length - 1].step - first);
  const top = Math.max(1, ...shown.map((t) => t.value));
  const x = (step: number) => ((step - first) / span) * (width - 20) + 10;
  const y = (value: number) => height - 10 - (value / top) * (height - 20);
  const points = shown.map((t) => `${x(t.step).toFixed(1)},${y(t.value).toFixed(1)}`).join(" ");
  const changes = paces.filter((p) => p.fromStep > 0 && p.fromStep >= first && p.fromStep <= first + span);
  return (
    <svg
      className="chart"
      viewBox={`0 0 ${width} ${height}`}
      data-testid="chart"
      data-points={shown.length}
      data-recent={shown.slice(-50).map((t) => `${t.step}:${t.value}:${t.round}`).join(" ")}
      data-pace-changes={paces.filter((p) => p.fromStep > 0).map((p) => `${p.fromStep}:${p.tickMs}`).join(" ")}
    >
      <polyline points={points} fill="none" stroke="currentColor" strokeWidth="1.5" />
      {shown.filter((t) => t.broken).map((t) => (
        <line key={t.step} x1={x(t.step)} x2={x(t.step)} y1={10} y2={height - 10} className="break" />
      ))}
      {changes.map((p) => (
        <g key={`pace-${p.fromStep}`} className="pace-change">
          <line x1={x(p.fromStep)} x2={x(p.fromStep)} y1={10} y2={height - 10} strokeDasharray="4 3" />
          <text x={x(p.fromStep) + 3} y={20}>{p.tickMs} ms</text>
        </g>
      ))}
    </svg>
  );
}
