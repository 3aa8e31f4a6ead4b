/**
 * moe-decode (decode only): a MoE FFN sublayer's six dispatches (norm, router matmul, moe_route,
 * gate_up, down, moe_combine) → three:
 *   router matmul (the norm fused by norm-prologue, the shared-expert gate by shared-input),
 *   gate_up, which normalises x itself and routes each token from the logits (MoeInlineRoute),
 *   down, which sums each token's k expert rows with their weights, adds the shared expert's
 *   output and the residual (MoeInlineCombine).
 * WebGPU has no float atomics and no barrier across workgroups, so the routing is repeated by
 * every gate_up workgroup (a few argmax trees over the logits, far cheaper than a dispatch) and
 * the combine is a loop over the token's k experts inside each down workgroup.
 * Prefill keeps the unfused form: its grouped tiled kernels share each expert's weight tiles
 * between that expert's tokens, which needs the moe_group schedule, so the ids must exist before
 * gate_up's launch; a decode step reads each expert once anyway.
 *
 * Batched decode (B sequences a step, rows of the step) fuses as one sequence does: a gate_up
 * workgroup serves one (row, slot) pair and a down workgroup one row, so what a workgroup does
 * (one row's routing, norm and k + m dot products per column) does not grow with B; the grid
 * does (B·(k + m) pairs). What grows is the weight traffic: each pair's GEMV reads its expert
 * whole, so a step reads B·k experts where the grouped kernels read each picked expert once,
 * E·(1 − (1 − k/E)^B) of them under uniform routing, and the folded shared expert B times
 * where the shared MLP's matmul reads it once. The fused step saves four dispatches (norm,
 * moe_route, moe_group, moe_combine; the shared MLP's two or three too) and pays those rereads
 * (moeInlineRereadBytes). It fuses when B ≤ MOE_INLINE_MAX_ROWS (as before) or the rereads stay
 * within MOE_INLINE_REREAD_BYTES: small experts at large B (jamba-tiny-moe's 48 KiB ones up to
 * B = 89), large ones not past 4 (Jamba-v0.1's 704 MB f32 experts at B = 16: ~18 rereads, 12 GB).
 * Where it does not, nothing bounded per workgroup does better in one pass: an expert-major
 * gate_up (workgroup (x, e) over the rows that picked e, each weight row read once) needs those
 * rows first (a moe_route + moe_group dispatch, or B routings in every workgroup), and an
 * expert-major down cannot sum a row's k experts without float atomics or a barrier across
 * workgroups (a moe_combine dispatch): route, group, gate_up, down, combine, the unfused path.
 * The shared experts (a dense MLP on the normed x) stay ordinary matmuls: qwen3-next and
 * DeepSeek-V3 keep two more dispatches for them.
 */
import type { Graph, GraphNode } from '../graph/ir.ts';
import type { MoeMatmulAttrs, NormAttrs } from '../graph/ops.ts';
import type { NormSpec } from '../spec/model.ts';
import { definitionFor } from '../ops/index.ts';
import { routedWorkgroupBytes } from '../ops/moe.ts';
import { bindingCount } from '../ops/types.ts';
import { dtypeBytes } from '../graph/dtype.ts';
import { Rewriter } from './rewrite.ts';
import { isMatmul, isPlain, type FusionOptions, type Matmul } from './fuse.ts';

/**
 * Rows (sequences) a batched decode step fuses whatever its experts weigh (the bound before
 * moeInlineRereadBytes). An estimate to measure on the device: by that estimate Jamba-v0.1 at
 * B = 4 rereads ~1.4 experts (~490 MB at f16), more than four dispatches cost.
 */
export const MOE_INLINE_MAX_ROWS = 4;

/**
 * Expert bytes (as the fusion sees them: f32, before the precision pass; f16 halves them) a
 * fused batched step may reread over the grouped kernels. Four dispatches saved at ~20 µs on a
 * ~100 GB/s laptop queue are ~8 MB (src/cli/explore/roofline.ts's profiles; on an H200's
 * 4.8 TB/s at ~5 µs they are ~96 MB), so past this the fusion may cost more than it saves on
 * either. An estimate to measure on the device.
 */
export const MOE_INLINE_REREAD_BYTES = 8 * 2 ** 20;

/**
 * Expected bytes the fused per-pair GEMVs of one step of B rows read beyond the unfused path:
 * B·k routed pairs against the E·(1 − (1 − k/E)^B) experts uniform routing picks at least
 * once, plus the m folded shared experts B − 1 more times.
 */
export function moeInlineRereadBytes(
  gateUp: MoeMatmulAttrs,
  down: MoeMatmulAttrs,
  B: number,
  shared: number,
): number {
  const { experts: E, topK: k } = gateUp;
  const expert =
    dtypeBytes(gateUp.wType, (gateUp.gated ? 2 : 1) * gateUp.N * gateUp.K) +
    dtypeBytes(down.wType, down.N * down.K);
  const picked = E * (1 - (1 - k / E) ** B);
  return expert * Math.max(0, B * k - picked + (B - 1) * shared);
}

