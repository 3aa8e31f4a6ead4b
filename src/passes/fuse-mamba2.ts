/**
 * mamba2-decode (decode only): a Mamba-2 layer's decode in three dispatches instead of eight.
 * The lowering (src/mixers/mamba2.ts) gives, on the normed input h,
 *   in_z, in_x, in_b, in_c, in_dt = five matmuls over in_proj's row ranges of h
 *   x, B, C = three causal conv1d (+ SiLU), each with its own state conv.{i}.x/.b/.c
 *   y = ssd(x, dt, B, C);  g = gated_norm(y, z) (or y · silu(z) without the norm);  out_proj g
 * and this rewrites it to
 *   row = in_proj h, its columns z | x B C | dt, x B C through the matmul's conv epilogue
 *         (MatmulAttrs.conv with offset, one state binding per conv state and the bias packed
 *         behind the weight, so the kernel binds 8 storage buffers with the norm prologue)
 *   g   = ssd reading x, dt, B, C and z from that row, gated: (y + D·x) · silu(z)
 *         (SsdAttrs.row, packed parameters)
 *   out = out_proj(rmsnorm(g) · w) (+ residual)
 * The gated RMSNorm with the gate first is rmsnorm(y · silu(z)) · w, so once the SSD has
 * gated, what is left is a plain RMSNorm (per channel weight): norm-prologue folds it into
 * out_proj when it spans the whole row (one group), and this pass folds a norm per B/C group
 * (mamba_ssm's default, Nemotron-H) as out_proj's grouped prologue (MatmulAttrs.prologueGroup,
 * decode's GEMV) where it can (else the norm stays a dispatch: four); residual folds the add.
 * Exact up to f32 rounding (the same sums per element, except that the gate product is now
 * rounded to f32 before the norm squares it).
 *
 * Prefill keeps the unfused ops: the conv epilogue walks rows in order on the GEMV (fine for
 * one token, serial for many) and the chunked SSD kernels read x, B, C as their own tensors.
 * Skipped (left to the other fusions) where the fused matmul would not fit the device with a
 * norm prologue still to come (storage buffers, weight binding size), for the norm-before-gate
 * form (HF's norm_before_gate: the norm would need z after the SSD) and for a shared-weight
 * (groupWeight) norm.
 */
import type { Graph, GraphNode } from '../graph/ir.ts';
import {
  convStateName,
  type GatedNormAttrs,
  type MatmulAttrs,
  type NormAttrs,
  type SsdAttrs,
} from '../graph/ops.ts';
import { fits, isPlain, type FusionOptions, type Matmul } from './fuse.ts';
import { gatedNormPrologue } from './fuse-gated-norm.ts';
import { Rewriter } from './rewrite.ts';

/** The conv1d node computing `t` from a plain matmul's output, each read only by the next. */
function convOfMatmul(r: Rewriter, t: number, reader: GraphNode) {
  const cv = r.producer(t);
  if (cv?.attrs.op !== 'conv1d' || r.soleConsumer(t) !== reader || cv.outputs.out !== t)
    return null;
  const m = r.producer(cv.inputs.x);
  if (!isPlain(m) || r.soleConsumer(cv.inputs.x) !== cv || m.outputs.out !== cv.inputs.x)
    return null;
  return { cv: cv as GraphNode & { attrs: Extract<GraphNode['attrs'], { op: 'conv1d' }> }, m };
}

