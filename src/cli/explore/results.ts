/** What a sweep produces, and its JSON, CSV and terminal-table forms. */
import type { Figures } from './metrics.ts';
import type { Roofline } from './roofline.ts';
import { isMeasurement, type MeasureRefusal, type Measurement } from './measure.ts';

export interface DesignResult {
  name: string;
  /** The let values this design sets (as written in its spec). */
  values: Record<string, string>;
  /** designs/<name>.strata, relative to the output folder. */
  spec: string;
  layers: number;
  /** Each layer's mixer definition name and kind ('none' for an ffn-only layer). */
  pattern: { name: string; kind: string }[];
  figures: Figures[];
  /**
   * With --measure: one per figure (same precision order), timed on `device`, or why that
   * adapter could not run it.
   */
  measured?: (Measurement | MeasureRefusal)[];
}

export interface Results {
  base: string;
  batch: number;
  contexts: number[];
  paretoContext: number;
  budgets: Record<string, number>;
  roofline: Roofline;
  /** The inspect command each design's figures equal. */
  inspect: string;
  designs: DesignResult[];
}

type Row = Record<string, string | number | null>;

/** A mean decode step this many times the median one is flagged in the table's notes. */
const STALLED = 1.5;

/** One row per design and precision, every figure a column. */
export function rows(r: Results): Row[] {
  const out: Row[] = [];
  for (const d of r.designs) {
    for (const [fi, f] of d.figures.entries()) {
      const row: Row = {
        design: d.name,
        ...d.values,
        layers: d.layers,
        precision: f.precision,
        kv: f.kv,
      };
      row.parameters = f.parameters;
      row.active_parameters = f.activeParameters;
      row.parameter_bytes = f.parameterBytes;
      row.kv_bytes_per_token = f.kvBytesPerToken;
      row.recurrent_state_bytes = f.recurrentStateBytes;
      row.prefill_tokens = f.prefill.tokens;
      row.prefill_flops = f.prefill.flops;
      row.prefill_bytes = f.prefill.bytes;
      row.prefill_dispatches = f.prefill.dispatches;
      row.prefill_tokens_per_s_est = f.prefill.tokensPerSecond;
      row.decode_pos = f.decode.pos;
      row.decode_flops = f.decode.flops;
      row.decode_bytes = f.decode.bytes;
      row.decode_dispatches = f.decode.dispatches;
      for (const c of r.contexts) {
        row[`memory_bytes_at_${c}`] = f.memoryAt[c]!;
        row[`decode_flops_at_${c}`] = f.decodeAt[c]!.flops;
        row[`decode_bytes_at_${c}`] = f.decodeAt[c]!.bytes;
        row[`decode_tokens_per_s_est_at_${c}`] = f.decodeAt[c]!.tokensPerSecond;
      }
      for (const [b, v] of Object.entries(f.maxContext)) row[`max_context_${b}`] = v;
      for (const [b, byCtx] of Object.entries(f.maxBatch ?? {}))
        for (const c of r.contexts) row[`max_batch_${b}_at_${c}`] = byCtx[c] ?? null;
      const m = d.measured?.[fi];
      if (m && !isMeasurement(m)) {
        row.measured_device = m.device;
        row.measure_refused = m.refused;
      } else if (m) {
        row.measured_device = m.device;
        row.prefill_tokens_per_s_measured = m.prefillTokensPerSecond;
        row.decode_context_measured = m.context;
        row.decode_fill_measured = m.fill;
        row.decode_tokens_per_s_measured = m.decodeTokensPerSecond;
        row.decode_step_ms_median_measured = m.decodeStepMs.median;
        row.decode_step_ms_max_measured = m.decodeStepMs.max;
        row.decode_dispatches_measured = m.decodeDispatches;
        row.storage_buffers_measured = m.storageBuffers;
      }
      out.push(row);
    }
  }
  return out;
}

function csvField(v: string | number | null): string {
  if (v === null) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(r: Results): string {
  const all = rows(r);
  const columns = [...new Set(all.flatMap((row) => Object.keys(row)))];
  const lines = [columns.join(',')];
  for (const row of all) lines.push(columns.map((c) => csvField(row[c] ?? null)).join(','));
  return lines.join('\n') + '\n';
}

function si(n: number, unit: string): string {
  const p = [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const;
  for (const [v, s] of p) if (Math.abs(n) >= v) return `${(n / v).toFixed(2)}${s}${unit}`;
  return `${n.toFixed(0)}${unit}`;
}

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(2)}GiB`;
}

/** A compact table: one line per design and precision. */
export function table(r: Results): string {
  const c = r.paretoContext;
  const head = [
    'design',
    'prec',
    'params',
    'active',
    'weights',
    'KV/tok',
    'state',
    `mem@${c}`,
    `maxB@${c} ${Object.keys(r.budgets).join('/')}`,
    'prefill/tok',
    'decode/tok',
    'disp',
    `tok/s@${c}`,
  ];
  const measured = r.designs.some((d) => d.measured);
  if (measured) head.push('meas pre', 'est/meas', `meas dec@${c}`, 'est/meas');
  const body = r.designs.flatMap((d) =>
    d.figures.map((f, fi) => {
      const cells = [
        d.name,
        f.precision,
        si(f.parameters, ''),
        si(f.activeParameters, ''),
        gib(f.parameterBytes),
        si(f.kvBytesPerToken, 'B'),
        si(f.recurrentStateBytes, 'B'),
        gib(f.memoryAt[c]!),
        Object.keys(r.budgets)
          .map((b) => String(f.maxBatch?.[b]?.[c] ?? '-'))
          .join('/'),
        si(f.prefill.flops / f.prefill.tokens, 'F'),
        si(f.decode.flops, 'F'),
        String(f.decode.dispatches),
        f.decodeAt[c]!.tokensPerSecond.toFixed(1),
      ];
      const m = d.measured?.[fi];
      if (measured)
        cells.push(
          ...(m && isMeasurement(m)
            ? [
                m.prefillTokensPerSecond.toFixed(0),
                (f.prefill.tokensPerSecond / m.prefillTokensPerSecond).toFixed(2),
                m.decodeTokensPerSecond.toFixed(1),
                (f.decodeAt[c]!.tokensPerSecond / m.decodeTokensPerSecond).toFixed(2),
              ]
            : m
              ? ['-', '-', 'refused', '-']
              : ['-', '-', '-', '-']),
        );
      return cells;
    }),
  );
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  const all = r.designs.flatMap((d) => (d.measured ?? []).map((m) => ({ d, m })));
  const note = [];
  if (all.some(({ m }) => isMeasurement(m) && m.fill === 'zeros'))
    note.push(
      `meas dec@${c}: timed over zeroed caches at that position (--fill zeros), not after a prefill`,
    );
  for (const { d, m } of all) {
    if (!isMeasurement(m)) note.push(`${d.name} ${m.precision} not measured: ${m.refused}`);
    // A mean step STALLED times the median says some steps stalled: the rate is the mean's.
    else if (1000 / m.decodeTokensPerSecond > STALLED * m.decodeStepMs.median)
      note.push(
        `${d.name} ${m.precision}: decode steps ${m.decodeStepMs.median.toFixed(2)} ms median, ${m.decodeStepMs.max.toFixed(2)} ms slowest; the mean (meas dec) counts the slow ones`,
      );
  }
  return [line(head), ...body.map(line), ...note].join('\n');
}
