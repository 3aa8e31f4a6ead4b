/**
 * Fusion passes, each a pure Graph → Graph rewrite. They cut dispatches per
 * decode token (the cost that dominates small-model decode on WebGPU) by
 * folding elementwise work into the matmul that feeds or follows it:
 *   mamba1-decode    (decode only) Mamba-1's x_proj (when small), dt/B/C norms, dt_proj and
 *                    scan → one mamba1_step
 *   mamba2-decode    (decode only) Mamba-2's in_proj row ranges + x/B/C convs → one matmul with a
 *                    conv epilogue; ssd + gate → one ssd reading that row (src/passes/fuse-mamba2.ts)
 *   gated-norm-prologue (decode only) rmsnorm(o)·w·silu(z) before a linear mixer's o_proj → its
 *                    prologue (src/passes/fuse-gated-norm.ts)
 *   ssd-decode       (decode only) an SSD's dtBias, aLog and d → one packed parameter, so its
 *                    one-launch decode kernel fits 8 storage buffers
 *   conv-epilogue    (decode only, last) a causal conv1d on a matmul's output → the matmul's
 *                    epilogue, state update included (Mamba's in_proj + conv: one dispatch)
 *   qkv-rope-append  q/k/v projections + RoPE + KV-cache append → one matmul
 *   qkv-append       the same without RoPE (fuse-attn.ts)
 *   moe-decode       (decode only) a MoE FFN's norm, routing and combine → its two expert
 *                    projections, a shared expert of their shape → one more expert (fuse-moe.ts)
 *   gated-mlp        gate and up projections + GLU → one two-accumulator matmul
 *   gated-mul        a · b of two projections of one x (LFM2's B·x) → the same, gate act none
 *   shared-input     the other plain matmuls of one x (Mamba's in_proj and x_proj row ranges,
 *                    q/k/v without RoPE, router + shared-expert gate) → one matmul with an
 *                    output per column range
 *   activation       act(matmul) → matmul epilogue
 *   shared-input-normed  (decode only) the same once norm-prologue has folded the norm, whose
 *                    true binding count may leave room (src/passes/fuse-linear.ts)
 *   residual         x + s · matmul(...) → matmul epilogue (s: the residual multiplier)
 *   norm-residual    x + norm(y) → the norm adds x as it writes (sandwich post-norms)
 *   norm-prologue    norm → every matmul consuming it computes the norm itself
 *   recurrence-prologue  l2 norms of q/k, RoPE on q/k and pointwise ops computing q, k, g or
 *                    beta → the linear recurrence evaluates them as it loads (gated DeltaNet's
 *                    decode: one dispatch for the recurrence, its gates and its norms instead of
 *                    five; RetNet's: one instead of three)
 *   recurrence-shared-input  a pointwise op the recurrence reads as an input and inside another
 *                    input's expression (HGRN2's gate, also its k) → both expressions
 *                    (src/passes/fuse-linear.ts)
 *   recurrence-conv-row  (decode only) gated DeltaNet's split in_proj and q/k/v convs → one row
 *                    with the convs in the epilogue, read by the recurrence and o_proj's gate
 *                    (src/passes/fuse-linear.ts)
 *   recurrence-low-rank  (decode only) a rank ≤ 64 matmul read only by the recurrence's prologue
 *                    (GLA's gk1) → computed there (src/passes/fuse-linear.ts)
 *   matmul-epilogue  pointwise(matmul(...), params, activations) → the matmul applies the
 *                    expression to each output element (LoRA tanh / sigmoid, gates)
 *   matmul-prologue  pointwise ops (and glu output gates) read only as matmuls' x (RWKV's token
 *                    mixes) → each matmul computes its x as it loads it
 *   rwkv7-*          (decode only) RWKV-7's mixed projections → split matmuls (fuse-rwkv7.ts)
 * A fusion that would exceed the device's storage-buffer bindings is skipped.
 */
import type { Graph, GraphNode, ParamSource } from '../graph/ir.ts';
import {
  EPILOGUE_VALUE,
  kvTypeOf,
  splitOutput,
  type AddAttrs,
  type LinearRecurrenceAttrs,
  type Mamba1StepAttrs,
  type NormAttrs,
  type MatmulAttrs,
  type OpAttrs,
  type PointwiseAttrs,
  type PointwiseFn,
  type PointwiseInput,
  type PrologueInput,
  type RecurrencePrologue,
  type RopeAttrs,
} from '../graph/ops.ts';
import { definitionFor } from '../ops/index.ts';
import { exprInputs, renameInputs } from '../ops/pointwise.ts';
import type { DeviceCaps } from '../target.ts';
import type { Activation } from '../spec/model.ts';
import { matmulStorageBindings } from '../ops/matmul.ts';
import { mamba1StepPack, mamba1StepWorkgroupBytes } from '../ops/ssm.ts';
import { bindingCount } from '../ops/types.ts';
import { Rewriter } from './rewrite.ts';
import { bindingLimit } from './split.ts';
import { fuseQkvAppend } from './fuse-attn.ts';
import { fuseMoeDecode } from './fuse-moe.ts';
import {
  fuseRwkv7LoraAct,
  fuseRwkv7LoraUp,
  fuseRwkv7NormShift,
  fuseRwkv7Projections,
  fuseRwkv7Recurrence,
} from './fuse-rwkv7.ts';
import { fuseMamba2Decode } from './fuse-mamba2.ts';
import { fuseGatedNormPrologue } from './fuse-gated-norm.ts';
import {
  fuseRecurrenceConvRow,
  fuseRecurrenceLowRank,
  fuseRecurrenceSharedInput,
  fuseSharedInputNormed,
} from './fuse-linear.ts';

export interface FusionOptions {
  caps: DeviceCaps;
}

export type Matmul = GraphNode & { attrs: MatmulAttrs };

export function isMatmul(n: GraphNode | undefined): n is Matmul {
  return n?.attrs.op === 'matmul';
}

