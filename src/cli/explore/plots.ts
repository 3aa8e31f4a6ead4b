/**
 * The report's plots: Vega-Lite specs rendered to SVG in Node by vega (no browser, no canvas), and
 * one offline HTML page holding them. Vega-Lite rather than hand-built SVG: axes, log scales,
 * legends and layout come from a maintained library, and the specs stay short and declarative.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Results } from './results.ts';
import { isMeasurement } from './measure.ts';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded here, not at the top: every CLI command imports this module through the command
  // table, and vega's ~30 packages should cost only the commands that plot.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

interface Point {
  design: string;
  precision: string;
  memory: number;
  tokensPerSecond: number;
  front: boolean;
}

/** Points not beaten on both axes (less memory and more throughput) by another. */
function paretoFront(points: Point[]): void {
  for (const p of points) {
    p.front = !points.some(
      (q) =>
        q !== p &&
        q.memory <= p.memory &&
        q.tokensPerSecond >= p.tokensPerSecond &&
        (q.memory < p.memory || q.tokensPerSecond > p.tokensPerSecond),
    );
  }
}

const WIDTH = 480;
const HEIGHT = 300;

export function plotSpecs(r: Results): Record<string, TopLevelSpec> {
  const c = r.paretoContext;
  const points: Point[] = r.designs.flatMap((d) =>
    d.figures.map((f) => ({
      design: d.name,
      precision: f.precision,
      // KV + state of one sequence at context c (ring caches stop growing at their rows).
      memory: (f.memoryAt[c]! - f.parameterBytes) / r.batch / 2 ** 20,
      tokensPerSecond: f.decodeAt[c]!.tokensPerSecond,
      front: false,
    })),
  );
  paretoFront(points);
  const front = points.filter((p) => p.front).sort((a, b) => a.memory - b.memory);
  const memory = r.designs.flatMap((d) =>
    d.figures.flatMap((f) =>
      r.contexts.map((ctx) => ({
        series: `${d.name} ${f.precision}`,
        context: ctx,
        gib: f.memoryAt[ctx]! / 2 ** 30,
      })),
    ),
  );
  const swept = Object.keys(r.designs[0]?.values ?? {})[0] ?? 'design';
  const cost = r.designs.flatMap((d) =>
    d.figures.flatMap((f) => [
      {
        x: d.values[swept] ?? d.name,
        precision: f.precision,
        metric: 'prefill GFLOP per token',
        value: f.prefill.flops / f.prefill.tokens / 1e9,
      },
      {
        x: d.values[swept] ?? d.name,
        precision: f.precision,
        metric: `decode GFLOP per token at ${c}`,
        value: f.decodeAt[c]!.flops / 1e9,
      },
      {
        x: d.values[swept] ?? d.name,
        precision: f.precision,
        metric: `decode GB per token at ${c}`,
        value: f.decodeAt[c]!.bytes / 1e9,
      },
    ]),
  );
  const strip = r.designs.flatMap((d) =>
    d.pattern.map((p, i) => ({ design: d.name, layer: i, mixer: `${p.name} (${p.kind})` })),
  );
  const profile = decodeProfileBars(r);
  return {
    ...(profile.length ? { 'decode-profile': profileSpec(profile, c) } : {}),
    pareto: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Decode throughput (${r.roofline.name} roofline, batch 1) vs KV + state memory per sequence at context ${c}`,
      width: WIDTH,
      height: HEIGHT,
      layer: [
        {
          data: { values: front },
          mark: { type: 'line', color: '#888', strokeDash: [4, 3] },
          encoding: {
            x: { field: 'memory', type: 'quantitative' },
            y: { field: 'tokensPerSecond', type: 'quantitative' },
          },
        },
        {
          data: { values: points },
          mark: { type: 'point', filled: true, size: 80 },
          encoding: {
            x: { field: 'memory', type: 'quantitative', title: 'KV + state per sequence (MiB)' },
            y: {
              field: 'tokensPerSecond',
              type: 'quantitative',
              title: 'decode tokens/s (estimate)',
            },
            color: { field: 'design', type: 'nominal' },
            shape: { field: 'precision', type: 'nominal' },
          },
        },
      ],
    },
    memory: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Memory (weights + batch ${r.batch} x (KV + state)) vs context`,
      width: WIDTH,
      height: HEIGHT,
      data: { values: memory },
      mark: { type: 'line', point: true },
      encoding: {
        x: {
          field: 'context',
          type: 'quantitative',
          scale: { type: 'log' },
          title: 'context (tokens)',
        },
        y: { field: 'gib', type: 'quantitative', scale: { type: 'log' }, title: 'memory (GiB)' },
        color: { field: 'series', type: 'nominal', title: 'design' },
      },
    },
    cost: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Prefill and decode cost vs ${swept}`,
      width: WIDTH,
      height: HEIGHT,
      data: { values: cost },
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'x', type: 'ordinal', title: swept, sort: null },
        y: { field: 'value', type: 'quantitative', scale: { type: 'log' }, title: 'per token' },
        color: { field: 'metric', type: 'nominal' },
        strokeDash: { field: 'precision', type: 'nominal' },
      },
    },
    pattern: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Layer pattern: mixer per layer',
      width: WIDTH,
      data: { values: strip },
      mark: 'rect',
      encoding: {
        x: { field: 'layer', type: 'ordinal', title: 'layer', axis: { labelOverlap: true } },
        y: { field: 'design', type: 'nominal', sort: null },
        color: { field: 'mixer', type: 'nominal' },
      },
    },
  };
}

/** Roles shown by name in the decode profile; the rest of each design's time is "other". */
const PROFILE_ROLES = 6;

/**
 * One bar segment per (design, precision, role) of the measured decode profiles: GPU ms a token
 * by the roles that take the most time over all designs, each dispatch timed in a pass of its
 * own (runtime/dispatch-profile.ts).
 */
function decodeProfileBars(r: Results) {
  const measured = r.designs.flatMap((d) =>
    (d.measured ?? []).flatMap((m) =>
      isMeasurement(m) && m.decodeProfile
        ? [{ series: `${d.name} ${m.precision}`, p: m.decodeProfile }]
        : [],
    ),
  );
  const total = new Map<string, number>();
  for (const { p } of measured)
    for (const x of p.roles) total.set(x.role, (total.get(x.role) ?? 0) + x.ms);
  const top = new Set(
    [...total.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, PROFILE_ROLES)
      .map(([role]) => role),
  );
  return measured.flatMap(({ series, p }) => {
    const other = p.roles.filter((x) => !top.has(x.role)).reduce((a, x) => a + x.ms, 0);
    return [
      ...p.roles.filter((x) => top.has(x.role)).map((x) => ({ series, role: x.role, ms: x.ms })),
      ...(other > 0 ? [{ series, role: 'other', ms: other }] : []),
    ];
  });
}

function profileSpec(values: ReturnType<typeof decodeProfileBars>, c: number): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Measured: where a decode token's GPU time goes at context ${c} (each dispatch timed alone)`,
    width: WIDTH,
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'series', type: 'nominal', sort: null, title: 'design' },
      x: { field: 'ms', type: 'quantitative', title: 'GPU ms per token', stack: 'zero' },
      color: { field: 'role', type: 'nominal', title: 'role in the layer' },
    },
  };
}

function escape(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** One self-contained page: the SVGs inline, no scripts, nothing fetched. */
export function reportHtml(r: Results, svgs: Record<string, string>, tableText: string): string {
  const rf = r.roofline;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>strata explore: ${escape(r.base)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}figure{margin:1.5em 0}pre{font-size:12px;overflow-x:auto}</style>
</head><body>
<h1>strata explore: ${escape(r.base)}</h1>
<p>${r.designs.length} designs. Figures from strata's cost model (no device): each equals <code>${escape(r.inspect)}</code> on the design's spec.
Time estimates: roofline for <b>${escape(rf.name)}</b>: ${(rf.bandwidth / 1e9).toFixed(0)} GB/s, ${(rf.flops / 1e12).toFixed(1)} TFLOP/s, ${(rf.dispatch * 1e6).toFixed(1)} µs per dispatch (${escape(rf.source)}).</p>
${Object.entries(svgs)
  .map(([name, svg]) => `<figure id="${name}">${svg}</figure>`)
  .join('\n')}
<h2>Table</h2>
<pre>${escape(tableText)}</pre>
<p>Every figure: results.csv and results.json beside this file; each design's spec in designs/.</p>
</body></html>
`;
}
