/**
 * Both phases of a compiled model bind one copy of each weight, so a checkpoint row two phases
 * read must live in one parameter: when their fusions concatenated it into different tensors
 * (Mamba-2's in_proj: four row ranges in prefill, five in decode), the bundle and the GPU held
 * it twice (3.2 of Mamba2-2.7B's 8.3 GiB at f16). Checked on the released specs at f16, by the
 * rows of each checkpoint tensor every parameter's source covers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../codegen/compile.ts';
import type { ParamSource } from '../../src/graph/ir.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { NOMINAL_CAPS } from '../../src/target.ts';

/** Rows [start, end) of checkpoint tensor `name`, `cols` elements each, that a source reads. */
interface Rows {
  name: string;
  start: number;
  end: number;
  cols: number;
}

function rowsOf(s: ParamSource, shape: readonly number[], out: Rows[] = []): Rows[] {
  const cols = (sh: readonly number[]) => sh.slice(1).reduce((a, b) => a * b, 1);
  if (s.kind === 'weight')
    out.push({ name: s.name, start: 0, end: shape[0] ?? 1, cols: cols(shape) });
  else if (s.kind === 'rows' && s.of.kind === 'weight')
    out.push({ name: s.of.name, start: s.start, end: s.start + s.count, cols: s.cols });
  else if (s.kind === 'concat') for (const p of s.parts) rowsOf(p, [], out);
  else if ('of' in s) rowsOf(s.of, shape, out);
  return out;
}

/** Elements of checkpoint tensors that more than one parameter holds, by tensor. */
function storedTwice(spec: string): Map<string, number> {
  const model = parseSpec(readFileSync(spec, 'utf8'), spec);
  const c = compileModel(model, { caps: NOMINAL_CAPS, precision: 'f16' });
  const byName = new Map<string, Rows[]>();
  for (const p of c.params)
    for (const r of rowsOf(p.source, p.shape))
      byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  const twice = new Map<string, number>();
  for (const [name, rows] of byName) {
    const held = rows.reduce((n, r) => n + (r.end - r.start) * r.cols, 0);
    let union = 0;
    let end = -1;
    for (const r of [...rows].sort((a, b) => a.start - b.start)) {
      if (r.end > end) {
        union += (r.end - Math.max(r.start, end)) * r.cols;
        end = r.end;
      }
    }
    if (held > union) twice.set(name, held - union);
  }
  return twice;
}

describe('every checkpoint row is stored once', () => {
  for (const spec of [
    'specs/mamba2-2.7b.strata',
    'specs/bamba-9b.strata',
    'specs/nemotron-h-8b.strata',
    'specs/falcon-h1-7b.strata',
    'specs/granite-tiny-hybrid.strata',
    'specs/jamba-v0.1.strata',
    'specs/mamba-2.8b.strata',
    'specs/llama-3.2-1b.strata',
    'specs/rwkv7-1.5b-world.strata',
    'specs/gla-1.3b-hybrid.strata',
  ]) {
    it(spec, () => {
      // Only the convolutions' few thousand weights: prefill reads them per conv (x, B, C),
      // decode packed with their biases behind in_proj's weight.
      const big = [...storedTwice(spec)].filter(([, n]) => n > 65536);
      expect(big).toEqual([]);
    });
  }
});
