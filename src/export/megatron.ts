/**
 * ModelIR → Megatron-LM's hybrid model flags: the layer pattern of MambaModel (one symbol per
 * Megatron layer, each a pre-norm residual block: M Mamba-2, * attention, - MLP, E MoE; the
 * symbols of megatron/core/ssm/mamba_hybrid_layer_allocation.py) and the block flags. A strata
 * layer with a mixer and an FFN is two Megatron layers (mixer symbol, then FFN symbol), which
 * compute the same x + mixer(norm(x)), then + ffn(norm(·)).
 *
 * Megatron sets each block kind once for the whole model, from global flags: every attention,
 * every Mamba-2, every MLP and every MoE layer must share its settings, and a setting Megatron
 * has no flag for (a sliding window, a softcap, Gemma's norms, per-layer sizes) is an
 * ExportError naming the layer and the field. Nothing Megatron cannot express is dropped.
 */
import type {
  AttentionSpec,
  FfnSpec,
  Mamba2Spec,
  MlpSpec,
  ModelIR,
  MoeSpec,
} from '../spec/model.ts';
import { deepEqual } from '../spec/equal.ts';
import { ExportError } from './hf-common.ts';

export interface MegatronExport {
  /** The hybrid layer pattern, one symbol per Megatron layer. */
  pattern: string;
  /** Flag, then its value where it takes one, in order: ['--num-layers', '8', '--swiglu', ...]. */
  args: string[][];
}

function fail(what: string, why: string, layer?: number): never {
  const at = layer === undefined ? '' : `layer ${layer}: `;
  throw new ExportError(`Megatron-LM cannot express ${at}${what}: ${why}`);
}

/** The first field where `b` differs from `a`, as a dotted path. */
function differingField(a: unknown, b: unknown, path = ''): string {
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return path;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  for (const k of new Set([...Object.keys(ra), ...Object.keys(rb)])) {
    if (!deepEqual(ra[k], rb[k])) return differingField(ra[k], rb[k], path ? `${path}.${k}` : k);
  }
  return path;
}

/** The one spec every layer of a block kind shares; refuses the first layer that differs. */
function shared<T>(items: { index: number; spec: T }[], what: string, where: string): T | null {
  const first = items[0];
  if (!first) return null;
  for (const it of items) {
    if (!deepEqual(it.spec, first.spec)) {
      fail(
        `${what}.${differingField(first.spec, it.spec)} differing from layer ${first.index}'s`,
        `Megatron sets every ${what} layer from the same ${where} flags`,
        it.index,
      );
    }
  }
  return first.spec;
}

