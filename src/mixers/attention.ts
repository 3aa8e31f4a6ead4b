/**
 * `attention(...)`: multi-head / grouped-query attention with optional rope, window, softcap,
 * sinks and output gate. Its lowering: pre-norm, q/k/v projections, optional qk-norm, RoPE,
 * KV-cache append, attention, output projection, residual, unfused: the passes fuse it.
 * parallel(...) runs attentionBranch beside mamba2 (Falcon-H1); Zamba2's shared blocks hold an
 * attention spec too (src/graph/blocks/shared.ts).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import {
  attendOverCache,
  linear,
  linearRowBlocks,
  linearScale,
  mixerSublayer,
} from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import { checkRope, multipleOf, type Issue, type Namer } from '../spec/checks.ts';
import { defineKind, opt, req, toDslCall } from '../spec/kind.ts';
import { defaultRope, ROPES } from '../spec/kinds/rope.ts';
import { EVICTIONS, type EvictSpec } from '../spec/kinds/evict.ts';
import { h2oPolicyError } from '../ops/h2o.ts';
import {
  checkPattern,
  MAX_RANDOM,
  MAX_SEED,
  PATTERNS,
  type PatternSpec,
} from '../spec/kinds/sparsity.ts';
import type { ModelIR, RopeSpec } from '../spec/model.ts';
import {
  bool as boolSchema,
  kind,
  nullable,
  object,
  posInt,
  posNumber,
} from '../spec/schema-parts.ts';
import { block, bool, int, orNone, positive } from '../spec/values.ts';
import { defineMixer } from './define.ts';
import { attentionHeadDim } from './parts.ts';

export interface AttentionSpec {
  kind: 'attention';
  heads: number;
  kvHeads: number;
  headDim: number;
  /** null: no positional encoding inside attention (e.g. Jamba). */
  rope: RopeSpec | null;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3, Gemma3). */
  qkNorm: boolean;
  /** Bias on the q/k/v projections. */
  qkvBias: boolean;
  /** Bias on the output projection. */
  outBias: boolean;
  causal: boolean;
  /**
   * Block-causal attention (BD3-LM), with causal false: a query sees its own block of
   * blockCausal positions (aligned at 0) and every earlier block. Absent or null: none.
   */
  blockCausal?: number | null;
  /**
   * A mask that depends on the phase (DiffusionGemma's one set of layers used as encoder and
   * denoiser), with causal true: an encoding step (the runtime's keys 0) is causal with the
   * window; a denoising step (keys > 0) sees, from every query, the keys from the window of the
   * step's first position to the end of the step or `keys` (src/ops/attention.ts visibleKeys).
   * Absent: false (present only when true).
   */
  phased?: boolean;
  /** Sliding window length in tokens; null is full attention. */
  window: number | null;
  /**
   * StreamingLLM: the first sinkTokens positions stay visible to every query besides its window,
   * and the KV cache is a ring of sinkTokens + window (+ prefill chunk − 1) rows whatever the
   * context, so decode memory stays constant. Keys keep the RoPE of their absolute positions
   * (see src/ops/attention.ts). null: the cache holds every position up to the capacity.
   */
  sinkTokens: number | null;
  /**
   * A KV-cache eviction policy (H2O heavy hitters, src/ops/h2o.ts): the cache keeps at most
   * evict.budget tokens per kv head, whatever the context. Sink tokens, when given, are never
   * evicted; it takes no window (the policy's recent tokens play that part). null: none.
   */
  evict: EvictSpec | null;
  /**
   * Longformer's global tokens: positions 0 .. global-1 are visible to every query besides its
   * window, and (bidirectional attention) their queries see every key. Causal, this is the
   * StreamingLLM mask of sinkTokens = global, with the same ring cache. Needs a window larger
   * than it. Absent or null: none.
   */
  global?: number | null;
  /**
   * A static sparsity pattern (`block_sparse(block:, layout:)`, src/ops/block-sparse.ts): the
   * kernel visits only the kept blocks, the cache keeps every row. Absent or null: dense.
   */
  pattern?: PatternSpec | null;
  /** Softmax scale; usually headDim^-0.5. */
  scale: number;
  /** Attention-logit softcap (Gemma2); null is none. */
  softcap: number | null;
  /**
   * A learned logit per head that joins each query's softmax denominator without a value
   * (GPT-OSS's attention sinks): weights = exp(s_j) / (Σ exp(s_j) + exp(sink_h)).
   */
  sinks: boolean;
  /**
   * Qwen3-Next's gated attention: q_proj emits, per head, headDim query rows then headDim gate
   * rows, and the attention output is multiplied by sigmoid(gate) before o_proj.
   */
  outputGate: boolean;
  /**
   * Gemma 4's k_eq_v (its full layers): no v projection; the values are the raw key projection,
   * taken before the qk-norm and RoPE. Absent: false (present only when true).
   */
  valueFromKey?: boolean;
  /**
   * Gemma 4's v_norm: a weightless RMS norm of each value head, v·(mean(v²) + eps)^−½ with the
   * model norm's eps. Absent: false (present only when true).
   */
  valueNorm?: boolean;
}