/** A matmul with no fused work yet. */
export function isPlain(n: GraphNode | undefined): n is Matmul {
  return (
    isMatmul(n) &&
    !n.attrs.gated &&
    !n.attrs.act &&
    !n.attrs.residual &&
    n.attrs.scale === 1 &&
    !n.attrs.prologue &&
    !n.attrs.ropeKv &&
    n.attrs.rows === 'T' &&
    n.attrs.outOffset === 0 &&
    n.attrs.outStride === n.attrs.N &&
    n.attrs.splits === null &&
    !n.attrs.xMap &&
    !n.attrs.epilogue &&
    !n.attrs.conv
  );
}

/** The fused kernel's bindings fit the device, and so does its (possibly concatenated) weight. */
export function fits(attrs: MatmulAttrs, caps: DeviceCaps): boolean {
  const weightRows = attrs.gated ? 2 * attrs.N : attrs.N;
  return (
    matmulStorageBindings(attrs) <= caps.maxStorageBuffersPerStage &&
    weightRows * attrs.K * 4 <= bindingLimit(caps)
  );
}

type RopeKv = NonNullable<MatmulAttrs['ropeKv']>;

/**
 * The fused q/k/v + KV-append matmul of q's settings: columns q, then k, then v (k's width
 * again); out holds q's columns only. Shared by qkv-rope-append and qkv-append (fuse-attn.ts).
 */
export function qkvAppendAttrs(
  q: Matmul,
  k: Matmul,
  ropeKv: Omit<RopeKv, 'qCols' | 'kvCols'>,
): MatmulAttrs {
  const qCols = q.attrs.N;
  const kvCols = k.attrs.N;
  return {
    ...q.attrs,
    N: qCols + 2 * kvCols,
    outStride: qCols,
    ropeKv: { qCols, kvCols, ...ropeKv },
  };
}

function biasSource(r: Rewriter, m: Matmul): ParamSource {
  return r.source(m.inputs.bias);
}

export function fuseQkvRopeAppend(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const att of r.live().filter((n) => n.attrs.op === 'attention')) {
    const writes = r.live().filter((n) => n.attrs.op === 'kv_write');
    const kw = writes.find((n) => n.outputs.cache === att.inputs.kcache);
    const vw = writes.find((n) => n.outputs.cache === att.inputs.vcache);
    if (!kw || !vw) continue;
    // MLA assembles its keys from column writes, which this fusion does not express.
    const wholeRows = (n: typeof kw) => n.attrs.op === 'kv_write' && n.attrs.columns === null;
    if (!wholeRows(kw) || !wholeRows(vw)) continue;
    if (writes.filter((n) => n.outputs.cache === att.inputs.kcache).length !== 1) continue;
    const qRope = r.producer(att.inputs.q);
    const kRope = r.producer(kw.inputs.x);
    if (qRope?.attrs.op !== 'rope' || kRope?.attrs.op !== 'rope') continue;
    const q = r.producer(qRope.inputs.x);
    const k = r.producer(kRope.inputs.x);
    const v = r.producer(vw.inputs.x);
    if (!isPlain(q) || !isPlain(k) || !isPlain(v)) continue;
    if (q.inputs.x !== k.inputs.x || q.inputs.x !== v.inputs.x) continue;
    // One weight and one bias for all three: they must agree on having a bias and on storage.
    if (q.attrs.bias !== k.attrs.bias || q.attrs.bias !== v.attrs.bias) continue;
    if (q.attrs.wType !== k.attrs.wType || q.attrs.wType !== v.attrs.wType) continue;
    // The rotated q stays an output of the fused matmul, so it may have other readers (NSA's
    // branches all read it); the unrotated q, k, v and the rotated k exist no more.
    if (
      ![q.outputs.out, k.outputs.out, v.outputs.out, kRope.outputs.out].every((t) =>
        r.soleConsumer(t),
      )
    )
      continue;
    const rope = qRope.attrs as RopeAttrs;
    if (rope.pairs !== 'half') continue;
    const bias = q.attrs.bias;
    const attrs = qkvAppendAttrs(q, k, {
      headDim: rope.headDim,
      rotaryDim: rope.rotaryDim,
      capacity: rope.capacity,
      // The caches keep their element type: the epilogue stores what kv_write stored.
      kvType: kvTypeOf(att.attrs.op === 'attention' ? att.attrs : null),
      // Ring caches keep their rows and row rule (KvRing).
      ...(kw.attrs.op === 'kv_write' && kw.attrs.ring
        ? { ring: { sink: kw.attrs.ring.sink, rows: kw.attrs.capacity } }
        : {}),
      // A batched step's rows are sequences at one position (src/ops/batch.ts).
      ...((rope.batch ?? 1) > 1 ? { batch: rope.batch } : {}),
    });
    if (!fits(attrs, caps)) continue;
    const il = (s: ParamSource, cols: number): ParamSource => ({
      kind: 'rope_interleave',
      of: s,
      headDim: rope.headDim,
      rotaryDim: rope.rotaryDim,
      cols,
    });
    const K = q.attrs.K;
    const base = g.tensors[q.inputs.w].name.replace(/q_proj\.weight$/, 'qkv_proj');
    const inputs: Record<string, number> = {
      x: q.inputs.x,
      w: r.param(`${base}.weight`, [attrs.N, K], {
        kind: 'concat',
        parts: [il(r.source(q.inputs.w), K), il(r.source(k.inputs.w), K), r.source(v.inputs.w)],
      }),
      cos: qRope.inputs.cos,
      sin: qRope.inputs.sin,
      kcache: att.inputs.kcache,
      vcache: att.inputs.vcache,
    };
    if (bias) {
      inputs.bias = r.param(`${base}.bias`, [attrs.N], {
        kind: 'concat',
        parts: [il(biasSource(r, q), 1), il(biasSource(r, k), 1), biasSource(r, v)],
      });
    }
    const out = qRope.outputs.out;
    r.replace(
      q,
      attrs,
      inputs,
      { out, kcache: att.inputs.kcache, vcache: att.inputs.vcache },
      `${q.label.replace(/\.q$/, '')} qkv+rope+append`,
    );
    for (const n of [k, v, qRope, kRope, kw, vw]) r.remove(n);
  }
  return r.finish();
}

