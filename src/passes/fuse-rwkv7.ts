/**
 * RWKV-7 decode fusions (issue 18): the projections of one token mix as few matmuls as the
 * device's bindings allow.
 *
 * After matmul-prologue, RWKV-7's time mix has six matmuls (r, k, v (+ v_lora.down), w_lora.down,
 * a_lora.down, g_lora.down) that all read the same normed x and shifted x′ through x maps
 * x + (x′ − x)·μ differing only in μ. These passes make them one GEMV per binding budget:
 *   rwkv7-lora-act     (decode only) a LoRA down-projection's tanh / sigmoid (w_lora, g_lora)
 *                      → its up-projection's x map, so the down-projection is a plain mixed
 *                      projection like r and k
 *   rwkv7-projections  (decode only) matmuls with x maps of one form over the same activations,
 *                      differing in their parameters (μ) → one split matmul whose output i reads
 *                      x through its own map (MatmulAttrs.splitXMaps), the differing parameters
 *                      concatenated into one, each map reading its range through `offset`
 * Both are exact: every output element is the same dot product over the same mapped x, and each
 * moved activation is evaluated on the same value before the same products.
 *
 * Decode only (maxT 1): splitXMaps exist in the GEMV alone; prefill's tiled matmuls share one x
 * tile across all columns of a tile, and at prefill sizes six separate matmuls each saturate the
 * device anyway, so prefill keeps its form.
 *
 * With WebGPU's baseline 8 storage buffers a merged matmul binds x, x′, μ, w and at most four
 * outputs, so the seven outputs of a later RWKV-7 layer (r, k, v, v_lora.down, w, a, g downs)
 * take two dispatches (six before); a device with more bindings takes one.
 *
 * Every choice here is the compile's caps' (maxStorageBuffersPerStage; runtime/gpu.ts asks the
 * adapter for its largest), never a fallback at run time: a bundle records its caps and
 * runtime/fits.ts refuses a device that binds fewer. A later layer's time mix decodes in
 *   8 storage buffers   7 dispatches: norm + shift, 2 mixed projections, v_lora.up, the
 *                       recurrence (w and a LoRA ups in it), g_lora.up, o_proj (the first layer,
 *                       without v_lora, 6)
 *   9                   as 8
 *   10                  6: the recurrence takes v_lora.up and v_mix too (rwkv7.lora.vRank);
 *                       the first layer's six outputs take one projection (5)
 *   11 and more         5: the seven outputs take one projection
 * (test/model/rwkv7-decode-fusion.test.ts pins these; `strata inspect --storage-buffers N`
 * counts a model's.) Each graph is exact, so all of them compute the unfused graph's logits.
 */
import type { Graph, GraphNode } from '../graph/ir.ts';
import {
  EPILOGUE_VALUE,
  splitOutput,
  type FusedPointwise,
  type LinearRecurrenceAttrs,
  type MatmulAttrs,
  type PointwiseExpr,
  type PointwiseInput,
} from '../graph/ops.ts';
import { definitionFor } from '../ops/index.ts';
import { bindingCount } from '../ops/types.ts';
import { RWKV7_DECAY_SCALE, rwkv7ParamCols } from '../ops/rwkv7-recurrence.ts';
import { renameInputs } from '../ops/pointwise.ts';
import type { DeviceCaps } from '../target.ts';
import { Rewriter } from './rewrite.ts';
import { fits, isMatmul, type Matmul } from './fuse.ts';

/** A matmul whose only fused work is an x map (and possibly splits): a mixed projection. */
function mixedProjection(m: GraphNode, allowEpilogue = false): m is Matmul {
  if (!isMatmul(m)) return false;
  const a = m.attrs;
  return (
    !!a.xMap &&
    !a.splitXMaps &&
    !a.act &&
    !a.gated &&
    !a.bias &&
    !a.residual &&
    a.scale === 1 &&
    !a.prologue &&
    !a.ropeKv &&
    (allowEpilogue || !a.epilogue) &&
    !a.conv &&
    a.rows === 'T' &&
    a.outOffset === 0 &&
    a.outStride === a.N
  );
}

/**
 * A mixed projection's epilogue that reads nothing but the value (the LoRAs' tanh and sigmoid),
 * when its one output feeds only the x of one matmul with no x map or norm prologue (the LoRA's
 * up-projection) → that matmul's x map, evaluated on the same value as it loads it.
 */
