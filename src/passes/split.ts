/**
 * Split parameters larger than one storage binding (maxStorageBufferBindingSize:
 * 128 MiB by default in browsers, 1 GiB on SwiftShader, 2 GiB on NVIDIA) into
 * row chunks. A matmul over a split weight becomes one matmul per chunk writing
 * its column range of the shared output; an embedding gather becomes one gather
 * per chunk, each writing only the ids inside its row range.
 */
import type { Graph, GraphNode, ParamSource } from '../graph/ir.ts';
import { tensorBytes } from '../graph/ir.ts';
import { dtypeBytes, type DType } from '../graph/dtype.ts';
import type { DeviceCaps } from '../target.ts';
import { Rewriter } from './rewrite.ts';
import type { MoeMatmulAttrs } from '../graph/ops.ts';

export function bindingLimit(caps: DeviceCaps): number {
  return Math.min(caps.maxStorageBindingBytes, caps.maxBufferBytes);
}

function chunks(
  rows: number,
  cols: number,
  limit: number,
  dtype: DType,
): { start: number; count: number }[] {
  // A row's bytes rounded up to whole words: a slight overestimate for quantised rows.
  const perChunk = Math.floor(limit / dtypeBytes(dtype, cols));
  if (perChunk < 1)
    throw new Error(`a single row of ${cols} ${dtype} exceeds the binding limit of ${limit} bytes`);
  const out = [];
  for (let s = 0; s < rows; s += perChunk)
    out.push({ start: s, count: Math.min(perChunk, rows - s) });
  return out;
}

export function splitOversizeParams(g: Graph, { caps }: { caps: DeviceCaps }): Graph {
  const limit = bindingLimit(caps);
  const big = g.tensors.filter((t) => t.kind === 'param' && tensorBytes(t, g.maxT) > limit);
  if (big.length === 0) return g;
  const r = new Rewriter(g);
  for (const t of big) {
    const [rows, cols] = t.shape as number[];
    const parts = chunks(rows, cols, limit, t.dtype);
    const chunkParam = (
      c: { start: number; count: number },
      of: ParamSource,
      w: number,
      name: string,
      dtype: DType,
    ) =>
      r.param(
        `${name}#rows${c.start}`,
        w === 1 ? [c.count] : [c.count, w],
        { kind: 'rows', of, start: c.start, count: c.count, cols: w },
        dtype,
      );
    for (const user of r.consumers(t.id)) {
      const a = user.attrs;
      if (a.op === 'moe_matmul' && user.inputs.w === t.id) {
        splitExperts(r, g, user, a, limit);
        continue;
      }
      if (a.op === 'matmul' && !a.gated && !a.ropeKv && user.inputs.w === t.id) {
        let prev: GraphNode = user;
        parts.forEach((c, i) => {
          const inputs: Record<string, number> = {
            ...user.inputs,
            w: chunkParam(c, t.source!, cols, t.name, t.dtype),
          };
          if (a.bias) {
            const b = g.tensors[user.inputs.bias];
            inputs.bias = chunkParam(c, b.source!, 1, b.name, b.dtype);
          }
          if (a.residual) inputs.residual = user.inputs.residual;
          const attrs = {
            ...a,
            N: c.count,
            outStride: a.outStride,
            outOffset: a.outOffset + c.start,
          };
          const label = `${user.label} [rows ${c.start}..${c.start + c.count})`;
          if (i === 0) prev = r.replace(user, attrs, inputs, user.outputs, label);
          else
            prev = r.insertAfter(prev, {
              attrs,
              inputs: { ...inputs, out: user.outputs.out },
              outputs: user.outputs,
              layer: user.layer,
              label,
            });
        });
      } else if (a.op === 'embed' && user.inputs.table === t.id) {
        let prev: GraphNode = user;
        parts.forEach((c, i) => {
          const attrs = { ...a, rowStart: c.start, rows: c.count };
          const inputs = {
            ...user.inputs,
            table: chunkParam(c, t.source!, cols, t.name, t.dtype),
            out: user.outputs.out,
          };
          const label = `embed [rows ${c.start}..${c.start + c.count})`;
          if (i === 0) prev = r.replace(user, attrs, inputs, user.outputs, label);
          else
            prev = r.insertAfter(prev, {
              attrs,
              inputs,
              outputs: user.outputs,
              layer: null,
              label,
            });
        });
      } else {
        throw new Error(
          `parameter ${t.name} (${tensorBytes(t, g.maxT)} bytes) exceeds the device limit ` +
            `maxStorageBufferBindingSize = ${limit} and its consumer '${user.label}' (${a.op}) cannot be split`,
        );
      }
    }
  }
  return r.finish();
}

/**
 * Expert weights [experts, rows, cols] over the limit: one moe_matmul per range of whole experts,
 * each computing only its experts' pairs and filling their rows of the shared output.
 */
function splitExperts(
  r: Rewriter,
  g: Graph,
  user: GraphNode,
  a: MoeMatmulAttrs,
  limit: number,
): void {
  const w = g.tensors[user.inputs.w];
  const [E, R, K] = w.shape as number[];
  // n experts take at most n times one expert's bytes (only one expert's word padding rounds up).
  const per = Math.floor(limit / dtypeBytes(w.dtype, R * K));
  if (per < 1) {
    throw new Error(
      `expert weights ${w.name}: one expert's ${R} x ${K} ${w.dtype} exceed the binding limit of ${limit} bytes`,
    );
  }
  const bias = a.bias ? g.tensors[user.inputs.bias] : null;
  let prev = user;
  for (let e0 = 0; e0 < E; e0 += per) {
    const n = Math.min(per, E - e0);
    const inputs: Record<string, number> = {
      ...user.inputs,
      w: r.param(
        `${w.name}#experts${e0}`,
        [n, R, K],
        { kind: 'rows', of: w.source!, start: e0 * R, count: n * R, cols: K },
        w.dtype,
      ),
    };
    if (bias) {
      inputs.bias = r.param(`${bias.name}#experts${e0}`, [n, R], {
        kind: 'rows',
        of: bias.source!,
        start: e0,
        count: n,
        cols: R,
      });
    }
    let attrs: MoeMatmulAttrs = { ...a, expertStart: a.expertStart + e0, expertCount: n };
    const label = `${user.label} [experts ${attrs.expertStart}..${attrs.expertStart + n})`;
    if (e0 === 0) prev = r.replace(user, attrs, inputs, user.outputs, label);
    else {
      // Decode fusions (src/passes/fuse-moe.ts): only the first part routes (the others read
      // its ids) and adds the residual, shared expert and load; the others add their pairs.
      if (a.route) {
        attrs = { ...attrs, route: null };
        for (const k of ['logits', 'routeBias', 'expertScale', 'load']) delete inputs[k];
        inputs.ids = user.outputs.ids;
      }
      if (a.combine) {
        // A folded shared expert (the last expert) keeps its gate where its part computes it.
        const sx = a.sharedSlots === true;
        const c = {
          ...a.combine,
          residual: false,
          shared: sx,
          sharedGate: sx && a.combine.sharedGate,
          load: false,
        };
        attrs = { ...attrs, combine: c };
        for (const k of ['residual', 'shared', 'load', ...(sx ? [] : ['sharedGate'])])
          delete inputs[k];
      }
      prev = r.insertAfter(prev, {
        attrs,
        inputs: { ...inputs, out: user.outputs.out },
        outputs: a.route || a.combine ? { out: user.outputs.out } : user.outputs,
        layer: user.layer,
        label,
      });
    }
  }
}
