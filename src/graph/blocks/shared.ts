/**
 * Lowering of one use of a shared block (Zamba2, see SharedBlockSpec): concat(x, e) → norm over
 * 2·dim → q/k/v (+ this use's LoRA adapters) → RoPE → this layer's own KV cache → attention →
 * o_proj → norm → gate/up (+ adapter) → GLU → down → the layer's linear. Returns that last
 * projection; the caller adds it to the mixer's input, not to the residual stream.
 */
import type { GraphBuilder } from '../builder.ts';
import type { ModelIR, SharedBlockSpec } from '../../spec/model.ts';
import { sharedBlockNames, sharedUseNames } from '../../import/names.ts';
import { attendOverCache, linear, linearRows, preNorm, residualAdd } from './common.ts';

export function lowerSharedUse(
  b: GraphBuilder,
  model: ModelIR,
  x: number,
  embeddings: number,
  i: number,
  s: SharedBlockSpec,
): number {
  const n = sharedBlockNames(s.name);
  const u = sharedUseNames(i);
  const a = s.attention;
  const L = `l${i}.shared`;
  const D = model.dim;
  const inp = 2 * D;
  const qCols = a.heads * a.headDim;
  const kvCols = a.kvHeads * a.headDim;
  const r = s.adapterRank;
  const both = b.op(
    { op: 'concat', widthA: D, widthB: D },
    `${L} concat`,
    { a: x, b: embeddings },
    { out: { name: `${L}.in`, shape: ['T', inp] } },
  ).out;
  const h = preNorm(b, model, both, n.inputNorm, `${L}.attn`, inp);
  // Base projection plus, where this use has one, its adapter (h A) B.
  const project = (
    prefix: string,
    adapter: { down: string; up: string },
    cols: number,
    tag: string,
  ) => {
    const y = linear(b, h, prefix, cols, inp, a.qkvBias, `${L}.${tag}`);
    if (!s.attentionAdapters) return y;
    const low = linear(b, h, adapter.down, r, inp, false, `${L}.${tag}_lora_down`);
    const up = linear(b, low, adapter.up, cols, r, false, `${L}.${tag}_lora_up`);
    return residualAdd(b, y, up, cols, `${L}.${tag}_adapted`);
  };
  const q = project(n.q, u.q, qCols, 'q');
  const k = project(n.k, u.k, kvCols, 'k');
  const v = project(n.v, u.v, kvCols, 'v');
  // Each use keeps its own cache: the block's weights are shared, its keys and values are not.
  const att = attendOverCache(b, a, i, L, { q, k, v }, null, `${L}.att`);
  const o = linear(b, att, n.o, D, qCols, a.outBias, `${L}.o`);
  const f = preNorm(b, model, o, n.ffnNorm, `${L}.ffn`, D);
  const I = s.ffn.hidden;
  const low = s.ffnAdapters
    ? linear(b, f, u.gateUp.down, r, D, false, `${L}.gate_up_lora_down`)
    : null;
  // gate_up_proj holds the gate rows, then the up rows; its adapter's up matrix likewise.
  const half = (start: number, tag: string) => {
    const y = linearRows(b, f, n.gateUp, 2 * I, start, I, D, s.ffn.bias, `${L}.${tag}`);
    if (low === null) return y;
    const extra = linearRows(b, low, u.gateUp.up, 2 * I, start, I, r, false, `${L}.${tag}_lora_up`);
    return residualAdd(b, y, extra, I, `${L}.${tag}_adapted`);
  };
  const gate = half(0, 'gate');
  const up = half(I, 'up');
  const g = b.op(
    { op: 'glu', act: s.ffn.act, width: I },
    `${L} ${s.ffn.act}-glu`,
    { gate, up },
    { out: { name: `${L}.glu`, shape: ['T', I] } },
  ).out;
  const down = linear(b, g, n.down, D, I, s.ffn.bias, `${L}.down`);
  return linear(b, down, u.linear, D, D, false, `${L}.linear`);
}
