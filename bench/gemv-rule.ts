/**
 * Reads a matmul sweep (bench/matmul-sweep.ts --out FILE) and prints, per weight type, the GEMV
 * candidates (TPC, C, G) ranked by their time relative to each decode shape's fastest, as a
 * geometric mean over the shapes: the numbers a GEMV_RULE line (codegen/kernels/matmul/gemv.ts)
 * is chosen from, next to the current rule's kernels ('<- rule' rows of the sweep).
 * Usage:  tsx bench/gemv-rule.ts FILE [--top 8]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: 'string', default: '8' } },
});
if (positionals.length !== 1) throw new Error('usage: tsx bench/gemv-rule.ts SWEEP.json [--top N]');

interface Row {
  shape: string;
  kind: string;
  ms?: number;
  gbps?: number;
  err?: number;
  chosen: boolean;
}
const rows = (JSON.parse(readFileSync(positionals[0], 'utf8')) as { rows: Row[] }).rows;
// kind: `gemv <wType> tpc<TPC> c<C> u<G>` (sweeps from before G existed have no u: G = 1).
const KIND = /^gemv (\w+) (tpc\d+ c\d+)(?: (u\d+))?$/;
const byType = new Map<string, Row[]>();
for (const r of rows) {
  const m = KIND.exec(r.kind);
  if (!m || r.ms === undefined) continue;
  byType.set(m[1], [...(byType.get(m[1]) ?? []), r]);
}
const combo = (r: Row) => {
  const m = KIND.exec(r.kind)!;
  return `${m[2]} ${m[3] ?? 'u1'}`;
};
for (const [wType, rs] of byType) {
  const shapes = [...new Set(rs.map((r) => r.shape))];
  const best = new Map(
    shapes.map((s) => [s, Math.min(...rs.filter((r) => r.shape === s).map((r) => r.ms!))]),
  );
  const ratios = new Map<string, number[]>();
  for (const r of rs)
    ratios.set(combo(r), [...(ratios.get(combo(r)) ?? []), r.ms! / best.get(r.shape)!]);
  const ranked = [...ratios]
    .filter(([, v]) => v.length === shapes.length)
    .map(([c, v]) => [c, Math.exp(v.reduce((a, x) => a + Math.log(x), 0) / v.length)] as const)
    .sort((a, b) => a[1] - b[1]);
  console.log(
    `\n${wType}: ${shapes.length} shapes; slowdown vs each shape's best (geometric mean)`,
  );
  for (const [c, g] of ranked.slice(0, Number(values.top)))
    console.log(`  ${c.padEnd(18)} ${g.toFixed(3)}×`);
  for (const s of shapes) {
    const here = rs.filter((r) => r.shape === s);
    const top = here.reduce((a, b) => (b.ms! < a.ms! ? b : a));
    const rule = here.find((r) => r.chosen);
    console.log(
      `  ${s.padEnd(24)} best ${combo(top).padEnd(18)} ${top.gbps!.toFixed(0).padStart(5)} GB/s` +
        (rule ? `; rule ${combo(rule)} ${rule.gbps!.toFixed(0)} GB/s` : ''),
    );
  }
}