/** Whether a decode step of B rows fuses a MoE layer (see the header). */
export function moeInlineFuses(
  gateUp: MoeMatmulAttrs,
  down: MoeMatmulAttrs,
  B: number,
  shared: number,
): boolean {
  return (
    B <= MOE_INLINE_MAX_ROWS ||
    moeInlineRereadBytes(gateUp, down, B, shared) <= MOE_INLINE_REREAD_BYTES
  );
}

type MoeMatmul = GraphNode & { attrs: MoeMatmulAttrs };

function moeMatmul(n: GraphNode | undefined): n is MoeMatmul {
  return n?.attrs.op === 'moe_matmul';
}

/** A whole-row norm a kernel can apply as it loads x (what a matmul's norm prologue takes). */
function foldableNorm(n: GraphNode | undefined, K: number): n is GraphNode & { attrs: NormAttrs } {
  if (n?.attrs.op !== 'norm') return false;
  const a = n.attrs;
  return (
    a.norm.kind !== 'l2' && !a.residual && a.group === a.width && a.width === K && !a.perChannel
  );
}

/**
 * The shared expert's MLP (lowered as ordinary ops on the normed x: gate+up fused by gated-mlp,
 * or up then act, then down) when it has the routed experts' gating, activation and biases and
 * m times their hidden size, which the lowering stored as m more experts of both projections
 * (MoeMatmulAttrs.sharedExperts, src/graph/blocks/moe.ts sharedExpertParts): decode computes
 * them as m more pairs per token (sharedSlots) and drops the MLP's own dispatches.
 */
function sharedExpert(
  r: Rewriter,
  gu: MoeMatmul,
  down: MoeMatmul,
  comb: GraphNode,
): { up: Matmul; act: GraphNode | null; down: Matmul; m: number } | null {
  if (comb.inputs.shared === undefined) return null;
  const a = gu.attrs;
  if (a.clamp || a.wType !== 'f32') return null;
  const sd = r.producer(comb.inputs.shared);
  if (!isPlain(sd) || r.soleConsumer(sd.outputs.out) !== comb) return null;
  // The lowering stored its m parts after the routed experts (sharedExpertParts).
  const m = a.sharedExperts ?? 0;
  if (m < 1 || down.attrs.sharedExperts !== m || sd.attrs.K !== m * a.N) return null;
  if (sd.attrs.N !== down.attrs.N || sd.attrs.bias !== down.attrs.bias) return null;
  let act: GraphNode | null = null;
  let up = r.producer(sd.inputs.x);
  if (!a.gated && up?.attrs.op === 'act') {
    if (up.attrs.act !== a.act || r.soleConsumer(up.outputs.out) !== sd) return null;
    act = up;
    up = r.producer(up.inputs.x);
  }
  if (!isMatmul(up) || up.inputs.x !== gu.inputs.x) return null;
  if (r.soleConsumer(up.outputs.out) !== (act ?? sd)) return null;
  // The gated matmul gated-mlp made, or the plain up projection before its act.
  const bare: Matmul = { ...up, attrs: { ...up.attrs, gated: false, act: null } };
  if (!isPlain(bare) || up.attrs.gated !== a.gated || (a.gated && up.attrs.act !== a.act))
    return null;
  if (up.attrs.N !== m * a.N || up.attrs.K !== a.K || up.attrs.bias !== a.bias) return null;
  return { up, act, down: sd, m };
}