export function fuseGatedMlp(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const glu of r.live().filter((n) => n.attrs.op === 'glu')) {
    if (glu.attrs.op !== 'glu') continue;
    const gate = r.producer(glu.inputs.gate);
    const up = r.producer(glu.inputs.up);
    if (!isPlain(gate) || !isPlain(up) || gate.inputs.x !== up.inputs.x) continue;
    if (!r.soleConsumer(gate.outputs.out) || !r.soleConsumer(up.outputs.out)) continue;
    const attrs: MatmulAttrs = { ...gate.attrs, gated: true, act: glu.attrs.act };
    if (!fits(attrs, caps)) continue;
    const base = g.tensors[gate.inputs.w].name.replace(/gate_proj\.weight$/, 'gate_up_proj');
    const inputs: Record<string, number> = {
      x: gate.inputs.x,
      w: r.param(`${base}.weight`, [2 * attrs.N, attrs.K], {
        kind: 'concat',
        parts: [r.source(gate.inputs.w), r.source(up.inputs.w)],
      }),
    };
    if (attrs.bias) {
      inputs.bias = r.param(`${base}.bias`, [2 * attrs.N], {
        kind: 'concat',
        parts: [biasSource(r, gate), biasSource(r, up)],
      });
    }
    r.replace(gate, attrs, inputs, { out: glu.outputs.out }, `${glu.label} (gate+up fused)`);
    r.remove(up);
    r.remove(glu);
  }
  return r.finish();
}

/**
 * mul(x Wa, x Wb) → one gated matmul without activation over the concatenated weight. LFM2's
 * short conv multiplies two row ranges of its in_proj (B and x) this way.
 */
export function fuseGatedMul(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const mul of r.live().filter((n) => n.attrs.op === 'mul')) {
    const a = r.producer(mul.inputs.a);
    const b = r.producer(mul.inputs.b);
    if (!isPlain(a) || !isPlain(b) || a === b || a.inputs.x !== b.inputs.x) continue;
    if (a.attrs.N !== b.attrs.N || a.attrs.K !== b.attrs.K || a.attrs.bias !== b.attrs.bias)
      continue;
    if (!r.soleConsumer(a.outputs.out) || !r.soleConsumer(b.outputs.out)) continue;
    const attrs: MatmulAttrs = { ...a.attrs, gated: true, act: null };
    if (!fits(attrs, caps)) continue;
    const name = (m: Matmul, k: 'w' | 'bias') => g.tensors[m.inputs[k]].name;
    const inputs: Record<string, number> = {
      x: a.inputs.x,
      w: r.param(`${name(a, 'w')}*${name(b, 'w')}`, [2 * attrs.N, attrs.K], {
        kind: 'concat',
        parts: [r.source(a.inputs.w), r.source(b.inputs.w)],
      }),
    };
    if (attrs.bias) {
      inputs.bias = r.param(`${name(a, 'bias')}*${name(b, 'bias')}`, [2 * attrs.N], {
        kind: 'concat',
        parts: [biasSource(r, a), biasSource(r, b)],
      });
    }
    r.replace(a, attrs, inputs, { out: mul.outputs.out }, `${mul.label} (projections fused)`);
    r.remove(b);
    r.remove(mul);
  }
  return r.finish();
}

/**
 * Plain matmuls that read the same x (same K, rows, bias, weight and x types) → one matmul over
 * the concatenated weights whose epilogue writes each member's column range to that member's
 * output, so their consumers are untouched. Decode pays a dispatch per matmul whatever its
 * size (about 5 µs on the H200), and Mamba-1 alone has five such matmuls per layer. Members
 * join in graph order while the fused kernel still fits the device with a norm prologue (two
 * more bindings) to come.
 */
export function fuseSharedInput(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  const groups = new Map<string, Matmul[]>();
  for (const n of r.live()) {
    if (!isPlain(n)) continue;
    const a = n.attrs;
    const key = [n.inputs.x, a.K, a.rows, a.bias, a.wType, a.xType].join('|');
    const group = groups.get(key);
    if (group) group.push(n);
    else groups.set(key, [n]);
  }
  // Room is kept for the norm that norm-prologue may fold in later: the prologue it would set,
  // the norm x comes from (an RMSNorm binds one weight, a LayerNorm with bias two), none when x
  // is no norm's output. A worst-case LayerNorm for all left Mamba-2's in_proj one range short
  // in prefill (four of its five, where decode's fusion takes all five), so both phases stored
  // its rows, twice.
  const withPrologue = (a: MatmulAttrs, x: number): MatmulAttrs => {
    const n = r.producer(x);
    return n?.attrs.op === 'norm' && n.attrs.norm.kind !== 'l2'
      ? { ...a, prologue: n.attrs.norm }
      : a;
  };
  const merged = (ms: Matmul[]): MatmulAttrs => {
    const N = ms.reduce((s, m) => s + m.attrs.N, 0);
    return { ...ms[0].attrs, N, outStride: N, splits: ms.map((m) => m.attrs.N) };
  };
  for (const members of groups.values()) {
    const take: Matmul[] = [];
    for (const m of members) {
      if (take.length < 1 || fits(withPrologue(merged([...take, m]), m.inputs.x), caps))
        take.push(m);
    }
    if (take.length < 2) continue;
    const attrs = merged(take);
    const concat = (k: 'w' | 'bias', shape: number[]) =>
      r.concatParam(
        take.map((m) => m.inputs[k]),
        shape,
      );
    const inputs: Record<string, number> = {
      x: take[0].inputs.x,
      w: concat('w', [attrs.N, attrs.K]),
    };
    if (attrs.bias) inputs.bias = concat('bias', [attrs.N]);
    const outputs = Object.fromEntries(take.map((m, i) => [splitOutput(i), m.outputs.out]));
    r.replace(take[0], attrs, inputs, outputs, sharedLabel(take.map((m) => m.label)));
    for (const m of take.slice(1)) r.remove(m);
  }
  return r.finish();
}

/** `l1.mamba.x_dt` + `l1.mamba.x_b` → `l1.mamba.x_dt+x_b`; unrelated labels joined by ' + '. */
function sharedLabel(labels: string[]): string {
  const dot = labels[0].lastIndexOf('.');
  const prefix = labels[0].slice(0, dot + 1);
  if (dot > 0 && labels.every((l) => l.startsWith(prefix) && !l.slice(dot + 1).includes(' ')))
    return prefix + labels.map((l) => l.slice(dot + 1)).join('+');
  return labels.join(' + ');
}

