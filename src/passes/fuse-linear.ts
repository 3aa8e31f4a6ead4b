/**
 * Decode fusions of the linear-recurrence mixers that recurrence-prologue leaves.
 *
 * recurrence-shared-input: a pointwise op whose output the recurrence reads both as one of its
 * inputs (q, k, g or beta) and inside another input's prologue expression → both expressions
 * compute it from the op's own inputs. HGRN2's forget gate g = lower-bounded logsigmoid(f) is the
 * decay and also k = 1 − exp(g); recurrence-prologue folds only an op with one reader, so the
 * gate stayed a dispatch (4 per layer, now 3). The op's expression is evaluated twice per element
 * instead of stored and read: a few flops against a dispatch.
 */
import type { Graph, GraphNode } from '../graph/ir.ts';
import {
  convStateName,
  splitOutput,
  type FusedPointwise,
  type MatmulAttrs,
  type LinearRecurrenceAttrs,
  type PointwiseAttrs,
  type PointwiseExpr,
  type PointwiseInput,
  type PrologueInput,
  type RecurrencePrologue,
} from '../graph/ops.ts';
import { definitionFor } from '../ops/index.ts';
import { renameInputs } from '../ops/pointwise.ts';
import { bindingCount } from '../ops/types.ts';
import { fits, joinPrologueInputs, type FusionOptions } from './fuse.ts';
import { Rewriter } from './rewrite.ts';

/** Input i reads column c of its tensor for output column c of a `width`-wide expression. */
function identity(i: PointwiseInput, width: number): boolean {
  return i.perToken && i.cols === width && i.inner === width && i.repeat === 1 && !i.offset;
}

/** `e` with every read of input `name` replaced by `by`. */
function substitute(e: PointwiseExpr, name: string, by: PointwiseExpr): PointwiseExpr {
  if ('in' in e) return e.in === name ? by : e;
  if ('fn' in e) return { ...e, x: substitute(e.x, name, by) };
  if ('bin' in e) return { ...e, a: substitute(e.a, name, by), b: substitute(e.b, name, by) };
  return e;
}

const TARGETS: PrologueInput[] = ['q', 'k', 'g', 'beta'];

export function fuseRecurrenceSharedInput(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const node of r.live()) {
    if (node.attrs.op !== 'linear_recurrence') continue;
    let rec = node;
    for (const target of TARGETS) {
      const next = foldShared(r, rec, target, caps);
      if (next) rec = next;
    }
  }
  return r.finish();
}