/** `block_sparse 64: local 4 blocks + 1 global`, for the model table. */
function describePattern(p: PatternSpec): string {
  const l = p.layout;
  const shape =
    l.kind === 'local'
      ? `local ${l.blocks} blocks`
      : l.kind === 'strided'
        ? `local ${l.local}, stride ${l.stride}`
        : `offsets [${l.keep.join(', ')}]`;
  const rnd = p.random
    ? ` + ${p.random.r} random (seed ${p.random.seed}${p.random.perHead ? ', per head' : ''})`
    : '';
  return `block_sparse ${p.block}: ${shape}${l.global ? ` + ${l.global} global` : ''}${rnd}`;
}

/** Attention tensors (HF Llama's names under `self_attn`). */
export function attentionNames(i: number) {
  const p = `${layerPrefix(i)}.self_attn`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    q: `${p}.q_proj`,
    k: `${p}.k_proj`,
    v: `${p}.v_proj`,
    o: `${p}.o_proj`,
    qNorm: `${p}.q_norm`,
    kNorm: `${p}.k_norm`,
    /** GPT-OSS's per-head sink logits [heads] (a bare parameter, no `.weight`). */
    sinks: `${p}.sinks`,
  };
}

export function checkAttention(a: AttentionSpec, n: Namer): Issue[] {
  const issues = multipleOf(n, 'kvHeads', ['heads', a.heads], ['kvHeads', a.kvHeads]);
  if (a.evict !== null) issues.push(...evictIssues(a, a.evict, n));
  else if (a.sinkTokens !== null && (a.window === null || !a.causal)) {
    issues.push({
      path: ['sinkTokens'],
      message:
        `${n('sinkTokens')} ${a.sinkTokens} needs a rolling window: set ${n('window')} ` +
        `(a ring cache keeps ${n('sinkTokens')} + ${n('window')} rows) on causal attention`,
    });
  }
  issues.push(...sparsityIssues(a, n));
  if (a.phased) {
    const clash = firstSet([
      ['causal', !a.causal],
      ['blockCausal', (a.blockCausal ?? null) !== null],
      ['sinkTokens', a.sinkTokens !== null],
      ['evict', a.evict !== null],
      ['global', (a.global ?? null) !== null],
      ['pattern', a.pattern != null],
    ]);
    if (clash)
      issues.push({
        path: ['phased'],
        message: `${n('phased')} cannot be combined with ${n(clash)}${clash === 'causal' ? ' false' : ''}: a phased mask is causal while encoding and sees the window of the step's first position and every later key while denoising`,
      });
  }
  const B = a.blockCausal ?? null;
  if (B !== null) {
    const clash = firstSet([
      ['causal', a.causal],
      ['window', a.window !== null],
      ['pattern', a.pattern != null],
      ['sinkTokens', a.sinkTokens !== null],
      ['evict', a.evict !== null],
    ]);
    if (clash)
      issues.push({
        path: ['blockCausal'],
        message: `${n('blockCausal')} ${B} cannot be combined with ${n(clash)}: a block-causal mask is bidirectional inside each block and sees every earlier block (drop ${n(clash)}${clash === 'causal' ? ' or set it false' : ''})`,
      });
  }
  if (a.rope) {
    for (const issue of checkRope(a.rope, a.headDim, n)) {
      issues.push({ path: ['rope', ...issue.path], message: issue.message });
    }
  }
  return issues;
}

/** The first setting ([IR field, whether it is set]) that is set, or null: what a mask clashes with. */
function firstSet(settings: [keyof AttentionSpec, boolean][]): keyof AttentionSpec | null {
  return settings.find(([, set]) => set)?.[0] ?? null;
}