export function fuseActivation(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const a of r.live().filter((n) => n.attrs.op === 'act')) {
    if (a.attrs.op !== 'act') continue;
    const m = r.producer(a.inputs.x);
    if (!isPlain(m) || !r.soleConsumer(m.outputs.out)) continue;
    const attrs: MatmulAttrs = { ...m.attrs, act: a.attrs.act };
    if (!fits(attrs, caps)) continue;
    r.replace(m, attrs, m.inputs, { out: a.outputs.out }, `${m.label}+${a.attrs.act}`);
    r.remove(a);
  }
  return r.finish();
}

/**
 * Folds each residual add into the node that produces one of its operands, the other operand
 * becoming that node's residual input. `sides` lists the operands worth trying, in order; `fold`
 * gives the producer's attrs with the residual taken in, or null when it cannot take it.
 */
function foldResidualAdds(
  g: Graph,
  sides: (add: AddAttrs) => readonly ('a' | 'b')[],
  fold: (producer: GraphNode, add: AddAttrs) => OpAttrs | null,
): Graph {
  const r = new Rewriter(g);
  for (const add of r.live().filter((n) => n.attrs.op === 'add')) {
    // A phased add reads b in denoising steps only: no producer's epilogue can take it in.
    if (add.attrs.op !== 'add' || add.attrs.phased) continue;
    for (const mine of sides(add.attrs)) {
      const p = r.producer(add.inputs[mine]);
      if (!p || !r.soleConsumer(p.outputs.out)) continue;
      const attrs = fold(p, add.attrs);
      if (attrs === null) continue;
      const other = mine === 'b' ? 'a' : 'b';
      r.replace(
        p,
        attrs,
        { ...p.inputs, residual: add.inputs[other] },
        { out: add.outputs.out },
        `${p.label}+residual`,
      );
      r.remove(add);
      break;
    }
  }
  return r.finish();
}

export function fuseResidual(g: Graph, { caps }: FusionOptions): Graph {
  return foldResidualAdds(
    g,
    // a + s·b: with s ≠ 1 only b can be the matmul (its epilogue scales, then adds a).
    (add) => (add.scale === 1 ? ['b', 'a'] : ['b']),
    (m, add) => {
      if (!isMatmul(m) || m.attrs.residual || m.attrs.ropeKv || m.attrs.splits) return null;
      // The matmul's scale comes before its epilogue; the add's would have to come after it.
      if (m.attrs.epilogue && add.scale !== 1) return null;
      if (m.attrs.rows !== 'T') return null;
      if (m.attrs.outStride !== m.attrs.N) return null;
      const attrs: MatmulAttrs = { ...m.attrs, scale: m.attrs.scale * add.scale, residual: true };
      return fits(attrs, caps) ? attrs : null;
    },
  );
}

/**
 * x + norm(y) → one norm that adds x to each row it writes. Gemma's sandwich post-norm sits
 * between the projection and the residual add, and needs whole rows, so the residual cannot go
 * into the matmul's epilogue; this saves the add's dispatch instead.
 */
export function fuseNormResidual(g: Graph): Graph {
  return foldResidualAdds(
    g,
    // The norm adds its residual unscaled: a + s·norm(y) with s ≠ 1 stays as it is.
    (add) => (add.scale === 1 ? ['b', 'a'] : []),
    (n) =>
      n.attrs.op === 'norm' &&
      !n.attrs.residual &&
      !n.attrs.phased &&
      n.attrs.group === n.attrs.width
        ? { ...n.attrs, residual: true }
        : null,
  );
}

export function fuseNormPrologue(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const norm of r.live().filter((n) => n.attrs.op === 'norm')) {
    if (norm.attrs.op !== 'norm' || norm.attrs.group !== norm.attrs.width) continue;
    // A norm that adds a residual is not the plain norm a matmul prologue computes; nor is l2,
    // nor a phased norm (which normalises in denoising steps only).
    const spec = norm.attrs.norm;
    if (norm.attrs.residual || spec.kind === 'l2' || norm.attrs.phased) continue;
    const users = r.consumers(norm.outputs.out);
    if (users.length === 0 || norm.outputs.out === g.logits) continue;
    const width = norm.attrs.width;
    const ok = users.every(
      (u) =>
        isMatmul(u) &&
        !u.attrs.prologue &&
        !u.attrs.xMap &&
        u.inputs.x === norm.outputs.out &&
        u.attrs.K === width,
    );
    if (!ok) continue;
    const fused = users.map((u) => ({
      u,
      attrs: { ...(u.attrs as MatmulAttrs), prologue: spec },
    }));
    if (!fused.every((f) => fits(f.attrs, caps))) continue;
    for (const { u, attrs } of fused) {
      const inputs: Record<string, number> = {
        ...u.inputs,
        x: norm.inputs.x,
        normW: norm.inputs.w,
      };
      if (norm.inputs.b !== undefined) inputs.normB = norm.inputs.b;
      r.replace(u, attrs, inputs, u.outputs, `${u.label} (norm fused)`);
    }
    r.remove(norm);
  }
  return r.finish();
}

type Recurrence = GraphNode & { attrs: LinearRecurrenceAttrs };

/**
 * Folds into recurrence `rec` what computes its input `target`: first an l2 norm (q and k, over
 * each key head's row), then a 'half' RoPE of q or k (over each key head, tables shared by q and
 * k), then a pointwise op on what those read (or on the input itself).
 * Each folded node must feed only this input of this recurrence. The pointwise op's inputs join
 * the recurrence's as `in_<name>`, one binding per tensor however many expressions read it.
 */