/** Fold the op computing `target` of `rec` when every other reader is a prologue expression. */
function foldShared(
  r: Rewriter,
  rec: GraphNode,
  target: PrologueInput,
  caps: FusionOptions['caps'],
): GraphNode | null {
  const ra = rec.attrs as LinearRecurrenceAttrs;
  const p: RecurrencePrologue = ra.prologue ?? { exprs: {}, l2: {} };
  const t = rec.inputs[target];
  if (t === undefined || p.exprs[target]) return null;
  // q and k's l2 norms and RoPE apply after an expression; only one with neither folds here.
  if ((target === 'q' || target === 'k') && (p.l2[target] || p.rope?.of.includes(target)))
    return null;
  const pw = r.producer(t);
  if (pw?.attrs.op !== 'pointwise' || pw.outputs.out !== t) return null;
  const pa: PointwiseAttrs = pw.attrs;
  if (r.consumers(t).some((c) => c !== rec)) return null;
  // The recurrence's other names for the op's output, each read by expressions only.
  const aliases = Object.entries(rec.inputs)
    .filter(([n, id]) => id === t && n !== target)
    .map(([n]) => n);
  if (aliases.length === 0 || aliases.some((n) => !n.startsWith('in_'))) return null;
  const inputs: Record<string, number> = { ...rec.inputs };
  delete inputs[target];
  for (const n of aliases) delete inputs[n];
  // The op's inputs join as in_<name> (or the name they already have).
  const rename = joinPrologueInputs(inputs, pw.inputs);
  const body = renameInputs(pa.expr, (n) => rename[n]);
  const bodyInputs = Object.fromEntries(Object.entries(pa.inputs).map(([n, i]) => [rename[n], i]));
  const exprs: Record<string, FusedPointwise> = { ...p.exprs };
  for (const [name, f] of Object.entries(p.exprs)) {
    const reads = aliases.filter((a) => a in f.inputs);
    if (reads.length === 0) continue;
    // Column c of the alias must be the op's column c, so its expression evaluates there.
    if (reads.some((a) => !identity(f.inputs[a], pa.width))) return null;
    let expr = f.expr;
    const fin: Record<string, PointwiseInput> = { ...f.inputs };
    for (const a of reads) {
      expr = substitute(expr, a, body);
      delete fin[a];
    }
    exprs[name] = { inputs: { ...fin, ...bodyInputs }, expr };
  }
  // Every alias must have been read through an expression now rewritten.
  for (const a of aliases) if (Object.values(exprs).some((f) => a in f.inputs)) return null;
  exprs[target] = { inputs: bodyInputs, expr: body };
  const attrs: LinearRecurrenceAttrs = { ...ra, prologue: { ...p, exprs } };
  if (bindingCount(definitionFor(attrs), attrs) > caps.maxStorageBuffersPerStage) return null;
  const label = `${rec.label.replace(/ \(.*\)$/, '')} (${Object.keys(exprs).join(', ')} fused)`;
  const n = r.replace(rec, attrs, inputs, rec.outputs, label);
  r.remove(pw);
  return n;
}

type Mm = GraphNode & { attrs: MatmulAttrs };

/** A matmul that only normalises x (optionally) and writes whole column ranges. */
function extendable(n: GraphNode): n is Mm {
  if (n.attrs.op !== 'matmul') return false;
  const a = n.attrs;
  return (
    !a.gated &&
    !a.act &&
    !a.residual &&
    a.scale === 1 &&
    !a.ropeKv &&
    a.rows === 'T' &&
    a.outOffset === 0 &&
    a.outStride === a.N &&
    !a.xMap &&
    !a.epilogue &&
    !a.conv &&
    a.prologueGroup === undefined &&
    !a.prologueGate
  );
}

/**
 * shared-input-normed (decode only): matmuls of one x with the same norm prologue (the same
 * normW and normB) → one split matmul, its outputs the members' outputs in order. shared-input
 * runs before norm-prologue and so leaves room for a LayerNorm's two bindings; once the norm is
 * known (an RMSNorm's one), a projection it left out may still fit: GLA's output gate g beside
 * q+k+v+gk0, gated DeltaNet's in_ba beside in_q+in_k+in_v+in_z (one dispatch instead of two).
 * Decode only: a prefill's tiles gain nothing worth changing its graph for.
 */