/** Global tokens and block-sparse patterns that cannot work, naming the setting and the limit. */
function sparsityIssues(a: AttentionSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  const g = a.global ?? null;
  if (g !== null) {
    const other =
      a.sinkTokens !== null
        ? 'sinkTokens'
        : a.evict !== null
          ? 'evict'
          : a.pattern
            ? 'pattern'
            : null;
    if (other !== null) {
      issues.push({
        path: ['global'],
        message: `${n('global')} ${g} cannot be combined with ${n(other)}: give one of them`,
      });
    } else if (a.window === null) {
      issues.push({
        path: ['global'],
        message:
          `${n('global')} ${g} needs a ${n('window')}: without one every query sees every ` +
          `key already`,
      });
    } else if (g >= a.window) {
      issues.push({
        path: ['global'],
        message:
          `${n('global')} ${g} must be smaller than ${n('window')} ${a.window}: global tokens ` +
          `are a few positions beside a sliding window`,
      });
    }
  }
  const p = a.pattern ?? null;
  if (p !== null) {
    const other =
      a.window !== null
        ? 'window'
        : a.sinkTokens !== null
          ? 'sinkTokens'
          : a.evict !== null
            ? 'evict'
            : null;
    if (other !== null) {
      issues.push({
        path: [other],
        message:
          `${n('pattern')} ${p.kind} takes no ${n(other)}: its layout's local band is the ` +
          `window and its global blocks the sinks`,
      });
    }
    for (const issue of checkPattern(p, n)) {
      issues.push({ path: ['pattern', ...issue.path], message: issue.message });
    }
  }
  return issues;
}

/** Settings an eviction policy cannot work with, each naming the setting and the limit. */
function evictIssues(a: AttentionSpec, e: EvictSpec, n: Namer): Issue[] {
  const issues: Issue[] = [];
  const policy = `${n('evict')} ${e.kind}`;
  if (a.window !== null) {
    issues.push({
      path: ['window'],
      message:
        `${policy} takes no ${n('window')} (got ${a.window}): its ${n('recent')} tokens are the ` +
        `window; drop ${n('window')} or the eviction`,
    });
  }
  if (!a.causal) {
    issues.push({ path: ['causal'], message: `${policy} needs causal attention` });
  }
  if (a.sinks) {
    issues.push({
      path: ['sinks'],
      message: `${policy} with learned attention ${n('sinks')} is not supported yet`,
    });
  }
  const bad = h2oPolicyError({ ...e, sinkTokens: a.sinkTokens ?? 0 });
  if (bad) issues.push({ path: ['evict', 'budget'], message: bad });
  return issues;
}

const kindDef = defineKind({
  name: 'attention',
  params: {
    heads: req(int(1)),
    kv_heads: opt(int(1)),
    head_dim: opt(int(1)),
    rope: opt(orNone(block(ROPES))),
    qk_norm: opt(bool),
    qkv_bias: opt(bool),
    out_bias: opt(bool),
    causal: opt(bool),
    block_causal: opt(orNone(int(1))),
    phased: opt(bool),
    window: opt(orNone(int(1))),
    sink_tokens: opt(orNone(int(0))),
    evict: opt(orNone(block(EVICTIONS))),
    global: opt(orNone(int(1))),
    pattern: opt(orNone(block(PATTERNS))),
    scale: opt(positive),
    softcap: opt(orNone(positive)),
    sinks: opt(bool),
    output_gate: opt(bool),
    value_from_key: opt(bool),
    value_norm: opt(bool),
  },
  build: (a, ctx, fail): AttentionSpec => {
    const headDim = a.head_dim ?? attentionHeadDim(ctx.dim, a.heads, fail);
    return {
      kind: 'attention',
      heads: a.heads,
      kvHeads: a.kv_heads ?? a.heads,
      headDim,
      rope: a.rope === undefined ? defaultRope(headDim) : a.rope && a.rope({ ...ctx, headDim }),
      qkNorm: a.qk_norm ?? false,
      qkvBias: a.qkv_bias ?? false,
      outBias: a.out_bias ?? false,
      // A block-causal mask is bidirectional inside its blocks: causal defaults to false there.
      causal: a.causal ?? !a.block_causal,
      ...(a.block_causal ? { blockCausal: a.block_causal } : {}),
      ...(a.phased ? { phased: true } : {}),
      window: a.window ?? null,
      sinkTokens: a.sink_tokens ?? null,
      evict: a.evict ? a.evict(ctx) : null,
      // Left out when unset, so specs written before them compare equal.
      ...(a.global ? { global: a.global } : {}),
      ...(a.pattern ? { pattern: a.pattern(ctx) } : {}),
      // ** rather than 1/Math.sqrt: the same rounding as PyTorch's head_dim ** -0.5.
      scale: a.scale ?? headDim ** -0.5,
      softcap: a.softcap ?? null,
      sinks: a.sinks ?? false,
      outputGate: a.output_gate ?? false,
      ...(a.value_from_key ? { valueFromKey: true } : {}),
      ...(a.value_norm ? { valueNorm: true } : {}),
    };
  },
  check: checkAttention,
  // Null for other mixer kinds: the printer asks every kind of the family.
  toArgs: (s) =>
    s.kind !== 'attention'
      ? null
      : [
          { name: 'heads', value: s.heads },
          { name: 'kv_heads', value: s.kvHeads },
          { name: 'head_dim', value: s.headDim },
          { name: 'rope', value: s.rope && toDslCall(ROPES, s.rope).value },
          { name: 'qk_norm', value: s.qkNorm },
          { name: 'qkv_bias', value: s.qkvBias },
          { name: 'out_bias', value: s.outBias },
          { name: 'causal', value: s.causal },
          ...(s.blockCausal ? [{ name: 'block_causal', value: s.blockCausal }] : []),
          ...(s.phased ? [{ name: 'phased', value: true }] : []),
          { name: 'window', value: s.window },
          { name: 'sink_tokens', value: s.sinkTokens },
          { name: 'evict', value: s.evict && toDslCall(EVICTIONS, s.evict).value },
          ...(s.global ? [{ name: 'global', value: s.global }] : []),
          ...(s.pattern ? [{ name: 'pattern', value: toDslCall(PATTERNS, s.pattern).value }] : []),
          { name: 'scale', value: s.scale },
          { name: 'softcap', value: s.softcap },
          { name: 'sinks', value: s.sinks },
          { name: 'output_gate', value: s.outputGate },
          { name: 'value_from_key', value: s.valueFromKey ?? false },
          { name: 'value_norm', value: s.valueNorm ?? false },
        ],
});