export function fuseRwkv7LoraAct(g: Graph, { caps }: { caps: DeviceCaps }): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  for (const m of r.live()) {
    if (!mixedProjection(m, true) || m.attrs.splits) continue;
    const epi = m.attrs.epilogue;
    if (!epi || Object.keys(epi.inputs).length > 0) continue;
    const up = r.soleConsumer(m.outputs.out);
    if (!isMatmul(up) || up.attrs.xMap || up.attrs.prologue || up.attrs.ropeKv) continue;
    if (up.attrs.rows !== 'T' || up.attrs.K !== m.attrs.N) continue;
    if (Object.entries(up.inputs).some(([k, id]) => (k === 'x') !== (id === m.outputs.out)))
      continue;
    const K = m.attrs.N;
    const xMap: FusedPointwise = {
      inputs: { x: { perToken: true, cols: K, inner: K, repeat: 1 } },
      expr: renameInputs(epi.expr, (n) => (n === EPILOGUE_VALUE ? 'x' : n)),
    };
    const upAttrs: MatmulAttrs = { ...up.attrs, xMap };
    if (!fits(upAttrs, caps)) continue;
    const [down, what] = m.label.replace(/ \(.*\)$/, '').split(/\+(?=[^+]*$)/);
    r.replace(m, { ...m.attrs, epilogue: null }, m.inputs, m.outputs, down);
    r.replace(up, upAttrs, up.inputs, up.outputs, `${up.label} (${what ?? 'epilogue'} fused)`);
  }
  return r.finish();
}

/** What members of one merge share: the map's form and every activation it reads. */
function groupKey(m: Matmul): string {
  const a = m.attrs;
  const map = a.xMap!;
  const acts = Object.keys(map.inputs)
    .sort()
    .map((n) => `${n}:${map.inputs[n].perToken ? m.inputs[n] : 'param'}`);
  return JSON.stringify([a.K, a.wType, a.xType, map, acts]);
}

/** One output column range of a member: its width and the tensor it is written to. */
interface Part {
  member: number;
  n: number;
  out: number;
}

function partsOf(ms: Matmul[]): Part[] {
  return ms.flatMap((m, member) =>
    (m.attrs.splits ?? [m.attrs.N]).map((n, i) => ({ member, n, out: m.outputs[splitOutput(i)] })),
  );
}

/** The x map's parameters that differ between members (they are concatenated). */
function differing(ms: Matmul[]): string[] {
  const map = ms[0].attrs.xMap!;
  return Object.keys(map.inputs).filter(
    (n) => !map.inputs[n].perToken && ms.some((m) => m.inputs[n] !== ms[0].inputs[n]),
  );
}

function mergedAttrs(ms: Matmul[]): MatmulAttrs {
  const parts = partsOf(ms);
  const N = parts.reduce((s, p) => s + p.n, 0);
  const map = ms[0].attrs.xMap!;
  const concat = differing(ms);
  const mapOf = (member: number): FusedPointwise => ({
    expr: map.expr,
    inputs: Object.fromEntries(
      Object.entries(map.inputs).map(([n, i]): [string, PointwiseInput] =>
        concat.includes(n)
          ? [n, { ...i, cols: i.cols * ms.length, offset: (i.offset ?? 0) + member * i.cols }]
          : [n, i],
      ),
    ),
  });
  const maps = parts.map((p) => mapOf(p.member));
  return {
    ...ms[0].attrs,
    N,
    outStride: N,
    splits: parts.map((p) => p.n),
    xMap: maps[0],
    splitXMaps: maps,
  };
}

/**
 * Mixed projections of one x-map form over the same activations → split matmuls with per-split
 * maps, greedily in graph order, each as many as the bindings allow.
 */
export function fuseRwkv7Projections(g: Graph, { caps }: { caps: DeviceCaps }): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  const groups = new Map<string, Matmul[]>();
  for (const n of r.live()) {
    if (!mixedProjection(n)) continue;
    const key = groupKey(n);
    const group = groups.get(key);
    if (group) group.push(n);
    else groups.set(key, [n]);
  }
  for (const members of groups.values()) {
    let rest = members;
    while (rest.length > 1) {
      const take: Matmul[] = [rest[0]];
      const left: Matmul[] = [];
      for (const m of rest.slice(1)) {
        if (fits(mergedAttrs([...take, m]), caps)) take.push(m);
        else left.push(m);
      }
      rest = left;
      if (take.length > 1) merge(r, take);
    }
  }
  return r.finish();
}