export function fuseSharedInputNormed(g: Graph, { caps }: FusionOptions): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  const groups = new Map<string, Mm[]>();
  for (const n of r.live()) {
    if (!extendable(n)) continue;
    const a = n.attrs;
    const key = JSON.stringify([
      n.inputs.x,
      n.inputs.normW,
      n.inputs.normB,
      a.prologue,
      a.K,
      a.bias,
      a.wType,
      a.xType,
    ]);
    const list = groups.get(key);
    if (list) list.push(n);
    else groups.set(key, [n]);
  }
  const merged = (ms: Mm[]): MatmulAttrs => {
    const N = ms.reduce((s, m) => s + m.attrs.N, 0);
    return {
      ...ms[0].attrs,
      N,
      outStride: N,
      splits: ms.flatMap((m) => m.attrs.splits ?? [m.attrs.N]),
    };
  };
  for (const members of groups.values()) {
    if (members.length < 2) continue;
    const take: Mm[] = [];
    for (const m of members) if (take.length < 1 || fits(merged([...take, m]), caps)) take.push(m);
    if (take.length < 2) continue;
    const attrs = merged(take);
    const concat = (k: 'w' | 'bias', shape: number[]) =>
      r.concatParam(
        take.map((m) => m.inputs[k]),
        shape,
      );
    const inputs: Record<string, number> = {
      ...take[0].inputs,
      w: concat('w', [attrs.N, attrs.K]),
    };
    if (attrs.bias) inputs.bias = concat('bias', [attrs.N]);
    const outs = take.flatMap((m) =>
      (m.attrs.splits ?? [m.attrs.N]).map((_, i) => m.outputs[splitOutput(i)]),
    );
    const outputs = Object.fromEntries(outs.map((t, i) => [splitOutput(i), t]));
    const labels = take.map((m) => m.label.replace(/ \(norm fused\)$/, ''));
    // `l1.gla.q+k+v+gk0` + `l1.gla.g` → `l1.gla.q+k+v+gk0+g`; unrelated labels joined by ' + '.
    const prefix = labels[0].slice(0, labels[0].lastIndexOf('.') + 1);
    const label =
      prefix && labels.every((l) => l.startsWith(prefix) && !l.slice(prefix.length).includes(' '))
        ? prefix + labels.map((l) => l.slice(prefix.length)).join('+')
        : labels.join(' + ');
    r.replace(take[0], attrs, inputs, outputs, `${label} (norm fused)`);
    for (const m of take.slice(1)) r.remove(m);
  }
  return r.finish();
}

/**
 * recurrence-conv-row (decode only): gated DeltaNet's (Qwen3-Next's) in_proj, split into q, k,
 * v, z and b|a, with a causal conv on each of q, k and v → one matmul writing the whole row once,
 * its conv epilogue over the q|k|v columns (one binding per conv state, MatmulAttrs.conv); the
 * recurrence then reads q, k, v and b|a from that row through prologue expressions (a column
 * range each: RecurrencePrologue.exprs, v among them) and o_proj's gated-norm prologue reads z
 * from it (prologueGateCols). A layer decodes in three dispatches (was six after the others).
 * Skipped where a piece would not fit the device's storage buffers, where q, k and v are not
 * the first three outputs in that order, or where an output has another reader.
 */
