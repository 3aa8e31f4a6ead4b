/**
 * The unified linear recurrence of linear attention and its relatives (the survey's form; the
 * semantics are LinearRecurrenceAttrs' in src/graph/ops.ts): per state head, S ← D_t S plus an
 * 'add', 'delta' or 'dplr' update, o_t = S_tᵀ (scale · q_t), optionally normalised. Linear
 * attention, RetNet, GLA, HGRN2, Mamba-2's scalar decay, DeltaNet, the gated delta rule
 * (Qwen3-Next, src/graph/blocks/deltanet.ts) and RWKV-7 are instances. The reference runs it token
 * by token in f64; the kernels (codegen/kernels/linear-recurrence.ts) are tested against it.
 */
import type { LinearRecurrenceAttrs, PrologueInput, StepShape } from '../graph/ops.ts';
import type { Dim } from '../graph/ir.ts';
import { normalizeRow } from './math.ts';
import { exprFlops, pointwise } from './pointwise.ts';
import { rope } from './rope.ts';
import { checkRwkv7, rwkv7InputRules, rwkv7Finish, rwkv7Prepare } from './rwkv7-recurrence.ts';
import { f32, inPlace, rule, type Arrays, type OpDefinition, type TensorRule } from './types.ts';

/** The head of an input with `of` heads that state head h reads (heads repeated in blocks). */
export function headOf(h: number, heads: number, of: number): number {
  return Math.floor(h / (heads / of));
}

/** State columns per key row: valueDim, plus the normaliser's running key sum. */
export function stateColumns(a: LinearRecurrenceAttrs): number {
  return a.valueDim + (a.normalize ? 1 : 0);
}

function decayShape(a: LinearRecurrenceAttrs): Dim[] {
  if (a.decay === 'fixed') return [a.gateHeads];
  return a.decay === 'head' ? ['T', a.gateHeads] : ['T', a.gateHeads * a.keyDim];
}

/** The recurrence's own inputs (and output names): a fused prologue's inputs take other names. */
const OWN_NAMES = ['q', 'k', 'v', 'g', 'beta', 'a', 'b', 'state', 'out', 'rope_cos', 'rope_sin'];

/** The inputs the recurrence reads before any prologue, in binding order. */
function ownInputs(a: LinearRecurrenceAttrs): Record<string, TensorRule> {
  const r: Record<string, TensorRule> = {
    q: rule(['T', a.qHeads * a.keyDim]),
    k: rule(['T', a.kHeads * a.keyDim]),
    v: rule(['T', a.vHeads * a.valueDim]),
  };
  if (a.decay !== 'none') r.g = rule(decayShape(a));
  if (a.update === 'delta') r.beta = rule(['T', a.gateHeads]);
  if (a.update === 'dplr') {
    r.a = rule(['T', a.gateHeads * a.keyDim]);
    r.b = rule(['T', a.gateHeads * a.keyDim]);
  }
  r.state = inPlace([a.heads, a.keyDim, stateColumns(a)]);
  return r;
}

/** Columns per token of an input a prologue may compute (null: it has no per-token rows). */
function prologueWidth(a: LinearRecurrenceAttrs, name: PrologueInput): number | null {
  const rows = ownInputs(a)[name]?.shape;
  return rows && rows.length === 2 && rows[0] === 'T' ? (rows[1] as number) : null;
}