function foldPrologue(
  r: Rewriter,
  rec: Recurrence,
  target: PrologueInput,
  caps: DeviceCaps,
): Recurrence {
  const only = (t: number, n: GraphNode) =>
    r.soleConsumer(t) === rec &&
    Object.entries(rec.inputs).every(([k, id]) => k === target || id !== t) &&
    n.outputs.out === t;
  const prologue: RecurrencePrologue = rec.attrs.prologue ?? { exprs: {}, l2: {} };
  const replace = (p: RecurrencePrologue, inputs: Record<string, number>, removed: GraphNode) => {
    const attrs: LinearRecurrenceAttrs = { ...rec.attrs, prologue: p };
    if (bindingCount(definitionFor(attrs), attrs) > caps.maxStorageBuffersPerStage) return null;
    const parts = [
      ...Object.keys(p.l2).map((n) => `l2 ${n}`),
      ...(p.rope?.of ?? []).map((n) => `rope ${n}`),
      ...Object.keys(p.exprs),
    ];
    const label = `${rec.label.replace(/ \(.*\)$/, '')} (${parts.join(', ')} fused)`;
    const n = r.replace(rec, attrs, inputs, rec.outputs, label) as Recurrence;
    r.remove(removed);
    return n;
  };
  // An l2 norm applies after a fused rotation, so none folds once the rotation has.
  const rotated = (target === 'q' || target === 'k') && prologue.rope?.of.includes(target);
  if (
    target in rec.inputs &&
    (target === 'q' || target === 'k') &&
    !prologue.l2[target] &&
    !rotated
  ) {
    const norm = r.producer(rec.inputs[target]);
    if (
      norm?.attrs.op === 'norm' &&
      norm.attrs.norm.kind === 'l2' &&
      norm.attrs.group === rec.attrs.keyDim &&
      !norm.attrs.residual &&
      only(rec.inputs[target], norm)
    ) {
      const p = { ...prologue, l2: { ...prologue.l2, [target]: norm.attrs.norm.eps } };
      const next = replace(p, { ...rec.inputs, [target]: norm.inputs.x }, norm);
      if (next) return foldPrologue(r, next, target, caps);
    }
  }
  const rot = prologue.rope;
  if ((target === 'q' || target === 'k') && !rot?.of.includes(target) && !prologue.exprs[target]) {
    const rope = r.producer(rec.inputs[target]);
    const cos = rope?.inputs.cos;
    const sin = rope?.inputs.sin;
    if (
      rope?.attrs.op === 'rope' &&
      rope.attrs.pairs === 'half' &&
      rope.attrs.headDim === rec.attrs.keyDim &&
      only(rec.inputs[target], rope) &&
      (!rot ||
        (rot.rotaryDim === rope.attrs.rotaryDim &&
          rec.inputs.rope_cos === cos &&
          rec.inputs.rope_sin === sin))
    ) {
      const rotaryDim = rope.attrs.rotaryDim;
      const capacity = r.graph.tensors[cos!].shape[0] as number;
      const p = { ...prologue, rope: { of: [...(rot?.of ?? []), target], rotaryDim, capacity } };
      const inputs = { ...rec.inputs, [target]: rope.inputs.x, rope_cos: cos!, rope_sin: sin! };
      const next = replace(p, inputs, rope);
      if (next) return foldPrologue(r, next, target, caps);
    }
  }
  if (!(target in rec.inputs) || prologue.exprs[target]) return rec;
  const pw = r.producer(rec.inputs[target]);
  if (pw?.attrs.op !== 'pointwise' || !only(rec.inputs[target], pw)) return rec;
  const inputs: Record<string, number> = { ...rec.inputs };
  delete inputs[target];
  const rename = joinPrologueInputs(inputs, pw.inputs);
  const pa = pw.attrs;
  const exprInputs = Object.fromEntries(Object.entries(pa.inputs).map(([n, i]) => [rename[n], i]));
  const expr = renameInputs(pa.expr, (n) => rename[n]);
  const p = { ...prologue, exprs: { ...prologue.exprs, [target]: { inputs: exprInputs, expr } } };
  return replace(p, inputs, pw) ?? rec;
}

/**
 * Join a pointwise op's inputs to a recurrence's (`inputs`, updated in place) for a prologue
 * expression, naming each tensor the name it already has in a fused prologue, or in_<its name
 * in the pointwise op> (suffixed when another tensor has that). Returns the op's name → joined
 * name. Shared with recurrence-shared-input (fuse-linear.ts).
 */
export function joinPrologueInputs(
  inputs: Record<string, number>,
  pwInputs: Record<string, number>,
): Record<string, string> {
  const rename: Record<string, string> = {};
  for (const [name, id] of Object.entries(pwInputs)) {
    const have = Object.entries(inputs).find(([n, t]) => t === id && n.startsWith('in_'));
    let fresh = `in_${name}`;
    for (let i = 2; !have && fresh in inputs; i++) fresh = `in_${name}${i}`;
    rename[name] = have ? have[0] : fresh;
    inputs[rename[name]] = id;
  }
  return rename;
}

export function fuseRecurrencePrologue(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const node of r.live()) {
    if (node.attrs.op !== 'linear_recurrence') continue;
    let rec = node as Recurrence;
    // beta before g: gated DeltaNet's g then reuses the b|a binding beta brought, which keeps
    // the fused kernel within 8 storage buffers.
    for (const target of ['q', 'k', 'beta', 'g'] as const) rec = foldPrologue(r, rec, target, caps);
  }
  return r.finish();
}

/** Whether a node placed after `from` and before `to` writes one of `reads`. */
function writtenBetween(r: Rewriter, from: GraphNode, to: GraphNode, reads: number[]): boolean {
  const nodes = r.live();
  const [i, j] = [nodes.indexOf(from), nodes.indexOf(to)];
  return nodes
    .slice(Math.min(i, j) + 1, Math.max(i, j))
    .some((n) => Object.values(n.outputs).some((t) => reads.includes(t)));
}

/** The pointwise input reads column c of a [T, cols] tensor for output column c. */
function identityColumns(i: PointwiseInput): boolean {
  return i.perToken && i.repeat === 1 && (i.offset ?? 0) === 0;
}

/**
 * A pointwise op whose input is a matmul's output (its only consumer) → the matmul's epilogue,
 * evaluated on each output element after bias, activation / gating and scale (MatmulAttrs'
 * epilogue), the pointwise op's other inputs joining the matmul's as `e_<name>`. The fused matmul
 * runs where the pointwise op ran, so the other inputs are ready. A pointwise op feeding a linear
 * recurrence is left to recurrence-prologue, which folds it with that input's l2 norm.
 */