export function fuseMamba2Decode(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const s of r.live()) {
    if (s.attrs.op !== 'ssd' || s.attrs.packed || s.attrs.row) continue;
    const sa: SsdAttrs = s.attrs;
    // Decode: one token, or one of each sequence of a batched step.
    if (g.maxT !== (sa.batch ?? 1)) continue;
    const convs = (['x', 'b', 'c'] as const).map((k) => convOfMatmul(r, s.inputs[k], s));
    const [cx, cb, cc] = convs;
    if (!cx || !cb || !cc) continue;
    const k0 = cx.cv.attrs;
    if (
      !convs.every(
        (c) =>
          c!.cv.attrs.kernel === k0.kernel &&
          c!.cv.attrs.bias === k0.bias &&
          c!.cv.attrs.silu &&
          (c!.cv.attrs.batch ?? 1) === (k0.batch ?? 1),
      )
    )
      continue;
    const mdt = r.producer(s.inputs.dt);
    if (!isPlain(mdt) || r.soleConsumer(s.inputs.dt) !== s || mdt.outputs.out !== s.inputs.dt)
      continue;
    // What reads y: the gated RMSNorm (gate first) or the bare gate y · silu(z).
    const gate = r.soleConsumer(s.outputs.out);
    let z: number;
    if (gate?.attrs.op === 'gated_norm') {
      const ga: GatedNormAttrs = gate.attrs;
      if (ga.normBeforeGate || ga.groupWeight || gate.inputs.x !== s.outputs.out) continue;
      z = gate.inputs.z;
    } else if (gate?.attrs.op === 'glu' && gate.attrs.act === 'silu') {
      if (gate.inputs.up !== s.outputs.out || gate.inputs.gate === s.outputs.out) continue;
      z = gate.inputs.gate;
    } else continue;
    const mz = r.producer(z);
    if (!isPlain(mz) || r.soleConsumer(z) !== gate || mz.outputs.out !== z) continue;
    // in_proj's order: z | x B C | dt, all plain matmuls of one x alike.
    const ms: Matmul[] = [mz, cx.m, cb.m, cc.m, mdt];
    const a0 = mz.attrs;
    const alike = (m: Matmul) =>
      m.inputs.x === mz.inputs.x &&
      m.attrs.K === a0.K &&
      m.attrs.bias === a0.bias &&
      m.attrs.wType === a0.wType &&
      m.attrs.xType === a0.xType;
    if (!ms.every(alike) || new Set(ms).size !== ms.length) continue;
    const W = sa.heads * sa.headDim;
    const GN = sa.groups * sa.dState;
    const widths = [W, W, GN, GN, sa.heads];
    if (ms.some((m, i) => m.attrs.N !== widths[i])) continue;
    if (convs.some((c, i) => c!.cv.attrs.channels !== widths[i + 1])) continue;
    const N = widths.reduce((x, y) => x + y, 0);
    const attrs: MatmulAttrs = {
      ...a0,
      N,
      outStride: N,
      conv: {
        channels: W + 2 * GN,
        kernel: k0.kernel,
        bias: k0.bias,
        silu: true,
        offset: W,
        states: [W, GN, GN],
        ...(k0.bias ? { packedBias: true } : {}),
        ...((k0.batch ?? 1) > 1 ? { batch: k0.batch } : {}),
      },
    };
    // The input norm folds in later (norm-prologue): leave it room.
    const withNorm: MatmulAttrs = {
      ...attrs,
      prologue: { kind: 'rms', eps: 1e-5, unitOffset: false, bias: false },
    };
    if (!fits(withNorm, caps)) continue;
    const name = (t: number) => g.tensors[t].name;
    const inputs: Record<string, number> = {
      x: mz.inputs.x,
      w: r.concatParam(
        ms.map((m) => m.inputs.w),
        [N, a0.K],
      ),
    };
    if (a0.bias)
      inputs.bias = r.concatParam(
        ms.map((m) => m.inputs.bias),
        [N],
      );
    const cvs = convs.map((c) => c!.cv);
    const convParts = [
      ...cvs.map((c) => c.inputs.w),
      ...(k0.bias ? cvs.map((c) => c.inputs.bias) : []),
    ];
    inputs.convW = r.concatParam(
      convParts,
      k0.bias ? [(W + 2 * GN) * (k0.kernel + 1)] : [W + 2 * GN, k0.kernel],
    );
    const outputs: Record<string, number> = {};
    cvs.forEach((c, i) => {
      const n = convStateName(i);
      inputs[n] = c.inputs.state;
      outputs[n] = c.outputs.state;
    });
    const L = mz.label.replace(/\.in_z$/, '');
    outputs.out = r.activation(`${name(z).replace(/in_z$/, '')}in_proj`, ['T', N]);
    r.replace(mz, attrs, inputs, outputs, `${L}.in_proj (+conv x, b, c)`);
    for (const n of [cx.m, cb.m, cc.m, mdt, ...cvs]) r.remove(n);

    const { dtBias, aLog, d } = s.inputs;
    const p = r.param(`${name(aLog).replace(/\.A_log$/, '')}.ssd_pack`, [3 * sa.heads], {
      kind: 'concat',
      parts: [r.source(dtBias), r.source(aLog), r.source(d)],
    });
    const row = { cols: N, z: 0, x: W, b: 2 * W, c: 2 * W + GN, dt: 2 * W + 2 * GN };
    const fused: SsdAttrs = { ...sa, packed: true, row };
    const ins = { inrow: outputs.out, p, state: s.inputs.state };
    if (gate.attrs.op === 'glu') {
      r.replace(
        s,
        fused,
        ins,
        { ...s.outputs, out: gate.outputs.out },
        `${s.label} + gate (fused)`,
      );
      r.remove(gate);
      continue;
    }
    const ga = gate.attrs as GatedNormAttrs;
    r.replace(s, fused, ins, s.outputs, `${s.label} + gate (fused)`);
    const spec = { kind: 'rms', eps: ga.eps, unitOffset: false, bias: false } as const;
    // Per B/C group: out_proj's GEMV computes each group's statistics (prologueGroup) where it
    // is the norm's one reader; a whole-row norm is norm-prologue's to fold, as any other.
    const out = r.soleConsumer(gate.outputs.out);
    const pro = ga.group !== ga.width ? gatedNormPrologue(out, ga, false, g.maxT, caps) : null;
    if (out && pro && out.inputs.x === gate.outputs.out) {
      const proIn = { ...out.inputs, x: s.outputs.out, normW: gate.inputs.w };
      r.replace(out, pro, proIn, out.outputs, `${out.label} (grouped norm fused)`);
      r.remove(gate);
      continue;
    }
    const norm: NormAttrs = {
      op: 'norm',
      norm: spec,
      width: ga.width,
      group: ga.group,
      residual: false,
      ...(ga.group !== ga.width ? { perChannel: true } : {}),
    };
    r.replace(
      gate,
      norm,
      { x: s.outputs.out, w: gate.inputs.w },
      gate.outputs,
      `${gate.label} (gate in the ssd)`,
    );
  }
  return r.finish();
}