export function fuseMoeDecode(g: Graph, { caps }: FusionOptions): Graph {
  if (g.phase !== 'decode') return g;
  const r = new Rewriter(g);
  const fitsDevice = (a: MoeMatmulAttrs) =>
    bindingCount(definitionFor(a), a) <= caps.maxStorageBuffersPerStage &&
    routedWorkgroupBytes(a, Math.min(256, caps.maxInvocationsPerWorkgroup)) <=
      caps.maxWorkgroupStorageBytes;
  for (const route of r.live()) {
    const ra = route.attrs;
    if (ra.op !== 'moe_route') continue;
    const users = r.consumers(route.outputs.ids);
    const gu = users.find((n) => moeMatmul(n) && n.attrs.input === 'token');
    const down = users.find((n) => moeMatmul(n) && n.attrs.input === 'pair');
    const group = users.find((n) => n.attrs.op === 'moe_group');
    if (!moeMatmul(gu) || !moeMatmul(down) || down.inputs.x !== gu.outputs.out) continue;
    if (users.length !== (group ? 3 : 2)) continue;
    const comb = r.soleConsumer(down.outputs.out);
    if (comb?.attrs.op !== 'moe_combine' || comb.inputs.y !== down.outputs.out) continue;
    if (r.soleConsumer(route.outputs.weights) !== comb) continue;
    if (r.soleConsumer(gu.outputs.out) !== down) continue;
    const whole = (m: MoeMatmul) =>
      m.attrs.expertStart === 0 &&
      m.attrs.expertCount === m.attrs.experts + (m.attrs.sharedExperts ?? 0) &&
      !m.attrs.route;
    if (!whole(gu) || !whole(down) || down.attrs.act || down.attrs.gated) continue;
    // The schedule moe_group made serves only the two projections.
    if (
      group &&
      Object.values(group.outputs).some((t) => r.consumers(t).some((n) => n !== gu && n !== down))
    )
      continue;
    const producer = r.producer(gu.inputs.x);
    const norm = foldableNorm(producer, gu.attrs.K) ? producer : null;
    const spec = norm ? (norm.attrs.norm as NormSpec) : null;
    const ca = comb.attrs;
    const { op: _op, experts: _e, topK: _k, ...routing } = ra;
    const plain = (m: MoeMatmul): MoeMatmulAttrs => ({ ...m.attrs, grouped: false });
    // Where the load counter and the norm go: the first of these that fits the device's bindings.
    const options = [true, false].flatMap((pro) =>
      [true, false].map((loadUp) => ({ pro: pro && spec !== null, loadUp })),
    );
    const shared = sharedExpert(r, gu, down, comb);
    // A step's rows (g.maxT: 1, or the batch), each taking k + m gate_up workgroup rows.
    const m = shared?.m ?? 0;
    if (!moeInlineFuses(gu.attrs, down.attrs, g.maxT, m)) continue;
    if (g.maxT * (gu.attrs.topK + m) > caps.maxWorkgroupsPerDimension) continue;
    const sx = shared ? { sharedSlots: true } : {};
    let chosen: { up: MoeMatmulAttrs; dn: MoeMatmulAttrs; pro: boolean } | null = null;
    for (const { pro, loadUp } of options) {
      const up: MoeMatmulAttrs = {
        ...plain(gu),
        ...sx,
        prologue: pro ? spec : null,
        route: { ...routing, load: loadUp },
      };
      const dn: MoeMatmulAttrs = {
        ...plain(down),
        ...sx,
        combine: {
          scale: ca.scale,
          residual: ca.residual,
          shared: ca.shared,
          sharedGate: ca.sharedGate,
          load: !loadUp,
        },
      };
      if (fitsDevice(up) && fitsDevice(dn)) {
        chosen = { up, dn, pro };
        break;
      }
    }
    if (!chosen) continue;
    const { up, dn, pro } = chosen;
    const load = route.inputs.load;
    const upIn: Record<string, number> = {
      x: pro && norm ? norm.inputs.x : gu.inputs.x,
      w: gu.inputs.w,
      logits: route.inputs.logits,
    };
    if (pro && norm) {
      upIn.normW = norm.inputs.w;
      if (norm.inputs.b !== undefined && up.prologue?.kind === 'layer' && up.prologue.bias)
        upIn.normB = norm.inputs.b;
    }
    if (up.bias) upIn.bias = gu.inputs.bias;
    if (routing.correctionBias) upIn.routeBias = route.inputs.bias;
    if (routing.expertScale) upIn.expertScale = route.inputs.expertScale;
    if (up.route?.load) upIn.load = load;
    // The pairs gain the shared expert's m slots: a [T, topK + m, hidden] tensor.
    const pairs = shared
      ? r.activation(`${r.graph.tensors[gu.outputs.out].name}+shared`, [
          'T',
          gu.attrs.topK + shared.m,
          gu.attrs.N,
        ])
      : gu.outputs.out;
    const upOut: Record<string, number> = {
      out: pairs,
      ids: route.outputs.ids,
      weights: route.outputs.weights,
    };
    if (up.route?.load) upOut.load = load;
    const dnIn: Record<string, number> = {
      x: pairs,
      w: down.inputs.w,
      ids: route.outputs.ids,
      weights: route.outputs.weights,
    };
    if (dn.bias) dnIn.bias = down.inputs.bias;
    for (const k of ['residual', 'shared', 'sharedGate'] as const)
      if (comb.inputs[k] !== undefined && !(k === 'shared' && shared)) dnIn[k] = comb.inputs[k];
    if (dn.combine?.load) dnIn.load = load;
    const dnOut: Record<string, number> = { out: comb.outputs.out };
    if (dn.combine?.load) dnOut.load = load;
    const base = gu.label.replace(/ experts\.(gate_up|up)$/, '');
    r.replace(gu, up, upIn, upOut, `${gu.label}+route${pro ? ' (norm fused)' : ''}`);
    // At the combine's place: the shared expert's output is computed after the projections.
    r.replace(comb, dn, dnIn, dnOut, `${base} experts.down+combine`);
    r.remove(down);
    r.remove(route);
    if (shared) for (const n of [shared.up, shared.act, shared.down]) if (n) r.remove(n);
    if (group) r.remove(group);
    // The norm goes once nothing reads it; norm-prologue folds it into the router otherwise.
    if (pro && norm && r.consumers(norm.outputs.out).length === 0) r.remove(norm);
  }
  return r.finish();
}