export function fuseMatmulEpilogue(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const pw of r.live()) {
    if (pw.attrs.op !== 'pointwise') continue;
    const pa = pw.attrs;
    const users = r.consumers(pw.outputs.out);
    if (users.length === 1 && users[0].attrs.op === 'linear_recurrence') continue;
    for (const [name, t] of Object.entries(pw.inputs)) {
      const m = r.producer(t);
      if (!isMatmul(m) || r.soleConsumer(t) !== pw || m.outputs.out !== t) continue;
      const a = m.attrs;
      if (a.residual || a.ropeKv || a.splits || a.epilogue || a.rows !== 'T') continue;
      if (a.outStride !== a.N || a.outOffset !== 0 || pa.width !== a.N) continue;
      if (!identityColumns(pa.inputs[name]) || pa.inputs[name].cols !== a.N) continue;
      if (Object.entries(pw.inputs).some(([n, id]) => n !== name && id === t)) continue;
      if (writtenBetween(r, m, pw, Object.values(m.inputs))) continue;
      const rename = (n: string) => (n === name ? EPILOGUE_VALUE : `e_${n}`);
      const inputs: Record<string, PointwiseInput> = {};
      const bound: Record<string, number> = { ...m.inputs };
      for (const [n, i] of Object.entries(pa.inputs)) {
        if (n === name) continue;
        inputs[rename(n)] = i;
        bound[rename(n)] = pw.inputs[n];
      }
      const attrs: MatmulAttrs = {
        ...a,
        epilogue: { inputs, expr: renameInputs(pa.expr, rename) },
      };
      if (!fits(attrs, caps)) continue;
      r.replace(
        pw,
        attrs,
        bound,
        { out: pw.outputs.out },
        `${m.label}+${pw.label.replace(/^.*\./, '')}`,
      );
      r.remove(m);
      break;
    }
  }
  return r.finish();
}

/** glu activations a pointwise expression has. */
const GLU_FNS: Partial<Record<Activation, PointwiseFn>> = {
  silu: 'silu',
  sigmoid: 'sigmoid',
  relu: 'relu',
};

/**
 * The op as a pointwise expression over its inputs: a pointwise op itself, or a glu
 * act(gate) · up (the output gate before the linear mixers' o_proj) whose act has one.
 */
function asPointwise(a: OpAttrs): PointwiseAttrs | null {
  if (a.op === 'pointwise') return a;
  const fn = a.op === 'glu' ? GLU_FNS[a.act] : undefined;
  if (a.op !== 'glu' || !fn) return null;
  const whole = { perToken: true, cols: a.width, inner: a.width, repeat: 1 };
  return {
    op: 'pointwise',
    width: a.width,
    inputs: { gate: whole, up: whole },
    expr: { bin: 'mul', a: { fn, x: { in: 'gate' } }, b: { in: 'up' } },
  };
}

/**
 * A pointwise op (or a glu, as one) read only as the x of matmuls (no norm prologue), from at most two [T, K]
 * activations plus parameters → each matmul computes its x as it loads it (MatmulAttrs' xMap):
 * RWKV's six token mixes x + (shift − x)·μ, each feeding its projection. The activation read
 * first becomes the matmul's `x`, the other inputs `p_<name>`. The op goes once every consumer
 * took it.
 */
export function fuseMatmulPrologue(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const pw of r.live()) {
    const pa = asPointwise(pw.attrs);
    if (!pa) continue;
    const out = pw.outputs.out;
    const users = r.consumers(out);
    if (users.length === 0 || out === g.logits || out === g.token) continue;
    const ok = (u: GraphNode): u is Matmul =>
      isMatmul(u) &&
      !u.attrs.prologue &&
      !u.attrs.xMap &&
      !u.attrs.ropeKv &&
      u.attrs.rows === 'T' &&
      u.attrs.K === pa.width &&
      Object.entries(u.inputs).every(([k, id]) => (k === 'x') === (id === out));
    if (!users.every(ok)) continue;
    const acts = Object.entries(pa.inputs).filter(([, i]) => i.perToken);
    if (acts.length === 0 || acts.length > 2 || acts.some(([, i]) => i.cols !== pa.width)) continue;
    const first = exprInputs(pa.expr).find((n) => pa.inputs[n].perToken) ?? acts[0][0];
    const rename = (n: string) => (n === first ? 'x' : `p_${n}`);
    const inputs = Object.fromEntries(Object.entries(pa.inputs).map(([n, i]) => [rename(n), i]));
    const xMap = { inputs, expr: renameInputs(pa.expr, rename) };
    let kept = false;
    for (const u of users as Matmul[]) {
      const attrs: MatmulAttrs = { ...u.attrs, xMap };
      if (!fits(attrs, caps) || writtenBetween(r, pw, u, Object.values(pw.inputs))) {
        kept = true;
        continue;
      }
      const bound: Record<string, number> = { ...u.inputs };
      delete bound.x;
      for (const n of Object.keys(pa.inputs)) bound[rename(n)] = pw.inputs[n];
      r.replace(u, attrs, bound, u.outputs, `${u.label} (${pw.label.replace(/^.*\./, '')} fused)`);
    }
    if (!kept) r.remove(pw);
  }
  return r.finish();
}

type Node = GraphNode;

/** A plain RMSNorm over whole rows (no bias, no unit offset, no residual): Jamba's dt/B/C norms. */
function plainRms(n: Node | undefined): n is Node & { attrs: NormAttrs } {
  if (n?.attrs.op !== 'norm') return false;
  const a = n.attrs;
  return (
    a.norm.kind === 'rms' &&
    !a.norm.unitOffset &&
    !a.norm.bias &&
    !a.residual &&
    a.group === a.width &&
    !a.perChannel &&
    !a.phased
  );
}