export function exportMegatron(m: ModelIR): MegatronExport {
  if (m.diffusion) fail('a masked-diffusion model', 'MambaModel is an autoregressive LM');
  if (m.sharedBlocks?.length) fail('shared blocks (Zamba2)', 'MambaModel has no shared blocks');
  if (m.norm.unitOffset) fail('the (1 + w) RMSNorm', 'Megatron scales by w');
  if (m.postNorms) fail('post-sublayer norms', 'Megatron blocks are pre-norm only');
  if (m.embeddingScale !== 1) fail(`embedding scale ${m.embeddingScale}`, 'it has no such flag');
  if (m.residualScale !== 1) fail(`residual scale ${m.residualScale}`, 'it has no such flag');
  if (m.logitScale !== 1) fail(`logit scale ${m.logitScale}`, 'it has no such flag');
  if (m.logitSoftcap !== null) fail('a final logit softcap', 'it has no such flag');
  if (m.layerScalars) fail('per-layer output scalars (layer_scalars)', 'it has no such flag');
  if (m.headBias) fail('an output head bias (head_bias)', 'its output layer has none');

  let pattern = '';
  const attn: { index: number; spec: AttentionSpec }[] = [];
  const ssm: { index: number; spec: Mamba2Spec }[] = [];
  const mlps: { index: number; spec: MlpSpec }[] = [];
  const moes: { index: number; spec: MoeSpec }[] = [];
  for (const l of m.layers) {
    const mx = l.mixer;
    if (mx?.kind === 'mamba2') {
      pattern += 'M';
      ssm.push({ index: l.index, spec: mx });
    } else if (mx?.kind === 'attention') {
      pattern += '*';
      attn.push({ index: l.index, spec: mx });
    } else if (mx !== null) {
      fail(`the ${mx.kind} mixer`, 'MambaModel layers are Mamba-2 (M) or attention (*)', l.index);
    }
    const f: FfnSpec | null = l.ffn;
    if (f?.kind === 'mlp') {
      pattern += '-';
      mlps.push({ index: l.index, spec: f });
    } else if (f?.kind === 'moe') {
      pattern += 'E';
      moes.push({ index: l.index, spec: f });
    }
  }

  const args: string[][] = [
    ['--num-layers', String(pattern.length)],
    ['--hybrid-layer-pattern', pattern],
    ['--hidden-size', String(m.dim)],
    ['--vocab-size', String(m.vocab)],
    ['--max-position-embeddings', String(m.maxContext)],
    ['--normalization', m.norm.kind === 'rms' ? 'RMSNorm' : 'LayerNorm'],
    ['--norm-epsilon', String(m.norm.eps)],
    ['--disable-bias-linear'],
  ];
  if (m.norm.kind === 'layer' && !m.norm.bias)
    fail('a LayerNorm without bias', 'Megatron LayerNorm has one');
  if (!m.tieEmbeddings) args.push(['--untie-embeddings-and-output-weights']);

  const a = shared(attn, 'attention', 'attention');
  if (a) {
    const i = attn[0].index;
    if (a.window !== null)
      fail(`attention window ${a.window}`, 'MambaModel attention is global', i);
    if (a.sinkTokens !== null || a.evict !== null)
      fail('a bounded KV cache (sink tokens / eviction)', 'training has no KV cache policy', i);
    if (a.global || a.pattern)
      fail('sparse attention (global tokens / a block-sparse pattern)', 'it has no such mask', i);
    if (!a.causal) fail('bidirectional attention', 'a GPT-style LM is causal', i);
    if (a.softcap !== null) fail('an attention softcap', 'it has no such flag', i);
    if (a.sinks) fail('attention sinks', 'it has no such flag', i);
    if (a.outputGate) fail('the attention output gate', 'it has no such flag', i);
    if (a.valueFromKey) fail('values taken from the key projection', 'it has no such flag', i);
    if (a.valueNorm) fail('the value norm', 'it has no such flag', i);
    if (a.outBias) fail('an output-projection bias', '--add-qkv-bias covers q/k/v only', i);
    if (a.scale !== a.headDim ** -0.5)
      fail(`softmax scale ${a.scale}`, 'Megatron uses head_dim^-0.5', i);
    args.push(['--num-attention-heads', String(a.heads)], ['--kv-channels', String(a.headDim)]);
    if (a.kvHeads !== a.heads)
      args.push(['--group-query-attention'], ['--num-query-groups', String(a.kvHeads)]);
    if (a.qkNorm) args.push(['--qk-layernorm']);
    if (a.qkvBias) args.push(['--add-qkv-bias']);
    if (a.rope === null) args.push(['--position-embedding-type', 'none']);
    else {
      if (a.rope.scaling.kind !== 'none')
        fail(`${a.rope.scaling.kind} RoPE scaling`, 'only unscaled RoPE is written', i);
      args.push(
        ['--position-embedding-type', 'rope'],
        ['--rotary-base', String(a.rope.theta)],
        ['--rotary-percent', String(a.rope.rotaryDim / a.headDim)],
      );
    }
  } else args.push(['--position-embedding-type', 'none']);

  const s = shared(ssm, 'mamba2', 'mamba');
  if (s) {
    const i = ssm[0].index;
    const inner = s.heads * s.headDim;
    if (s.dConv !== 4) fail(`mamba2 conv kernel ${s.dConv}`, "MambaMixer's d_conv is 4", i);
    if (!s.convBias) fail('a mamba2 conv without bias', "MambaMixer's conv has one", i);
    if (s.projBias) fail('mamba2 in/out projection biases', 'MambaMixer has none', i);
    if (s.normGroup !== inner / s.groups)
      fail(
        `a mamba2 gated norm over ${s.normGroup} channels`,
        `Megatron norms each group (${inner / s.groups})`,
        i,
      );
    if (s.gateNorm === false || s.normBeforeGate || s.projScales)
      fail('the Falcon-H1 mamba2 variants', 'MambaMixer has only the gated norm after the gate', i);
    if (s.normEps !== m.norm.eps)
      fail(`mamba2 norm eps ${s.normEps}`, `Megatron uses --norm-epsilon (${m.norm.eps})`, i);
    if (s.dtMin !== 0 || s.dtMax !== null) fail('a dt limit', 'it has no such flag', i);
    args.push(
      ['--mamba-num-heads', String(s.heads)],
      ['--mamba-head-dim', String(s.headDim)],
      ['--mamba-state-dim', String(s.dState)],
      ['--mamba-num-groups', String(s.groups)],
    );
  }

  // One activation for every MLP, expert and shared expert.
  const acts = [
    ...mlps.map((x) => ({ index: x.index, spec: x.spec })),
    ...moes.flatMap((x) => [
      { index: x.index, spec: x.spec.expert },
      ...(x.spec.shared ? [{ index: x.index, spec: x.spec.shared }] : []),
    ]),
  ].map((x) => ({ index: x.index, spec: { act: x.spec.act, gated: x.spec.gated } }));
  const act = shared(acts, 'FFN activation', 'activation');
  for (const x of [
    ...mlps.map((y) => ({ index: y.index, f: y.spec })),
    ...moes.map((y) => ({ index: y.index, f: y.spec.expert })),
  ]) {
    if (x.f.bias) fail('FFN biases', 'written with --disable-bias-linear', x.index);
    if (x.f.gateScale !== undefined || x.f.downScale !== undefined || x.f.tokenShift)
      fail('FFN multipliers or token shift', 'Megatron MLPs have neither', x.index);
  }
  if (act) {
    const { act: fn, gated } = act;
    if (gated && fn === 'silu') args.push(['--swiglu']);
    else if (!gated && fn === 'relu2') args.push(['--squared-relu']);
    else if (!(gated === false && fn === 'gelu'))
      fail(
        `the ${gated ? 'gated ' : ''}${fn} FFN`,
        'Megatron has swiglu, squared-relu and gelu',
        acts[0].index,
      );
  }
  const mlp = shared(mlps, 'mlp', 'FFN');
  if (mlp) args.push(['--ffn-hidden-size', String(mlp.hidden)]);

  const moe = shared(moes, 'moe', 'MoE');
  if (moe) {
    const i = moes[0].index;
    const r = moe.router;
    if (moe.clamp) fail("gpt-oss's clamped SwiGLU", 'it has no such flag', i);
    if (moe.branchNorms || r.inputScale || r.expertScale)
      fail(
        "Gemma 4's MoE (branch norms, router input scale, per-expert scales)",
        'it has no such flags',
        i,
      );
    if (r.bias) fail('a router bias', 'Megatron routers have none', i);
    if (moe.sharedGate) fail('the shared-expert gate', 'it is not written', i);
    // Megatron renormalises sigmoid top-k scores only where k > 1.
    if (r.scoring === 'sigmoid' && r.normalize !== moe.topK > 1)
      fail(
        `${r.normalize ? '' : 'un'}normalised sigmoid routing with top-${moe.topK}`,
        'Megatron renormalises sigmoid top-k scores exactly where k > 1',
        i,
      );
    // Megatron scores a group by the sum of its top-k/group-topk experts; strata by its best two.
    if (r.groups > 1 && moe.topK !== 2 * r.topkGroups)
      fail(
        `group-limited routing with top-${moe.topK} of ${r.topkGroups} groups`,
        "Megatron scores a group by its best top-k/group-topk experts, strata's router by its best two",
        i,
      );
    args.push(
      ['--num-experts', String(moe.experts)],
      ['--moe-router-topk', String(moe.topK)],
      ['--moe-ffn-hidden-size', String(moe.expert.hidden)],
      ['--moe-router-score-function', r.scoring],
    );
    // Megatron's softmax router renormalises over the top-k unless the softmax runs first.
    if (r.scoring === 'softmax' && !r.normalize) args.push(['--moe-router-pre-softmax']);
    if (r.scale !== 1) args.push(['--moe-router-topk-scaling-factor', String(r.scale)]);
    if (r.correctionBias) args.push(['--moe-router-enable-expert-bias']);
    if (r.groups > 1)
      args.push(
        ['--moe-router-num-groups', String(r.groups)],
        ['--moe-router-group-topk', String(r.topkGroups)],
      );
    if (moe.shared) args.push(['--moe-shared-expert-intermediate-size', String(moe.shared.hidden)]);
  }
  return { pattern, args };
}

/** The flags as shell text, one per line. */
export function megatronText(e: MegatronExport): string {
  const quote = (v: string) => (/^[\w.+-]+$/.test(v) ? v : `'${v}'`);
  return e.args.map((a) => a.map(quote).join(' ')).join(' \\\n') + '\n';
}
