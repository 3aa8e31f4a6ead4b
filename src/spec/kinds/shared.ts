/**
 * `transformer(...)`: the body of a `shared NAME = ...` definition (Zamba2's shared blocks, see
 * SharedBlockSpec). Its attention reads [x, embeddings], so inside it `dim` is twice the model's:
 * head_dim defaults to 2·dim / heads.
 */
import { defineKind, opt, req, toDslCall, type Family } from '../kind.ts';
import type { AttentionSpec, MlpSpec, SharedBlockSpec } from '../model.ts';
import { block, bool, int } from '../values.ts';
import { attention } from '../../mixers/attention.ts';
import { geglu, mlp, swiglu } from './mlp.ts';
import { sharedAttentionIssues } from '../checks.ts';

/** A shared block as a definition gives it; the resolver adds its name. */
export type SharedBlockBody = Omit<SharedBlockSpec, 'name'>;

const ATTENTION: Family<AttentionSpec> = {
  noun: 'attention',
  example: 'attention(...)',
  kinds: [attention.kind],
};

const DENSE: Family<MlpSpec> = {
  noun: 'ffn',
  example: 'a gated dense ffn such as geglu(...)',
  kinds: [swiglu, geglu, mlp],
};

export const transformer = defineKind({
  name: 'transformer',
  params: {
    attention: req(block(ATTENTION)),
    ffn: req(block(DENSE)),
    adapter_rank: opt(int(1)),
    attention_adapters: opt(bool),
    ffn_adapters: opt(bool),
  },
  build: (a, ctx, fail): SharedBlockBody => {
    const ffn = a.ffn(ctx);
    if (!ffn.gated) {
      fail('the ffn of a shared block must be gated (swiglu, geglu or mlp(gated: true))', 'ffn');
    }
    const attention = a.attention({ dim: 2 * ctx.dim });
    const unsupported = sharedAttentionIssues(attention)[0];
    if (unsupported) fail(unsupported.message, 'attention');
    return {
      kind: 'shared',
      attention,
      ffn,
      adapterRank: a.adapter_rank ?? 128,
      attentionAdapters: a.attention_adapters ?? false,
      ffnAdapters: a.ffn_adapters ?? false,
    };
  },
  toArgs: (s) => [
    { name: 'attention', value: toDslCall(ATTENTION, s.attention).value },
    { name: 'ffn', value: toDslCall(DENSE, s.ffn).value },
    { name: 'adapter_rank', value: s.adapterRank },
    { name: 'attention_adapters', value: s.attentionAdapters },
    { name: 'ffn_adapters', value: s.ffnAdapters },
  ],
});

export const SHARED_BLOCKS: Family<SharedBlockBody> = {
  noun: 'shared block',
  example: 'a shared block kind such as transformer(...)',
  kinds: [transformer],
};
