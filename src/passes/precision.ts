/**
 * Weight precision: which stored type each parameter gets under `--precision`. Only weights
 * that every reader dequantises through the one weight reader change: matmul weights, MoE expert
 * weights (the grouped expert matmul's w) and embedding tables. Everything else stays f32, for
 * these reasons:
 * - norm weights, biases, conv kernels, SSM and recurrence parameters (A, D, dt bias, decays):
 *   a few thousand numbers per layer, where rounding costs accuracy and saves nothing;
 * - MoE router weights: top-k picks experts from small logit differences, and a flipped pick
 *   changes a token's whole FFN; the router is E × dim, negligible next to the experts;
 * - activations, KV caches (see `--kv`), SSM and recurrence states: f32, so long sums and
 *   recurrences accumulate without f16 rounding; every kernel accumulates in f32. f16
 *   activations between kernels would save little: Llama-3.2-1B's 512-token prefill step moves
 *   1.2 GiB of activations (inspect --max-t 512) beside 2.3 GiB of f16 weights and 1 TFLOP, about
 *   0.15 ms of traffic at the H200's streaming bandwidth in a 65 ms step; decode writes 1.6 MiB.
 * Under q4 the output head (and so a tied embedding table) is stored q8, as llama.cpp keeps its
 * output at 6 bits: its error moves every logit at once.
 * A weight whose rows are not whole 32-blocks cannot be quantised and is stored f16; inspect
 * counts bytes by type, so such a tensor shows. A weight that one phase reads in f32 (a decode
 * fusion that computes it inside another kernel, such as GLA's low-rank gate inside the
 * recurrence) stays f32 in the other phase too (`keepF32`, codegen/compile.ts): both phases bind
 * one copy of it.
 *
 * Under f16, a prefill matmul on a device with f16 tensor cores also rounds its x rows to f16
 * (xType 'f16'), the products tensor cores take (codegen/kernels/matmul/subgroup-matrix.ts);
 * products of two halves are exact in f32 and sums stay f32. Decode keeps x in f32: its GEMV is
 * bound by the weight bytes, and rounding x would cost accuracy for nothing.
 */
import type { Graph, GraphNode, Tensor } from '../graph/ir.ts';
import { weightTypeUnsupported, type WeightType } from '../graph/dtype.ts';
import { consumers } from '../graph/ir.ts';
import type { MatmulAttrs } from '../graph/ops.ts';
import { f16TensorCoresUnsupported, type DeviceCaps } from '../target.ts';

export type Precision = WeightType;

export const PRECISIONS: readonly Precision[] = ['f32', 'f16', 'q8', 'q4'];

/** The input of `n` a stored weight may be: a matmul's or expert matmul's w, an embedding's table. */
function weightInput(n: GraphNode): 'w' | 'table' | null {
  if (n.attrs.op === 'matmul' || n.attrs.op === 'moe_matmul' || n.attrs.op === 'head_matmul')
    return 'w';
  if (n.attrs.op === 'embed') return 'table';
  return null;
}

/** The type one parameter gets, or null when it stays as it is. */
function chooseType(
  g: Graph,
  t: Tensor,
  readers: GraphNode[],
  users: Map<number, GraphNode[]>,
  precision: Precision,
): WeightType | null {
  if (t.kind !== 'param' || t.dtype !== 'f32' || readers.length === 0) return null;
  let head = false;
  // head_matmul (MLA's absorbed projections) stores f16 at most: its kernel reads no blocks.
  let halves = false;
  for (const n of readers) {
    if (n.attrs.op === 'head_matmul') halves = true;
    const input = weightInput(n);
    if (!input || n.inputs[input] !== t.id) return null;
    if (n.attrs.op === 'matmul') {
      if (n.attrs.rows === 'L') head = true;
      // Decode's fused gate_up routes from the logits itself (src/passes/fuse-moe.ts).
      const routes = (users.get(n.outputs.out) ?? []).some(
        (u) =>
          u.attrs.op === 'moe_route' ||
          (u.attrs.op === 'moe_matmul' && !!u.attrs.route && u.inputs.logits === n.outputs.out),
      );
      if (routes) return null;
    }
  }
  if (halves) return 'f16';
  const want: WeightType = precision === 'q4' && head ? 'q8' : precision;
  const cols = t.shape[t.shape.length - 1];
  if (typeof cols !== 'number') throw new Error(`parameter ${t.name} has a symbolic shape`);
  return weightTypeUnsupported(want, cols) ? 'f16' : want;
}

/** Prefill matmuls whose x may be f16: tensor cores take 8 halves per load, so K % 8 === 0. */
function f16Activations(g: Graph, a: MatmulAttrs, caps: DeviceCaps): boolean {
  return g.maxT > 1 && a.wType === 'f16' && a.K % 8 === 0 && !f16TensorCoresUnsupported(caps);
}

export function assignPrecision(
  g: Graph,
  precision: Precision,
  caps: DeviceCaps,
  keepF32: ReadonlySet<string> = new Set(),
): Graph {
  if (precision === 'f32') return g;
  const users = consumers(g);
  const chosen = new Map<number, WeightType>();
  for (const t of g.tensors) {
    if (keepF32.has(t.name)) continue;
    const type = chooseType(g, t, users.get(t.id) ?? [], users, precision);
    if (type && type !== 'f32') chosen.set(t.id, type);
  }
  if (chosen.size === 0) return g;
  const tensors = g.tensors.map((t) => {
    const type = chosen.get(t.id);
    return type ? { ...t, dtype: type } : t;
  });
  const nodes = g.nodes.map((n): GraphNode => {
    const a = n.attrs;
    if (a.op === 'matmul') {
      const type = chosen.get(n.inputs.w);
      if (!type) return n;
      const attrs = { ...a, wType: type };
      return { ...n, attrs: f16Activations(g, attrs, caps) ? { ...attrs, xType: 'f16' } : attrs };
    }
    if (a.op === 'moe_matmul') {
      const type = chosen.get(n.inputs.w);
      return type ? { ...n, attrs: { ...a, wType: type } } : n;
    }
    if (a.op === 'head_matmul') {
      return chosen.get(n.inputs.w) === 'f16' ? { ...n, attrs: { ...a, wType: 'f16' } } : n;
    }
    if (a.op === 'embed') {
      const type = chosen.get(n.inputs.table);
      return type ? { ...n, attrs: { ...a, tableType: type } } : n;
    }
    return n;
  });
  return { ...g, tensors, nodes };
}