export function fuseRecurrenceConvRow(g: Graph, { caps }: FusionOptions): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  for (const rec of r.live()) {
    if (rec.attrs.op !== 'linear_recurrence') continue;
    const ra: LinearRecurrenceAttrs = rec.attrs;
    const p: RecurrencePrologue = ra.prologue ?? { exprs: {}, l2: {} };
    if (p.rope || (['q', 'k', 'v'] as const).some((n) => p.exprs[n])) continue;
    const convs = (['q', 'k', 'v'] as const).map((n) => {
      const cv = r.producer(rec.inputs[n]);
      if (cv?.attrs.op !== 'conv1d' || r.soleConsumer(rec.inputs[n]) !== rec) return null;
      if ((cv.attrs.batch ?? 1) !== 1 || cv.outputs.out !== rec.inputs[n]) return null;
      return cv as GraphNode & { attrs: Extract<GraphNode['attrs'], { op: 'conv1d' }> };
    });
    if (convs.some((c) => !c)) continue;
    const cvs = convs as NonNullable<(typeof convs)[number]>[];
    const c0 = cvs[0].attrs;
    if (
      cvs.some(
        (c) => c.attrs.kernel !== c0.kernel || c.attrs.bias !== c0.bias || c.attrs.silu !== c0.silu,
      )
    )
      continue;
    const m = r.producer(cvs[0].inputs.x);
    if (!m || !extendable(m) || !m.attrs.splits || !m.attrs.prologue) continue;
    const sp = m.attrs.splits;
    const outs = sp.map((_, i) => m.outputs[splitOutput(i)]);
    if (
      sp.length < 3 ||
      cvs.some((c, i) => c.inputs.x !== outs[i] || r.soleConsumer(outs[i]) !== c)
    )
      continue;
    // Every other output: read by the recurrence's expressions or as o_proj's gate, nothing else.
    const N = m.attrs.N;
    const at = sp.map((_, i) => sp.slice(0, i).reduce((s, n) => s + n, 0));
    let ok = true;
    const gates: { u: Mm; offset: number }[] = [];
    for (let i = 3; i < sp.length && ok; i++) {
      for (const u of r.consumers(outs[i])) {
        if (u === rec) {
          const names = Object.entries(rec.inputs).filter(([, t]) => t === outs[i]);
          ok &&= names.every(([n]) => n.startsWith('in_'));
        } else if (
          u.attrs.op === 'matmul' &&
          u.attrs.prologueGate &&
          !u.attrs.prologueGateCols &&
          u.inputs.gate === outs[i] &&
          u.inputs.x !== outs[i] &&
          sp[i] === u.attrs.K
        ) {
          gates.push({ u: u as Mm, offset: at[i] });
        } else ok = false;
      }
    }
    if (!ok) continue;
    const channels = sp[0] + sp[1] + sp[2];
    const attrs: MatmulAttrs = {
      ...m.attrs,
      splits: null,
      conv: {
        channels,
        kernel: c0.kernel,
        bias: c0.bias,
        silu: c0.silu,
        states: [sp[0], sp[1], sp[2]],
        ...(c0.bias ? { packedBias: true } : {}),
      },
    };
    if (!fits(attrs, caps)) continue;
    // The recurrence: q, k, v and every in_* read of the other outputs from the row, as `in_row`.
    const row = r.activation(`${g.tensors[outs[0]].name.replace(/[^.]*$/, '')}in_proj`, ['T', N]);
    const exprs: Record<string, FusedPointwise> = {};
    for (const [name, f] of Object.entries(p.exprs)) {
      const fin: Record<string, PointwiseInput> = {};
      let expr = f.expr;
      for (const [n, i] of Object.entries(f.inputs)) {
        const k = outs.indexOf(rec.inputs[n]);
        if (k < 0) {
          fin[n] = i;
          continue;
        }
        // Column offset + … of a [T, cols] tensor → the same of the row, from that output's start.
        // One expression reads a name through one column map: two outputs in one expression
        // would need two names (no mixer needs it yet).
        if (fin.in_row) ok = false;
        fin.in_row = { ...i, cols: N, offset: (i.offset ?? 0) + at[k] };
        expr = renameInputs(expr, (x) => (x === n ? 'in_row' : x));
      }
      exprs[name] = { inputs: fin, expr };
    }
    if (!ok) continue;
    const heads = {
      q: ra.qHeads * ra.keyDim,
      k: ra.kHeads * ra.keyDim,
      v: ra.vHeads * ra.valueDim,
    };
    // Every expression reads the row as `in_row`, each through its own column map: one binding.
    (['q', 'k', 'v'] as const).forEach((n, i) => {
      exprs[n] = {
        inputs: { in_row: { perToken: true, cols: N, inner: heads[n], repeat: 1, offset: at[i] } },
        expr: { in: 'in_row' },
      };
    });
    const recInputs: Record<string, number> = { in_row: row };
    for (const [n, t] of Object.entries(rec.inputs)) {
      if (['q', 'k', 'v'].includes(n) || outs.includes(t)) continue;
      recInputs[n] = t;
    }
    const recAttrs: LinearRecurrenceAttrs = { ...ra, prologue: { ...p, exprs } };
    if (bindingCount(definitionFor(recAttrs), recAttrs) > caps.maxStorageBuffersPerStage) continue;
    const mIn: Record<string, number> = { ...m.inputs };
    const convParts = [
      ...cvs.map((c) => c.inputs.w),
      ...(c0.bias ? cvs.map((c) => c.inputs.bias) : []),
    ];
    mIn.convW = r.concatParam(
      convParts,
      c0.bias ? [channels * (c0.kernel + 1)] : [channels, c0.kernel],
    );
    const mOut: Record<string, number> = { out: row };
    cvs.forEach((c, i) => {
      mIn[convStateName(i)] = c.inputs.state;
      mOut[convStateName(i)] = c.outputs.state;
    });
    r.replace(
      m,
      attrs,
      mIn,
      mOut,
      `${m.label.replace(/ \(norm fused\)$/, '')} (+conv q, k, v) (norm fused)`,
    );
    for (const c of cvs) r.remove(c);
    r.replace(
      rec,
      recAttrs,
      recInputs,
      rec.outputs,
      `${rec.label.replace(/ \(.*\)$/, '')} (${[...Object.keys(p.l2).map((n) => `l2 ${n}`), ...Object.keys(exprs)].join(', ')} fused)`,
    );
    for (const { u, offset } of gates) {
      const ua: MatmulAttrs = { ...u.attrs, prologueGateCols: { cols: N, offset } };
      r.replace(u, ua, { ...u.inputs, gate: row }, u.outputs, u.label);
    }
  }
  return r.finish();
}