/**
 * The largest x_proj weight (bytes) mamba1_step computes inside itself. WebGPU has no barrier
 * across workgroups, so every workgroup of the one-launch kernel reads the whole of x_proj
 * (codegen/kernels/ssm-step.ts), against a separate GEMV at the device's bandwidth plus one
 * dispatch. Measured (H100, 2026-12-06, bench/run.ts hybrid suite, f16, bench/results/
 * 2026-12-06-nvidia-h100-80gb-hbm3.json): the Jamba-style hybrid's 768 KiB x_proj inside the
 * step took 98 µs a layer (51% of a decode token), where the split form's x_proj matmul had
 * measured about 13 µs (H200, 2026-12-05, f32, timed in a pass of its own). Even at about a
 * tenth of that size: 64 KiB keeps tiny models' x_proj inside (the tests' shapes), and Mamba-130M
 * (0.47 MiB), the hybrid, Mamba-2.8B and Jamba get it as its own matmul. With it outside, the
 * hybrid's decode went from 2.102 to 0.998 GPU ms a token at f16 (471.8 → 1016.1 tok/s; x_proj
 * 11.6 µs and dt+scan 14.1 µs a layer, for 93 → 107 dispatches; H100, bench/results/
 * 2026-12-06-0408-nvidia-h100-80gb-hbm3.json).
 */
export const MAMBA1_STEP_XPROJ_BYTES = 64 << 10;

/**
 * Decode only (maxT 1): Mamba-1's x_proj row ranges (dt, B, C), their RMSNorms (Jamba), dt_proj
 * and the selective scan with its gate → one mamba1_step (src/ops/ssm.ts), its parameters packed
 * into one tensor; x_proj stays outside as one matmul when its weight exceeds
 * MAMBA1_STEP_XPROJ_BYTES. With conv-epilogue a Mamba layer decodes in three dispatches (in_proj
 * + conv, mamba1_step, out_proj), four with x_proj outside. Prefill keeps the unfused ops, whose
 * chunked scan and tiled matmuls suit many tokens. Skipped where the packed parameters exceed a
 * binding, x_proj's rows exceed the kernel's workgroup memory, or the kernel's storage buffers
 * exceed the device's.
 */
export function fuseMamba1Decode(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const scan of r.live()) {
    if (scan.attrs.op !== 'selective_scan') continue;
    // Decode: one token, or one token of each sequence of a batched step (rows are sequences).
    if (g.maxT !== (scan.attrs.batch ?? 1)) continue;
    const { dInner: D, dState: N } = scan.attrs;
    const xs = scan.inputs.x;
    // The matmul reading x that computes `t`, through an RMSNorm when there is one.
    const part = (t: number) => {
      const p = r.producer(t);
      const n = plainRms(p) && r.consumers(t).length === 1 ? p : null;
      const mt = n ? n.inputs.x : t;
      const m = r.producer(mt);
      if (!isPlain(m) || m.attrs.bias || m.inputs.x !== xs || m.attrs.K !== D) return null;
      if (m.attrs.wType !== 'f32' || r.consumers(mt).length !== 1) return null;
      return { m, n };
    };
    const dtm = r.producer(scan.inputs.dt);
    if (!isPlain(dtm) || !dtm.attrs.bias || dtm.attrs.N !== D || dtm.attrs.wType !== 'f32')
      continue;
    if (r.consumers(scan.inputs.dt).length !== 1) continue;
    const [pdt, pb, pc] = [dtm.inputs.x, scan.inputs.b, scan.inputs.c].map(part);
    if (!pdt || !pb || !pc || pb.m.attrs.N !== N || pc.m.attrs.N !== N) continue;
    if (pdt.m.attrs.N !== dtm.attrs.K) continue;
    // B and C read from the scan alone (a shared tensor would need both readers to agree).
    if (r.consumers(scan.inputs.b).length !== 1 || r.consumers(scan.inputs.c).length !== 1)
      continue;
    const norms = [pdt.n, pb.n, pc.n];
    const eps = norms[0]?.attrs.norm.eps ?? null;
    if (!norms.every((n) => (n === null ? eps === null : n.attrs.norm.eps === eps))) continue;
    const R = pdt.m.attrs.N + 2 * N;
    const attrs: Mamba1StepAttrs = {
      op: 'mamba1_step',
      dInner: D,
      dState: N,
      dtRank: dtm.attrs.K,
      normEps: eps,
      xProj: 4 * R * D <= MAMBA1_STEP_XPROJ_BYTES,
      ...(scan.attrs.batch ? { batch: scan.attrs.batch } : {}),
    };
    const pack = mamba1StepPack(attrs);
    if (pack.total * 4 > bindingLimit(caps)) continue;
    if (mamba1StepWorkgroupBytes(attrs, 256) > caps.maxWorkgroupStorageBytes) continue;
    if (bindingCount(definitionFor(attrs), attrs) > caps.maxStorageBuffersPerStage) continue;
    const src = (t: number) => r.source(t);
    const xw = [pdt, pb, pc].map((p) => p.m.inputs.w);
    const inputs: Record<string, number> = { x: xs, z: scan.inputs.z };
    let keep: Node | null = null;
    if (!attrs.xProj) {
      // x_proj as one matmul writing dt, B and C as one [T, R] row for the step to read.
      const w = r.concatParam(xw, [R, D]);
      inputs.dbc = r.activation(`${g.tensors[pdt.m.outputs.out].name.replace(/_dt$/, '')}_dbc`, [
        'T',
        R,
      ]);
      const mm: MatmulAttrs = { ...pdt.m.attrs, N: R, outStride: R };
      keep = r.replace(pdt.m, mm, { x: xs, w }, { out: inputs.dbc }, `${pdt.m.label}+x_b+x_c`);
    }
    const parts = [
      ...(attrs.xProj ? xw.map(src) : []),
      src(dtm.inputs.w),
      src(dtm.inputs.bias),
      src(scan.inputs.aLog),
      src(scan.inputs.d),
      ...norms.flatMap((n) => (n ? [src(n.inputs.w)] : [])),
    ];
    const base = g.tensors[scan.inputs.aLog].name.replace(/\.A_log$/, '');
    inputs.w = r.param(`${base}.step_pack`, [pack.total], { kind: 'concat', parts });
    inputs.state = scan.inputs.state;
    const what = attrs.xProj ? 'x_proj+dt+scan' : 'dt+scan';
    r.replace(
      scan,
      attrs,
      inputs,
      { out: scan.outputs.out, state: scan.outputs.state },
      `${scan.label.replace(/ selective scan$/, '')} ${what} (fused)`,
    );
    for (const n of [pdt.m, pdt.n, pb.m, pb.n, pc.m, pc.n, dtm]) if (n && n !== keep) r.remove(n);
  }
  return r.finish();
}