function merge(r: Rewriter, take: Matmul[]): void {
  const attrs = mergedAttrs(take);
  const inputs: Record<string, number> = {
    ...take[0].inputs,
    w: r.concatParam(
      take.map((m) => m.inputs.w),
      [attrs.N, attrs.K],
    ),
  };
  for (const n of differing(take)) {
    const cols = take[0].attrs.xMap!.inputs[n].cols;
    inputs[n] = r.concatParam(
      take.map((m) => m.inputs[n]),
      [cols * take.length],
    );
  }
  const outputs = Object.fromEntries(partsOf(take).map((p, i) => [splitOutput(i), p.out]));
  // l1.rwkv7.r, l1.rwkv7.w_lora.down → l1.rwkv7.r+w_lora.down: the labels' common prefix up to
  // a dot, once.
  const short = take.map((m) => m.label.replace(/ \(.*\)$/, ''));
  let cut = short[0].lastIndexOf('.') + 1;
  while (cut > 0 && !short.every((l) => l.startsWith(short[0].slice(0, cut))))
    cut = short[0].lastIndexOf('.', cut - 2) + 1;
  const label = `${short[0]}+${short
    .slice(1)
    .map((l) => l.slice(cut))
    .join('+')} (mixes fused)`;
  r.replace(take[0], attrs, inputs, outputs, label);
  for (const m of take.slice(1)) r.remove(m);
}

/**
 * A token_shift of a norm's output (RWKV's time and channel mixes) → the norm (NormAttrs.shift),
 * which hands each row's predecessor out as it writes the row: one dispatch for both.
 */
export function fuseRwkv7NormShift(g: Graph): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  for (const ts of r.live()) {
    if (ts.attrs.op !== 'token_shift' || (ts.attrs.batch ?? 1) > 1) continue;
    const n = r.producer(ts.inputs.x);
    if (n?.attrs.op !== 'norm' || n.outputs.out !== ts.inputs.x) continue;
    const na = n.attrs;
    if (na.shift || na.residual || na.group !== na.width || na.width !== ts.attrs.width) continue;
    if (na.norm.kind === 'l2') continue;
    r.replace(
      n,
      { ...na, shift: true },
      { ...n.inputs, state: ts.inputs.state },
      { out: n.outputs.out, prev: ts.outputs.out, state: ts.outputs.state },
      `${n.label} + token shift`,
    );
    r.remove(ts);
  }
  return r.finish();
}

// ---------------------------------------------------------------------------------------------
// rwkv7-recurrence: the key preparation before RWKV-7's dplr recurrence and the output correction
// after it → the recurrence (LinearRecurrenceAttrs.rwkv7).

const ref = (n: string): PointwiseExpr => ({ in: n });
const num = (v: number): PointwiseExpr => ({ const: v });
const bin = (op: 'add' | 'sub' | 'mul', a: PointwiseExpr, b: PointwiseExpr): PointwiseExpr => ({
  bin: op,
  a,
  b,
});

/** The forms src/mixers/rwkv7.ts lowers, over the roles their inputs play. */
const FORMS = {
  kkIn: bin('mul', ref('k'), ref('k_k')),
  kMix: bin(
    'mul',
    ref('k'),
    bin('add', num(1), bin('mul', bin('sub', ref('a'), num(1)), ref('k_a'))),
  ),
  dplrA: bin('mul', ref('kk'), ref('a')),
  dplrB: { fn: 'neg', x: ref('kk') } as PointwiseExpr,
  rk: bin('mul', bin('mul', ref('r'), ref('k')), ref('r_k')),
  out: bin('mul', bin('add', ref('e_o'), bin('mul', ref('e_u'), ref('e_v'))), ref(EPILOGUE_VALUE)),
};

/**
 * The pointwise op's inputs by role when its expression is `form` with input names `names`
 * (its name → the role), each row input read whole (columns c of [T, width]) and each parameter
 * [width] alike; null otherwise.
 */
function roles(
  n: GraphNode | undefined,
  form: PointwiseExpr,
  names: Record<string, string>,
): Record<string, number> | null {
  if (n?.attrs.op !== 'pointwise') return null;
  const a = n.attrs;
  if (Object.keys(a.inputs).length !== Object.keys(names).length) return null;
  const whole = (i: PointwiseInput) =>
    i.cols === a.width && i.inner === a.width && i.repeat === 1 && (i.offset ?? 0) === 0;
  if (!Object.entries(a.inputs).every(([k, i]) => k in names && whole(i))) return null;
  if (JSON.stringify(renameInputs(a.expr, (k) => names[k] ?? k)) !== JSON.stringify(form))
    return null;
  return Object.fromEntries(Object.entries(names).map(([k, role]) => [role, n.inputs[k]]));
}