/** Checks a prologue against the attributes it sits in; throws naming what is wrong. */
function checkPrologue(a: LinearRecurrenceAttrs): void {
  const where = 'linear_recurrence prologue';
  const p = a.prologue;
  if (!p) return;
  const seen = new Map<string, string>();
  for (const [target, e] of Object.entries(p.exprs)) {
    const width = prologueWidth(a, target as PrologueInput);
    if (width === null) throw new Error(`${where}: '${target}' is not a per-token input here`);
    pointwise.check({ op: 'pointwise', width, inputs: e.inputs, expr: e.expr });
    for (const [name, i] of Object.entries(e.inputs)) {
      if (OWN_NAMES.includes(name)) {
        throw new Error(`${where}: input '${name}' of '${target}' takes a name of the recurrence`);
      }
      const shape = `${i.perToken ? 'T, ' : ''}${i.cols}`;
      if (seen.has(name) && seen.get(name) !== shape) {
        throw new Error(`${where}: '${name}' is read as [${seen.get(name)}] and [${shape}]`);
      }
      seen.set(name, shape);
    }
  }
  const lr = p.lowRank;
  if (lr) {
    const shape = seen.get(lr.name);
    if (shape !== `T, ${lr.cols}`)
      throw new Error(
        `${where}: lowRank '${lr.name}' must be an expression input read as [T, ${lr.cols}], got ${shape ?? 'none'}`,
      );
    if (!Number.isInteger(lr.rank) || lr.rank < 1)
      throw new Error(`${where}: lowRank rank must be a positive integer, got ${lr.rank}`);
  }
  if (p.rope) {
    const { of, rotaryDim: rd, capacity } = p.rope;
    if (of.length === 0 || of.some((n) => n !== 'q' && n !== 'k') || new Set(of).size < of.length)
      throw new Error(`${where}: rope rotates q and/or k, got [${of}]`);
    if (rd % 2 !== 0 || rd <= 0 || rd > a.keyDim || !Number.isInteger(capacity) || capacity < 1)
      throw new Error(`${where}: rope needs an even rotaryDim in (0, keyDim], got ${rd}`);
  }
  for (const [target, eps] of Object.entries(p.l2)) {
    if (!['q', 'k'].includes(target) || !(Number.isFinite(eps) && eps >= 0)) {
      throw new Error(`${where}: l2 needs q or k and a finite eps >= 0, got ${target}: ${eps}`);
    }
  }
}

/**
 * The recurrence's inputs as the core reads them: each prologue expression evaluated (by the
 * pointwise op's reference) and each l2 norm applied (by the norm op's row function), so a fused
 * node computes exactly what the unfused ops did.
 */
function applyPrologue(a: LinearRecurrenceAttrs, inputs: Arrays, step: StepShape): Arrays {
  const p = a.prologue;
  if (!p) return inputs;
  const { T } = step;
  const eff: Arrays = { ...inputs };
  const lr = p.lowRank;
  if (lr) {
    // The computed input: b + W x per token (f64 sums, f32 values as a matmul would give).
    const x = f32(inputs, `${lr.name}_x`);
    const w = f32(inputs, `${lr.name}_w`);
    const b = lr.bias ? f32(inputs, `${lr.name}_b`) : null;
    const v = new Float32Array(T * lr.cols);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < lr.cols; c++) {
        let s = b ? b[c] : 0;
        for (let k = 0; k < lr.rank; k++) s += w[c * lr.rank + k] * x[t * lr.rank + k];
        v[t * lr.cols + c] = s;
      }
    eff[lr.name] = v;
  }
  for (const [target, e] of Object.entries(p.exprs)) {
    const width = prologueWidth(a, target as PrologueInput)!;
    eff[target] = pointwise.reference(
      { op: 'pointwise', width, ...e },
      lr ? eff : inputs,
      step,
    ).out;
  }
  for (const target of p.rope?.of ?? []) {
    const heads = prologueWidth(a, target)! / a.keyDim;
    const attrs = {
      op: 'rope',
      heads,
      headDim: a.keyDim,
      rotaryDim: p.rope!.rotaryDim,
      capacity: p.rope!.capacity,
    } as const;
    const tables = { x: eff[target], cos: eff.rope_cos, sin: eff.rope_sin };
    eff[target] = rope.reference({ ...attrs, pairs: 'half' }, tables, step).out;
  }
  for (const [target, eps] of Object.entries(p.l2)) {
    const x = f32(eff, target);
    const width = prologueWidth(a, target as PrologueInput)!;
    const out = new Float32Array(T * width);
    const l2 = { kind: 'l2', eps } as const;
    for (let t = 0; t < T; t++) {
      normalizeRow(l2, x, t * width, width, a.keyDim, undefined, undefined, out, t * width);
    }
    eff[target] = out;
  }
  return eff;
}