/**
 * outScale · attention(inScale · h) for the normed input h, without the residual: the multipliers
 * fold into the q/k/v weights and the output projection.
 */
export function attentionBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  a: AttentionSpec,
  inScale: number,
  outScale: number,
): number {
  const n = attentionNames(i);
  const L = `l${i}.attn`;
  const qCols = a.heads * a.headDim;
  const kvCols = a.kvHeads * a.headDim;
  const inS = linearScale(inScale, 1);
  const proj = (prefix: string, cols: number, tag: string) =>
    linear(b, h, prefix, cols, model.dim, a.qkvBias, `${L}.${tag}`, 'T', inS);
  // Gated attention: q_proj holds each head's query rows then its gate rows.
  const qPart = (offset: number, tag: string) =>
    linearRowBlocks(
      b,
      h,
      n.q,
      a.heads,
      2 * a.headDim,
      [{ offset, count: a.headDim }],
      model.dim,
      a.qkvBias,
      `${L}.${tag}`,
      inS,
    );
  let q = a.outputGate ? qPart(0, 'q') : proj(n.q, qCols, 'q');
  const gate = a.outputGate ? qPart(a.headDim, 'gate') : null;
  let k = proj(n.k, kvCols, 'k');
  let v = a.valueFromKey ? k : proj(n.v, kvCols, 'v');
  if (a.valueNorm) {
    // Weightless RMS per head as an l2 norm: v·(Σv²/D + eps)^−½ = √D · v·(Σv² + D·eps)^−½; the
    // √D is linear through the attention, so it joins the output projection's weight below.
    v = b.op(
      {
        op: 'norm',
        norm: { kind: 'l2', eps: model.norm.eps * a.headDim },
        width: kvCols,
        group: a.headDim,
        residual: false,
      },
      `${L} v-norm`,
      { x: v },
      { out: { name: `${L}.vnorm`, shape: ['T', kvCols] } },
    ).out;
  }
  if (a.qkNorm) {
    const headNorm = (t: number, width: number, prefix: string, tag: string) =>
      b.op(
        {
          op: 'norm',
          norm: { ...model.norm, kind: 'rms', bias: false },
          width,
          group: a.headDim,
          residual: false,
        },
        `${L} ${tag}-norm`,
        { x: t, w: b.param(`${prefix}.weight`, [a.headDim]) },
        { out: { name: `${L}.${tag}norm`, shape: ['T', width] } },
      ).out;
    q = headNorm(q, qCols, n.qNorm, 'q');
    k = headNorm(k, kvCols, n.kNorm, 'k');
  }
  const att = attendOverCache(b, a, i, L, { q, k, v }, a.sinks ? n.sinks : null, `${L}.out`);
  const gated =
    gate === null
      ? att
      : b.op(
          { op: 'glu', act: 'sigmoid', width: qCols },
          `${L} output gate`,
          { gate, up: att },
          { out: { name: `${L}.gated`, shape: ['T', qCols] } },
        ).out;
  const out = linearScale(a.valueNorm ? Math.sqrt(a.headDim) : 1, outScale);
  return linear(b, gated, n.o, model.dim, qCols, a.outBias, `${L}.o`, 'T', out);
}