/** Input name → role: whatever the op calls its inputs, matched by position in the form. */
function namesOf(n: GraphNode | undefined, form: PointwiseExpr): Record<string, string> | null {
  if (n?.attrs.op !== 'pointwise') return null;
  const order = (e: PointwiseExpr, out: string[]): string[] => {
    if ('in' in e) out.push(e.in);
    else if ('fn' in e) order(e.x, out);
    else if ('bin' in e) order(e.b, order(e.a, out));
    return out;
  };
  const theirs = order(n.attrs.expr, []);
  const ours = order(form, []);
  if (theirs.length !== ours.length) return null;
  const m: Record<string, string> = {};
  for (const [i, t] of theirs.entries()) {
    if (m[t] !== undefined && m[t] !== ours[i]) return null;
    m[t] = ours[i];
  }
  return m;
}

const match = (n: GraphNode | undefined, form: PointwiseExpr) => {
  const names = namesOf(n, form);
  return names ? roles(n, form, names) : null;
};

/**
 * RWKV-7's kk_in, kk l2 norm, k_mix, dplr_a, dplr_b (the recurrence's k, a and b) and its group
 * norm, rk and bonus group_sum (the g_lora.up epilogue's o and u) → the recurrence itself, which
 * then reads the raw k and a and one packed parameter instead of k, a and b (one binding less,
 * so it fits where b did), and writes GroupNorm(o) + bonus·v; the epilogue becomes y · o.
 */
export function fuseRwkv7Recurrence(g: Graph, { caps }: { caps: DeviceCaps }): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  for (const node of r.live()) {
    if (node.attrs.op !== 'linear_recurrence') continue;
    const ra = node.attrs;
    if (ra.rwkv7 || ra.update !== 'dplr' || ra.decay !== 'key' || ra.scale !== 1) continue;
    if ((ra.batch ?? 1) > 1 || ra.normalize) continue;
    const heads = [ra.qHeads, ra.kHeads, ra.vHeads, ra.gateHeads];
    if (heads.some((h) => h !== ra.heads)) continue;
    const pro = ra.prologue;
    if (pro && (pro.rope || Object.keys(pro.l2).length || pro.exprs.q || pro.exprs.k)) continue;
    const K = ra.heads * ra.keyDim;
    const V = ra.heads * ra.valueDim;
    const sole = (t: number, n: GraphNode) => {
      const users = r.consumers(t);
      return users.length === 1 && users[0] === n;
    };
    // Before: b = −kk, a = kk·a, kk = l2norm(k·k_k), k = k·(1 + (a − 1)·k_a).
    const bNode = r.producer(node.inputs.b);
    const aNode = r.producer(node.inputs.a);
    const kNode = r.producer(node.inputs.k);
    const b = match(bNode, FORMS.dplrB);
    const a = match(aNode, FORMS.dplrA);
    const km = match(kNode, FORMS.kMix);
    if (!b || !a || !km || a.kk !== b.kk || km.a !== a.a) continue;
    const l2 = r.producer(b.kk);
    if (l2?.attrs.op !== 'norm' || l2.attrs.norm.kind !== 'l2' || l2.attrs.residual) continue;
    if (l2.attrs.group !== ra.keyDim || l2.attrs.width !== K) continue;
    const kkInNode = r.producer(l2.inputs.x);
    const kkIn = match(kkInNode, FORMS.kkIn);
    if (!kkIn || kkIn.k !== km.k) continue;
    // After: gnorm = GroupNorm(o), rk = r·k·r_k, bonus = Σ_head rk, out = (gnorm + bonus·v)·y.
    const gn = r.soleConsumer(node.outputs.out);
    if (gn?.attrs.op !== 'norm' || !sole(node.outputs.out, gn)) continue;
    const gna = gn.attrs;
    const layer = gna.norm;
    if (layer.kind !== 'layer' || !layer.bias || layer.unitOffset || gna.residual) continue;
    if (!gna.perChannel || gna.group !== ra.valueDim || gna.width !== V || !gn.inputs.b) continue;
    const rkNode = r.consumers(kNode!.outputs.out).find((n) => n !== node);
    const rk = match(rkNode, FORMS.rk);
    if (!rk || rk.r !== node.inputs.q || rk.k !== kNode!.outputs.out) continue;
    const gs = r.soleConsumer(rkNode!.outputs.out);
    if (gs?.attrs.op !== 'group_sum' || gs.attrs.group !== ra.keyDim) continue;
    const m = r.soleConsumer(gn.outputs.out);
    if (!isMatmul(m) || !m.attrs.epilogue || r.soleConsumer(gs.outputs.out) !== m) continue;
    const epi = m.attrs.epilogue;
    if (JSON.stringify(epi.expr) !== JSON.stringify(FORMS.out)) continue;
    if (m.inputs.e_o !== gn.outputs.out || m.inputs.e_u !== gs.outputs.out) continue;
    if (m.inputs.e_v !== node.inputs.v) continue;
    // Every removed op feeds only what is fused here.
    const only = (n: GraphNode, users: GraphNode[]) =>
      r.consumers(n.outputs.out).every((u) => users.includes(u));
    if (!only(kkInNode!, [l2]) || !only(l2, [aNode!, bNode!]) || !only(aNode!, [node])) continue;
    if (!only(bNode!, [node]) || !only(kNode!, [node, rkNode!]) || !only(rkNode!, [gs])) continue;
    // The recurrence moves to where the epilogue's inputs were ready; its own inputs (the raw k
    // and a, q, v, the decay) are ready before where it stands now, and nothing between writes
    // them (the graph is single-assignment for activations).
    const attrs: LinearRecurrenceAttrs = {
      ...ra,
      rwkv7: { kkEps: l2.attrs.norm.eps, normEps: layer.eps },
    };
    const inputs: Record<string, number> = { ...node.inputs, k: km.k, a: km.a };
    delete inputs.b;
    const parts = [kkIn.k_k, km.k_a, rk.r_k, gn.inputs.w, gn.inputs.b];
    inputs.rwkv = r.concatParam(parts, [3 * K + 2 * V]);
    if (bindingCount(definitionFor(attrs), attrs) > caps.maxStorageBuffersPerStage) continue;
    r.replace(
      node,
      attrs,
      inputs,
      { ...node.outputs, out: gn.outputs.out },
      `${node.label.replace(/ \(.*\)$/, '')} (rwkv7 k, a, b, group norm, bonus fused)`,
    );
    const mAttrs: MatmulAttrs = {
      ...m.attrs,
      epilogue: {
        inputs: { e_o: epi.inputs.e_o },
        expr: bin('mul', ref(EPILOGUE_VALUE), ref('e_o')),
      },
    };
    const mInputs: Record<string, number> = { ...m.inputs };
    delete mInputs.e_u;
    delete mInputs.e_v;
    r.replace(m, mAttrs, mInputs, m.outputs, m.label);
    for (const n of [kkInNode!, l2, aNode!, bNode!, kNode!, gn, rkNode!, gs]) r.remove(n);
  }
  return r.finish();
}