export const linearRecurrence: OpDefinition<LinearRecurrenceAttrs> = {
  check(a) {
    const where = 'linear_recurrence';
    for (const k of [
      'heads',
      'qHeads',
      'kHeads',
      'vHeads',
      'gateHeads',
      'keyDim',
      'valueDim',
    ] as const) {
      if (!Number.isInteger(a[k]) || a[k] < 1) {
        throw new Error(`${where}: ${k} must be a positive integer, got ${a[k]}`);
      }
    }
    for (const k of ['qHeads', 'kHeads', 'vHeads', 'gateHeads'] as const) {
      if (a.heads % a[k] !== 0) {
        throw new Error(`${where}: heads (${a.heads}) must be a multiple of ${k} (${a[k]})`);
      }
    }
    if (a.normalize && a.update !== 'add') {
      throw new Error(`${where}: normalize needs update 'add', got '${a.update}'`);
    }
    if (!(Number.isFinite(a.scale) && Number.isFinite(a.normEps) && a.normEps >= 0)) {
      throw new Error(`${where}: scale (${a.scale}) and normEps (${a.normEps}) must be finite`);
    }
    checkPrologue(a);
    checkRwkv7(a);
  },
  inputs(a) {
    // A computed input's place goes to the inputs its expression reads (each once).
    const exprs = a.prologue?.exprs ?? {};
    const r: Record<string, TensorRule> = {};
    for (const [name, own] of Object.entries(ownInputs(a))) {
      const e = exprs[name as PrologueInput];
      if (!e) r[name] = own;
      else
        for (const [n, i] of Object.entries(e.inputs)) {
          if (n === a.prologue?.lowRank?.name) continue;
          r[n] ??= rule(i.perToken ? ['T', i.cols] : [i.cols]);
        }
    }
    rwkv7InputRules(a, r);
    const lr = a.prologue?.lowRank;
    if (lr) {
      // In place of the computed input, what computes it.
      r[`${lr.name}_x`] = rule(['T', lr.rank]);
      r[`${lr.name}_w`] = rule([lr.cols, lr.rank]);
      if (lr.bias) r[`${lr.name}_b`] = rule([lr.cols]);
    }
    const rot = a.prologue?.rope;
    if (rot) {
      r.rope_cos = rule([rot.capacity, rot.rotaryDim / 2]);
      r.rope_sin = rule([rot.capacity, rot.rotaryDim / 2]);
    }
    return r;
  },
  outputs(a) {
    return {
      out: rule(['T', a.heads * a.valueDim]),
      state: inPlace([a.heads, a.keyDim, stateColumns(a)]),
    };
  },
  reference(a, inputs, step) {
    linearRecurrence.check(a);
    const { T } = step;
    const H = a.heads;
    const dk = a.keyDim;
    const dv = a.valueDim;
    const cols = stateColumns(a);
    const eff = rwkv7Prepare(a, applyPrologue(a, inputs, step), step);
    const [q, k, v, state] = ['q', 'k', 'v', 'state'].map((n) => f32(eff, n));
    const g = a.decay === 'none' ? null : f32(eff, 'g');
    const beta = a.update === 'delta' ? f32(eff, 'beta') : null;
    const av = a.update === 'dplr' ? f32(eff, 'a') : null;
    const bv = a.update === 'dplr' ? f32(eff, 'b') : null;
    if (state.length < H * dk * cols) {
      throw new Error(
        `linear_recurrence: state needs ${H * dk * cols} elements, has ${state.length}`,
      );
    }
    const out = new Float32Array(T * H * dv);
    const S = new Float64Array(dk * cols);
    const kv = new Float64Array(cols);
    const decay = new Float64Array(dk);
    const qs = new Float64Array(dk);
    for (let h = 0; h < H; h++) {
      const [qh, kh, vh, gh] = [a.qHeads, a.kHeads, a.vHeads, a.gateHeads].map((n) =>
        headOf(h, H, n),
      );
      // State reset rule (src/graph/ops.ts): a new sequence starts from zeros.
      S.fill(0);
      if (step.pos > 0) for (let e = 0; e < dk * cols; e++) S[e] = state[h * dk * cols + e];
      for (let t = 0; t < T; t++) {
        const qo = (t * a.qHeads + qh) * dk;
        const ko = (t * a.kHeads + kh) * dk;
        const vo = (t * a.vHeads + vh) * dv;
        const go = (t * a.gateHeads + gh) * dk;
        for (let i = 0; i < dk; i++) {
          decay[i] =
            g === null
              ? 1
              : a.decay === 'fixed'
                ? Math.exp(g[gh])
                : a.decay === 'head'
                  ? Math.exp(g[t * a.gateHeads + gh])
                  : Math.exp(g[go + i]);
          qs[i] = a.scale * q[qo + i];
        }
        // DPLR reads the state before this token's decay: bᵀS_{t−1}.
        if (av && bv) {
          kv.fill(0);
          for (let i = 0; i < dk; i++)
            for (let j = 0; j < cols; j++) kv[j] += bv[go + i] * S[i * cols + j];
        }
        for (let i = 0; i < dk; i++) for (let j = 0; j < cols; j++) S[i * cols + j] *= decay[i];
        if (beta) {
          const bt = beta[t * a.gateHeads + gh];
          for (let j = 0; j < dv; j++) {
            let sk = 0;
            for (let i = 0; i < dk; i++) sk += S[i * cols + j] * k[ko + i];
            kv[j] = bt * (v[vo + j] - sk);
          }
        }
        for (let i = 0; i < dk; i++) {
          const ki = k[ko + i];
          for (let j = 0; j < dv; j++) {
            const upd = beta ? ki * kv[j] : ki * v[vo + j];
            S[i * cols + j] += upd + (av ? av[go + i] * kv[j] : 0);
          }
          if (a.normalize) S[i * cols + dv] += ki;
        }
        let denom = 1;
        if (a.normalize) {
          denom = a.normEps;
          for (let i = 0; i < dk; i++) denom += qs[i] * S[i * cols + dv];
        }
        for (let j = 0; j < dv; j++) {
          let o = 0;
          for (let i = 0; i < dk; i++) o += qs[i] * S[i * cols + j];
          out[(t * H + h) * dv + j] = o / denom;
        }
      }
      for (let e = 0; e < dk * cols; e++) state[h * dk * cols + e] = S[e];
    }
    rwkv7Finish(a, out, eff, step);
    return { out, state };
  },
  cost(a, step) {
    const { T } = step;
    const stateElems = a.heads * a.keyDim * stateColumns(a);
    const per = a.update === 'add' ? 5 : 7;
    const p = a.prologue;
    // Of the rope tables only the step's rows are read.
    const tables = new Set(['state', 'rope_cos', 'rope_sin']);
    const inputs = Object.entries(linearRecurrence.inputs(a)).filter(([n]) => !tables.has(n));
    const read =
      inputs.reduce(
        (s, [, r]) =>
          s + r.shape.reduce<number>((p, d) => p * (d === 'T' ? T : d === 'L' ? step.L : d), 1),
        0,
      ) + (p?.rope ? T * p.rope.rotaryDim : 0);
    // A prologue's expressions per element, a rotation's three and an l2 norm's three.
    const width = (n: string) => prologueWidth(a, n as PrologueInput)!;
    const prologue = !p
      ? 0
      : Object.entries(p.exprs).reduce((f, [n, e]) => f + width(n) * exprFlops(e.expr), 0) +
        [...(p.rope?.of ?? []), ...Object.keys(p.l2)].reduce((f, n) => f + 3 * width(n), 0);
    return {
      // Per token and state element: decay, update (and kᵀS for delta/dplr), and Sᵀq.
      flops: T * (per * stateElems + prologue),
      bytesRead: 4 * (read + stateElems),
      bytesWritten: 4 * (T * a.heads * a.valueDim + stateElems),
    };
  },
};