/**
 * Largest rank recurrence-low-rank computes inside the recurrence: each gate element costs that
 * many multiply-adds there (in every workgroup reading it), against a dispatch saved.
 */
export const MAX_LOW_RANK = 64;

/**
 * recurrence-low-rank (decode only): a small matmul (K ≤ MAX_LOW_RANK, f32 weight, optional
 * bias, nothing fused) whose output only the recurrence's prologue expressions read → computed
 * there (RecurrencePrologue.lowRank): GLA's gate gk = logsigmoid(gk1 (gk0 x) + b)/16, whose
 * second, rank-16 projection gk1 was a dispatch of its own. Exact up to f32 rounding (the same
 * sum; the recurrence's f32 accumulation order, as the GEMV's differs). Prefill keeps the matmul.
 */
export function fuseRecurrenceLowRank(g: Graph, { caps }: FusionOptions): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  for (const rec of r.live()) {
    if (rec.attrs.op !== 'linear_recurrence') continue;
    const ra: LinearRecurrenceAttrs = rec.attrs;
    const p = ra.prologue;
    if (!p || p.lowRank) continue;
    for (const [n, t] of Object.entries(rec.inputs)) {
      if (!n.startsWith('in_')) continue;
      const m = r.producer(t);
      if (!m || !extendable(m) || m.attrs.prologue || m.attrs.splits) continue;
      const a = m.attrs;
      if (a.wType !== 'f32' || a.xType !== 'f32' || a.K > MAX_LOW_RANK) continue;
      if (r.soleConsumer(t) !== rec || m.outputs.out !== t) continue;
      const uses = Object.values(p.exprs).filter((f) => n in f.inputs);
      if (uses.some((f) => !f.inputs[n].perToken || f.inputs[n].cols !== a.N)) continue;
      const lowRank = { name: n, rank: a.K, cols: a.N, bias: a.bias };
      const attrs: LinearRecurrenceAttrs = { ...ra, prologue: { ...p, lowRank } };
      if (bindingCount(definitionFor(attrs), attrs) > caps.maxStorageBuffersPerStage) continue;
      const inputs: Record<string, number> = { ...rec.inputs };
      delete inputs[n];
      inputs[`${n}_x`] = m.inputs.x;
      inputs[`${n}_w`] = m.inputs.w;
      if (a.bias) inputs[`${n}_b`] = m.inputs.bias;
      const label = rec.label.replace(/ fused\)$/, `, ${m.label.replace(/^.*\./, '')} fused)`);
      r.replace(rec, attrs, inputs, rec.outputs, label);
      r.remove(m);
      break;
    }
  }
  return r.finish();
}