/** The decay op's form on the recurrence's g input: −e^(−0.5)·sigmoid(in_x). */
function isRwkv7Decay(e: FusedPointwise | undefined): string | null {
  if (!e || Object.keys(e.inputs).length !== 1) return null;
  const [name] = Object.keys(e.inputs);
  const want: PointwiseExpr = bin('mul', num(-RWKV7_DECAY_SCALE), {
    fn: 'sigmoid',
    x: ref(name),
  });
  return JSON.stringify(e.expr) === JSON.stringify(want) ? name : null;
}

/** A plain LoRA up-projection (bias, one output, T rows) reading its x through `xMap`. */
function loraUp(m: GraphNode | undefined, N: number): m is Matmul {
  if (!isMatmul(m)) return false;
  const a = m.attrs;
  return (
    a.N === N &&
    a.bias &&
    !a.gated &&
    !a.act &&
    !a.residual &&
    a.scale === 1 &&
    !a.prologue &&
    !a.ropeKv &&
    !a.splits &&
    !a.conv &&
    a.rows === 'T' &&
    a.outStride === N &&
    a.outOffset === 0 &&
    a.wType === 'f32'
  );
}

/**
 * After rwkv7-recurrence: the decay's LoRA up (tanh(x) as its x map, then the decay expression
 * in the recurrence's prologue) and the in-context rate's (sigmoid as its epilogue) → the
 * recurrence (rwkv7.lora), each head computing its own key columns from the rank-wide downs:
 * their weights are read once in all, spread over the heads' workgroups. The inputs w_d and a_d
 * replace in_x and a, so the bindings stay as they were.
 */
