/**
 * `moe(...)`: a sparse mixture-of-experts FFN, with its router kinds `softmax(...)` and
 * `sigmoid(...)` and GPT-OSS's `clamp(limit:, alpha:)`.
 *
 *   ffn moe = moe(experts: 16, top_k: 2, expert: swiglu(hidden: 512))             # Mixtral
 *   ffn moe = moe(experts: 16, top_k: 2, expert: swiglu(hidden: 512),
 *                 router: softmax(normalize: false))                                # Jamba
 *   ffn moe = moe(experts: 256, top_k: 8, expert: swiglu(hidden: 2048),
 *                 router: sigmoid(correction_bias: true, groups: 8, topk_groups: 4, scale: 2.5),
 *                 shared: swiglu(hidden: 2048))                                     # DeepSeek-V3
 *   ffn moe = moe(experts: 128, top_k: 8, expert: geglu(hidden: 704),
 *                 router: softmax(input_scale: true, expert_scale: true),
 *                 shared: geglu(hidden: 2112), branch_norms: true)                  # Gemma 4
 */
import { checkMoe } from '../checks.ts';
import { defineKind, opt, req, toDslCall, type Family } from '../kind.ts';
import type { MlpSpec, MoeRouterSpec, MoeSpec } from '../model.ts';
import { block, bool, int, orNone, positive } from '../values.ts';
import { geglu, mlp, swiglu } from './mlp.ts';

/** Dense kinds an expert (routed or shared) can be. */
export const EXPERT_FFNS: Family<MlpSpec> = {
  noun: 'expert',
  example: 'a dense ffn kind such as swiglu(...)',
  kinds: [swiglu, geglu, mlp],
};

/** Mixtral's router: softmax over all experts, the selected weights renormalised. */
export const DEFAULT_ROUTER: Readonly<MoeRouterSpec> = {
  scoring: 'softmax',
  normalize: true,
  scale: 1,
  bias: false,
  correctionBias: false,
  groups: 1,
  topkGroups: 1,
};

/** Gemma 4's router settings, left out of the spec when off (specs before them compare equal). */
const gemma4Router = (a: { input_scale?: boolean; expert_scale?: boolean }) => ({
  ...(a.input_scale ? { inputScale: true } : {}),
  ...(a.expert_scale ? { expertScale: true } : {}),
});
const gemma4RouterArgs = (s: MoeRouterSpec) => [
  ...(s.inputScale ? [{ name: 'input_scale', value: true }] : []),
  ...(s.expertScale ? [{ name: 'expert_scale', value: true }] : []),
];

const softmax = defineKind({
  name: 'softmax',
  params: {
    normalize: opt(bool),
    scale: opt(positive),
    bias: opt(bool),
    input_scale: opt(bool),
    expert_scale: opt(bool),
  },
  build: (a): MoeRouterSpec => ({
    ...DEFAULT_ROUTER,
    normalize: a.normalize ?? true,
    scale: a.scale ?? 1,
    bias: a.bias ?? false,
    ...gemma4Router(a),
  }),
  toArgs: (s) =>
    s.scoring === 'softmax' && !s.correctionBias && s.groups === 1 && s.topkGroups === 1
      ? [
          { name: 'normalize', value: s.normalize },
          { name: 'scale', value: s.scale },
          { name: 'bias', value: s.bias },
          ...gemma4RouterArgs(s),
        ]
      : null,
});

const sigmoid = defineKind({
  name: 'sigmoid',
  params: {
    normalize: opt(bool),
    scale: opt(positive),
    bias: opt(bool),
    correction_bias: opt(bool),
    groups: opt(int(1)),
    topk_groups: opt(int(1)),
  },
  build: (a): MoeRouterSpec => ({
    scoring: 'sigmoid',
    normalize: a.normalize ?? true,
    scale: a.scale ?? 1,
    bias: a.bias ?? false,
    correctionBias: a.correction_bias ?? false,
    groups: a.groups ?? 1,
    topkGroups: a.topk_groups ?? 1,
  }),
  toArgs: (s) =>
    s.scoring === 'sigmoid'
      ? [
          { name: 'normalize', value: s.normalize },
          { name: 'scale', value: s.scale },
          { name: 'bias', value: s.bias },
          { name: 'correction_bias', value: s.correctionBias },
          { name: 'groups', value: s.groups },
          { name: 'topk_groups', value: s.topkGroups },
        ]
      : null,
});

export const ROUTERS: Family<MoeRouterSpec> = {
  noun: 'router',
  example: 'softmax(...) or sigmoid(...)',
  kinds: [softmax, sigmoid],
};

type Clamp = NonNullable<MoeSpec['clamp']>;

/** GPT-OSS's expert activation limits (its alpha is 1.702). */
const clamp = defineKind({
  name: 'clamp',
  params: { limit: req(positive), alpha: opt(positive) },
  build: (a): Clamp => ({ limit: a.limit, alpha: a.alpha ?? 1.702 }),
  toArgs: (s) => [
    { name: 'limit', value: s.limit },
    { name: 'alpha', value: s.alpha },
  ],
});

const CLAMPS: Family<Clamp> = { noun: 'clamp', example: 'clamp(limit: ...)', kinds: [clamp] };

export const moe = defineKind({
  name: 'moe',
  params: {
    experts: req(int(1)),
    top_k: req(int(1)),
    expert: req(block(EXPERT_FFNS)),
    router: opt(block(ROUTERS)),
    shared: opt(orNone(block(EXPERT_FFNS))),
    shared_gate: opt(bool),
    clamp: opt(orNone(block(CLAMPS))),
    branch_norms: opt(bool),
  },
  build: (a, ctx): MoeSpec => ({
    kind: 'moe',
    experts: a.experts,
    topK: a.top_k,
    expert: a.expert(ctx),
    clamp: a.clamp ? a.clamp(ctx) : null,
    router: a.router ? a.router(ctx) : { ...DEFAULT_ROUTER },
    shared: a.shared ? a.shared(ctx) : null,
    sharedGate: a.shared_gate ?? false,
    ...(a.branch_norms ? { branchNorms: true } : {}),
  }),
  check: checkMoe,
  toArgs: (s) =>
    s.kind === 'moe'
      ? [
          { name: 'experts', value: s.experts },
          { name: 'top_k', value: s.topK },
          { name: 'expert', value: toDslCall(EXPERT_FFNS, s.expert).value },
          { name: 'router', value: toDslCall(ROUTERS, s.router).value },
          { name: 'shared', value: s.shared && toDslCall(EXPERT_FFNS, s.shared).value },
          { name: 'shared_gate', value: s.sharedGate },
          { name: 'clamp', value: s.clamp && toDslCall(CLAMPS, s.clamp).value },
          ...(s.branchNorms ? [{ name: 'branch_norms', value: true }] : []),
        ]
      : null,
});