export const attention = defineMixer<AttentionSpec>({
  kind: kindDef,
  schema: object(
    {
      kind: kind('attention'),
      heads: posInt,
      kvHeads: posInt,
      headDim: posInt,
      rope: nullable('#/definitions/rope'),
      qkNorm: boolSchema,
      qkvBias: boolSchema,
      outBias: boolSchema,
      causal: boolSchema,
      window: { type: ['integer', 'null'], minimum: 1 },
      scale: posNumber,
      softcap: { type: ['number', 'null'], exclusiveMinimum: 0 },
    },
    // Added after specs were written: left out, they are off.
    {
      sinks: { ...boolSchema, default: false },
      outputGate: { ...boolSchema, default: false },
      sinkTokens: { type: ['integer', 'null'], minimum: 0, default: null },
      // No default: models without it stay without the key (the DSL leaves it out too).
      blockCausal: { type: ['integer', 'null'], minimum: 1 },
      phased: boolSchema,
      valueFromKey: boolSchema,
      valueNorm: boolSchema,
      evict: {
        default: null,
        oneOf: [
          { type: 'null' },
          object({
            kind: kind('h2o'),
            budget: posInt,
            recent: { type: 'integer', minimum: 0 },
          }),
        ],
      },
      global: { type: ['integer', 'null'], minimum: 1 },
      pattern: {
        oneOf: [
          { type: 'null' },
          object(
            {
              kind: kind('block_sparse'),
              block: posInt,
              layout: {
                oneOf: [
                  object({
                    kind: kind('local'),
                    blocks: posInt,
                    global: { type: 'integer', minimum: 0 },
                  }),
                  object({
                    kind: kind('strided'),
                    local: posInt,
                    stride: { type: 'integer', minimum: 2 },
                    global: { type: 'integer', minimum: 0 },
                  }),
                  object({
                    kind: kind('offsets'),
                    keep: { type: 'array', items: { type: 'integer', minimum: 0 }, maxItems: 64 },
                    global: { type: 'integer', minimum: 0 },
                  }),
                ],
              },
            },
            {
              random: {
                oneOf: [
                  { type: 'null' },
                  object(
                    {
                      kind: kind('random'),
                      r: { type: 'integer', minimum: 1, maximum: MAX_RANDOM },
                      seed: { type: 'integer', minimum: 0, maximum: MAX_SEED },
                    },
                    { perHead: boolSchema },
                  ),
                ],
              },
            },
          ),
        ],
      },
    },
  ),
  dims: (m) => {
    const parts = [`heads ${m.heads}`, `kv ${m.kvHeads}`, `head_dim ${m.headDim}`];
    if (m.window !== null) parts.push(`window ${m.window}`);
    if (m.sinkTokens !== null && m.evict === null) {
      parts.push(`${m.sinkTokens} sink tokens, ring cache`);
    }
    if (m.evict !== null) {
      const sinks = m.sinkTokens ? ` + ${m.sinkTokens} sink tokens` : '';
      parts.push(`h2o budget ${m.evict.budget} (${m.evict.recent} recent${sinks})`);
    }
    if (m.global) parts.push(`${m.global} global tokens`);
    if (m.pattern) parts.push(describePattern(m.pattern));
    if (m.rope === null) parts.push('no rope');
    else if (m.rope.rotaryDim !== m.headDim) parts.push(`rotary ${m.rope.rotaryDim}`);
    if (m.softcap !== null) parts.push(`softcap ${m.softcap}`);
    if (m.sinks) parts.push('sinks');
    if (m.blockCausal) parts.push(`block-causal ${m.blockCausal}`);
    else if (m.phased) parts.push('phased (causal encoder, bidirectional denoiser)');
    else if (!m.causal) parts.push('bidirectional');
    if (m.outputGate) parts.push('output gate');
    if (m.valueFromKey) parts.push('v = k');
    if (m.valueNorm) parts.push('v-norm');
    return parts.join(', ');
  },
  lower: (b, model, x, i, a, input) =>
    mixerSublayer(b, model, x, input, i, attentionNames(i).norm, `l${i}.attn`, (h) =>
      attentionBranch(b, model, h, i, a, 1, 1),
    ),
});