export function fuseRwkv7LoraUp(g: Graph, { caps }: { caps: DeviceCaps }): Graph {
  if (g.maxT !== 1) return g;
  const r = new Rewriter(g);
  for (const node of r.live()) {
    if (node.attrs.op !== 'linear_recurrence') continue;
    const ra = node.attrs;
    if (!ra.rwkv7 || ra.rwkv7.lora) continue;
    const p = ra.prologue;
    if (!p || p.rope || Object.keys(p.l2).length || Object.keys(p.exprs).length !== 1) continue;
    const xName = isRwkv7Decay(p.exprs.g);
    if (!xName) continue;
    const K = ra.heads * ra.keyDim;
    const w = r.producer(node.inputs[xName]);
    const a = r.producer(node.inputs.a);
    if (!loraUp(w, K) || !loraUp(a, K)) continue;
    if (r.soleConsumer(w.outputs.out) !== node || r.soleConsumer(a.outputs.out) !== node) continue;
    if (r.consumers(w.outputs.out).length !== 1 || r.consumers(a.outputs.out).length !== 1)
      continue;
    const tanhMap: FusedPointwise = {
      inputs: { x: { perToken: true, cols: w.attrs.K, inner: w.attrs.K, repeat: 1 } },
      expr: { fn: 'tanh', x: ref('x') },
    };
    if (w.attrs.epilogue || JSON.stringify(w.attrs.xMap) !== JSON.stringify(tanhMap)) continue;
    const sig: PointwiseExpr = { fn: 'sigmoid', x: ref(EPILOGUE_VALUE) };
    const ae = a.attrs.epilogue;
    if (
      a.attrs.xMap ||
      !ae ||
      Object.keys(ae.inputs).length ||
      JSON.stringify(ae.expr) !== JSON.stringify(sig)
    )
      continue;
    // The value residual's LoRA up and v_mix (later layers) when the bindings allow: v + (v_first
    // − v)·sigmoid(y) as v_lora.up's epilogue, reading the raw v and the first layer's.
    const vUp = r.producer(node.inputs.v);
    const V = ra.heads * ra.valueDim;
    const vMix: PointwiseExpr = bin(
      'add',
      ref('e_v'),
      bin('mul', bin('sub', ref('e_first'), ref('e_v')), { fn: 'sigmoid', x: ref(EPILOGUE_VALUE) }),
    );
    const withV =
      loraUp(vUp, V) &&
      !vUp.attrs.xMap &&
      JSON.stringify(vUp.attrs.epilogue?.expr) === JSON.stringify(vMix) &&
      r.consumers(vUp.outputs.out).length === 1 &&
      r.soleConsumer(vUp.outputs.out) === node
        ? vUp
        : null;
    const build = (v: Matmul | null) => {
      const lora = { decayRank: w.attrs.K, aRank: a.attrs.K, ...(v ? { vRank: v.attrs.K } : {}) };
      const attrs: LinearRecurrenceAttrs = { ...ra, rwkv7: { ...ra.rwkv7!, lora } };
      delete attrs.prologue;
      const inputs: Record<string, number> = { ...node.inputs, w_d: w.inputs.x, a_d: a.inputs.x };
      delete inputs[xName];
      delete inputs.a;
      const parts = [node.inputs.rwkv, w.inputs.w, w.inputs.bias, a.inputs.w, a.inputs.bias];
      if (v) {
        inputs.v = v.inputs.e_v;
        inputs.v_first = v.inputs.e_first;
        inputs.v_d = v.inputs.x;
        parts.push(v.inputs.w, v.inputs.bias);
      }
      return { attrs, inputs, parts };
    };
    const fits = (b: ReturnType<typeof build>) =>
      bindingCount(definitionFor(b.attrs), b.attrs) <= caps.maxStorageBuffersPerStage;
    let built = withV ? build(withV) : null;
    if (!built || !fits(built)) built = build(null);
    if (!fits(built)) continue;
    const { attrs, inputs, parts } = built;
    inputs.rwkv = r.concatParam(parts, [rwkv7ParamCols(attrs)]);
    const ups = attrs.rwkv7?.lora?.vRank ? 'w, a and v LoRA ups' : 'w and a LoRA ups';
    r.replace(
      node,
      attrs,
      inputs,
      node.outputs,
      node.label.replace(/ fused\)$/, `, ${ups} fused)`),
    );
    r.remove(w);
    r.remove(a);
    if (attrs.rwkv7?.lora?.vRank && withV) r.remove(withV);
  }
  return r.finish();
}