/**
 * Decode only (maxT 1): an SSD's per-head dtBias, aLog and d → one packed parameter (SsdAttrs.
 * packed), so its one-launch decode kernel binds 7 storage buffers instead of 9 and runs on
 * devices with WebGPU's default 8, where the unpacked SSD falls back to four chunked launches.
 */
export function fuseSsdDecode(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const n of r.live()) {
    if (n.attrs.op !== 'ssd' || n.attrs.packed) continue;
    // Decode: one token, or one of each sequence of a batched step (its batch stays in attrs).
    if (g.maxT !== (n.attrs.batch ?? 1)) continue;
    const attrs = { ...n.attrs, packed: true };
    if (bindingCount(definitionFor(attrs), attrs) > caps.maxStorageBuffersPerStage) continue;
    const { dtBias, aLog, d, ...rest } = n.inputs;
    const base = g.tensors[aLog].name.replace(/\.A_log$/, '');
    const p = r.param(`${base}.ssd_pack`, [3 * attrs.heads], {
      kind: 'concat',
      parts: [r.source(dtBias), r.source(aLog), r.source(d)],
    });
    r.replace(n, attrs, { ...rest, p }, n.outputs, `${n.label} (params packed)`);
  }
  return r.finish();
}

/**
 * Decode only (maxT 1): a causal conv1d whose x is a matmul's output (its first output when
 * split: Mamba's in_x of in_x+in_z), read by nothing else → the matmul's conv epilogue
 * (MatmulAttrs.conv), which updates the conv state as it writes. A Mamba layer's in_proj, norm and
 * conv then take one dispatch. Last of the fusions, so no later one folds more work after a conv.
 */
export function fuseConvEpilogue(g: Graph, { caps }: FusionOptions): Graph {
  const r = new Rewriter(g);
  for (const conv of r.live()) {
    if (conv.attrs.op !== 'conv1d') continue;
    const ca = conv.attrs;
    // Decode: one token, or one of each sequence of a batched step (a state slice per row).
    if (g.maxT !== (ca.batch ?? 1)) continue;
    const m = r.producer(conv.inputs.x);
    if (!isMatmul(m) || m.attrs.conv || m.attrs.ropeKv || m.attrs.rows !== 'T') continue;
    if (m.attrs.outOffset !== 0 || m.attrs.outStride !== m.attrs.N) continue;
    if (m.outputs.out !== conv.inputs.x || r.soleConsumer(conv.inputs.x) !== conv) continue;
    if ((m.attrs.splits ? m.attrs.splits[0] : m.attrs.N) !== ca.channels) continue;
    const reads = [conv.inputs.w, conv.inputs.state, ...(ca.bias ? [conv.inputs.bias] : [])];
    if (writtenBetween(r, m, conv, reads)) continue;
    const attrs: MatmulAttrs = {
      ...m.attrs,
      conv: {
        channels: ca.channels,
        kernel: ca.kernel,
        bias: ca.bias,
        silu: ca.silu,
        ...((ca.batch ?? 1) > 1 ? { batch: ca.batch } : {}),
      },
    };
    if (!fits(attrs, caps)) continue;
    const inputs: Record<string, number> = {
      ...m.inputs,
      convW: conv.inputs.w,
      convState: conv.inputs.state,
    };
    if (ca.bias) inputs.convB = conv.inputs.bias;
    r.replace(
      m,
      attrs,
      inputs,
      { ...m.outputs, out: conv.outputs.out, convState: conv.outputs.state },
      `${m.label} (+conv)`,
    );
    r.remove(conv);
  }
  return r.finish();
}

export const FUSION_PASSES = [
  { name: 'mamba1-decode', run: fuseMamba1Decode },
  { name: 'mamba2-decode', run: fuseMamba2Decode },
  { name: 'gated-norm-prologue', run: fuseGatedNormPrologue },
  { name: 'ssd-decode', run: fuseSsdDecode },
  { name: 'qkv-rope-append', run: fuseQkvRopeAppend },
  { name: 'qkv-append', run: fuseQkvAppend },
  { name: 'gated-mlp', run: fuseGatedMlp },
  { name: 'gated-mul', run: fuseGatedMul },
  { name: 'moe-decode', run: fuseMoeDecode },
  { name: 'shared-input', run: fuseSharedInput },
  { name: 'activation', run: fuseActivation },
  { name: 'matmul-epilogue', run: fuseMatmulEpilogue },
  { name: 'residual', run: fuseResidual },
  { name: 'norm-residual', run: fuseNormResidual },
  { name: 'norm-prologue', run: fuseNormPrologue },
  { name: 'shared-input-normed', run: fuseSharedInputNormed },
  { name: 'matmul-prologue', run: fuseMatmulPrologue },
  // RWKV-7's mixed projections as split matmuls (src/passes/fuse-rwkv7.ts). Named here, not
  // spread from a list there: fuse-rwkv7.ts imports this module, and only function declarations
  // are initialised across that cycle, whichever module loads first.
  { name: 'rwkv7-norm-shift', run: fuseRwkv7NormShift },
  { name: 'rwkv7-lora-act', run: fuseRwkv7LoraAct },
  { name: 'rwkv7-projections', run: fuseRwkv7Projections },
  { name: 'recurrence-prologue', run: fuseRecurrencePrologue },
  // After recurrence-prologue, which folds the decay's expression into the recurrence first.
  { name: 'rwkv7-recurrence', run: fuseRwkv7Recurrence },
  { name: 'rwkv7-lora-up', run: fuseRwkv7LoraUp },
  { name: 'recurrence-shared-input', run: fuseRecurrenceSharedInput },
  { name: 'recurrence-conv-row', run: fuseRecurrenceConvRow },
  { name: 'recurrence-low-rank', run: fuseRecurrenceLowRank },
  { name: 'conv-epilogue', run: fuseConvEpilogue },
] as const;
