/**
 * gated-norm-prologue (decode only): the gated RMSNorm before a linear mixer's o_proj,
 * rmsnorm_per_head(o) · w · silu(z) (gated_norm with normBeforeGate: fla's FusedRMSNormGated in
 * gated DeltaNet, GLA and RetNet's output), → o_proj's prologue (MatmulAttrs.prologueGroup,
 * prologueGroupWeight, prologueGate): the GEMV computes each head's statistics, then each x it
 * loads as norm · w · silu(z). One dispatch instead of two, exact up to f32 rounding (the same
 * sums; the product order differs). Decode only, because only the GEMV computes per-group
 * statistics; prefill keeps the gated_norm op, whose cost there is small beside the tiles.
 * Skipped where the heads are too many for the GEMV's one-after-another group reductions
 * (MAX_PROLOGUE_GROUPS), where a head straddles the GEMV's vec4 loads, or where the matmul
 * would not fit the device.
 */
import type { Graph, GraphNode } from '../graph/ir.ts';
import type { GatedNormAttrs, MatmulAttrs } from '../graph/ops.ts';
import type { DeviceCaps } from '../target.ts';
import { fits, type FusionOptions, type Matmul } from './fuse.ts';
import { Rewriter } from './rewrite.ts';

/** Most groups a grouped prologue reduces one after another (each a workgroup tree reduction). */
export const MAX_PROLOGUE_GROUPS = 64;

/**
 * `m` with the gated norm `ga` as its prologue (gate: the norm before the gate, z an input), or
 * null where the decode GEMV cannot take it: `m` must read the norm's output as its x, with no
 * prologue, x map or RoPE, rows 'T'.
 */
export function gatedNormPrologue(
  m: GraphNode | undefined,
  ga: GatedNormAttrs,
  gate: boolean,
  maxT: number,
  caps: DeviceCaps,
): MatmulAttrs | null {
  if (maxT !== 1 || m?.attrs.op !== 'matmul') return null;
  const a = m.attrs;
  if (a.prologue || a.xMap || a.ropeKv || a.rows !== 'T' || a.K !== ga.width) return null;
  const groups = ga.width / ga.group;
  if (groups > MAX_PROLOGUE_GROUPS) return null;
  // The GEMV reads x in vec4 units when K allows, which a group must not straddle.
  if (groups > 1 && ga.width % 4 === 0 && ga.group % 4 !== 0) return null;
  const attrs: MatmulAttrs = {
    ...a,
    prologue: { kind: 'rms', eps: ga.eps, unitOffset: false, bias: false },
    ...(groups > 1 ? { prologueGroup: ga.group } : {}),
    ...(groups > 1 && ga.groupWeight ? { prologueGroupWeight: true } : {}),
    ...(gate ? { prologueGate: true } : {}),
  };
  return fits(attrs, caps) ? attrs : null;
}

export function fuseGatedNormPrologue(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const gn of r.live()) {
    if (gn.attrs.op !== 'gated_norm' || !gn.attrs.normBeforeGate) continue;
    const out = gn.outputs.out;
    if (out === g.logits) continue;
    const m = r.soleConsumer(out) as Matmul | undefined;
    if (!m || m.inputs.x !== out || Object.values(m.inputs).filter((t) => t === out).length !== 1)
      continue;
    // A whole-row weight is [width] = [K] as the prologue reads it; a shared one is [group].
    const attrs = gatedNormPrologue(m, gn.attrs, true, g.maxT, caps);
    if (!attrs) continue;
    const inputs = { ...m.inputs, x: gn.inputs.x, normW: gn.inputs.w, gate: gn.inputs.z };
    r.replace(m, attrs, inputs, m.outputs, `${m.label} (gated norm fused)`);
    r.remove(gn);
  }
  return r.finish();
}
