/** Shared blocks in the DSL: `shared NAME = transformer(...)` placed by `override ... { shared: NAME }`. */
import { describe, expect, it } from 'vitest';
import { printSpec } from '../../src/spec/print.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { expectedTensors } from '../../src/import/names.ts';
import { parseDataSpec } from '../../src/spec/load-data.ts';
import { blamed, bodyError, resolve } from './helpers.ts';

const BODY = `
mixer ssm = mamba2(head_dim: 16, d_state: 16)
shared blk = transformer(attention: attention(heads: 4, rope: none), ffn: geglu(hidden: 96), adapter_rank: 4, attention_adapters: true, ffn_adapters: true)
shared other = transformer(attention: attention(heads: 2), ffn: swiglu(hidden: 32))
layers 6 x ssm
override layers [1, 4] { shared: blk }
override layer 3 { shared: other, ssm.d_state: 32 }
`;

describe('shared blocks', () => {
  it('resolves the definitions once and each layer to the block it names', () => {
    const m = resolve(BODY);
    expect(m.sharedBlocks!.map((b) => b.name)).toEqual(['blk', 'other']);
    expect(m.layers.map((l) => l.shared ?? null)).toEqual([
      null,
      'blk',
      null,
      'other',
      'blk',
      null,
    ]);
    // The attention reads [x, embeddings]: head_dim defaults to 2 · dim / heads.
    expect(m.sharedBlocks![0]).toEqual({
      kind: 'shared',
      name: 'blk',
      attention: {
        kind: 'attention',
        heads: 4,
        kvHeads: 4,
        headDim: 32,
        rope: null,
        qkNorm: false,
        qkvBias: false,
        outBias: false,
        causal: true,
        window: null,
        scale: 32 ** -0.5,
        softcap: null,
        sinkTokens: null,
        evict: null,
        sinks: false,
        outputGate: false,
      },
      ffn: { kind: 'mlp', hidden: 96, act: 'gelu', gated: true, bias: false },
      adapterRank: 4,
      attentionAdapters: true,
      ffnAdapters: true,
    });
    expect(m.sharedBlocks![1]).toMatchObject({
      attention: { headDim: 64, rope: { rotaryDim: 64 } },
      adapterRank: 128,
      attentionAdapters: false,
      ffnAdapters: false,
    });
    expect(m.layers[3].mixer).toMatchObject({ dState: 32 });
  });

  it('leaves both fields out of models without shared blocks', () => {
    const m = resolve('mixer ssm = mamba2(head_dim: 16)\nlayers 2 x ssm');
    expect('sharedBlocks' in m).toBe(false);
    expect(m.layers.some((l) => 'shared' in l)).toBe(false);
  });

  it('prints and resolves back to the same model', () => {
    const m = resolve(BODY);
    const text = printSpec(m);
    expect(text).toContain('  shared blk   = transformer(');
    expect(text).toContain('override layers [1, 4] { shared: blk }');
    expect(parseSpec(text, 'printed.strata')).toEqual(m);
  });

  it('names shared weights once and adapters, linear per use', () => {
    const names = expectedTensors(resolve(BODY)).map((t) => t.name);
    expect(names.filter((n) => n.startsWith('model.shared.blk.'))).toEqual([
      'model.shared.blk.input_layernorm.weight',
      'model.shared.blk.self_attn.q_proj.weight',
      'model.shared.blk.self_attn.k_proj.weight',
      'model.shared.blk.self_attn.v_proj.weight',
      'model.shared.blk.self_attn.o_proj.weight',
      'model.shared.blk.pre_ff_layernorm.weight',
      'model.shared.blk.feed_forward.gate_up_proj.weight',
      'model.shared.blk.feed_forward.down_proj.weight',
    ]);
    for (const i of [1, 4]) {
      expect(names.filter((n) => n.startsWith(`model.layers.${i}.shared.`))).toEqual([
        ...['q', 'k', 'v', 'gate_up'].flatMap((p) => [
          `model.layers.${i}.shared.${p}_adapter.down.weight`,
          `model.layers.${i}.shared.${p}_adapter.up.weight`,
        ]),
        `model.layers.${i}.shared.linear.weight`,
      ]);
    }
    // No adapters on 'other': only its use's linear.
    expect(names.filter((n) => n.startsWith('model.layers.3.shared.'))).toEqual([
      'model.layers.3.shared.linear.weight',
    ]);
  });

  it('reports unknown names, field overrides, ungated ffns and mixer-less layers', () => {
    let e = bodyError(`${BODY}\noverride layer 0 { shared: blck }`);
    expect(e.message).toContain("unknown shared block 'blck', did you mean 'blk'?");
    expect(blamed(e)).toBe('blck');
    e = bodyError(`${BODY}\noverride layer 1 { shared.adapter_rank: 2 }`);
    expect(e.message).toContain('a shared block is the same at every layer that uses it');
    e = bodyError(`${BODY}\noverride layer 1 { blk.adapter_rank: 2 }`);
    expect(e.message).toContain('a shared block is the same at every layer that uses it');
    e = bodyError(
      'mixer ssm = mamba2(head_dim: 16)\nshared s = transformer(attention: attention(heads: 2), ffn: mlp(hidden: 8, act: gelu))\nlayers 2 x ssm',
    );
    expect(e.message).toContain('the ffn of a shared block must be gated');
    e = bodyError(
      'mixer nothing = none\nffn f = swiglu(hidden: 8)\nshared s = transformer(attention: attention(heads: 2), ffn: swiglu(hidden: 8))\nlayers 2 x nothing\noverride layer 1 { shared: s }',
    );
    expect(e.message).toContain("layer 1 uses shared block 's' but has no mixer");
    e = bodyError(`${BODY}\nmixer blk = mamba2(head_dim: 16)`);
    expect(e.message).toContain("'blk' is already defined");
    e = bodyError(`${BODY}\noverride layer 2 { shared: ssm }`);
    expect(e.message).toContain("unknown shared block 'ssm'");
  });

  it('refuses attention options its lowering does not have: sinks, qk-norm, output gate', () => {
    for (const [option, what] of [
      ['sinks: true', 'attention sinks'],
      ['qk_norm: true', 'qk-norm'],
      ['output_gate: true', 'an attention output gate'],
    ]) {
      const e = bodyError(
        `mixer ssm = mamba2(head_dim: 16)\nshared s = transformer(attention: attention(heads: 2, ${option}), ffn: swiglu(hidden: 8))\nlayers 2 x ssm\noverride layer 1 { shared: s }`,
      );
      expect(e.message).toContain(`${what} is not supported in shared blocks yet`);
    }
  });

  it('takes none to remove a layer shared block', () => {
    const m = resolve(`${BODY}\noverride layer 1 { shared: none }`);
    expect(m.layers[1].shared).toBeUndefined();
  });

  it('is part of the JSON form, checked by the schema and the semantic checks', () => {
    const m = resolve(BODY);
    expect(parseDataSpec(JSON.stringify(m), 'm.json', 'json')).toEqual(m);
    const broken = structuredClone(m);
    delete (broken.sharedBlocks![0] as { adapterRank?: number }).adapterRank;
    expect(() => parseDataSpec(JSON.stringify(broken), 'm.json', 'json')).toThrow(/adapterRank/);
    const unknown = structuredClone(m);
    unknown.layers[2].shared = 'nope';
    expect(() => parseDataSpec(JSON.stringify(unknown), 'm.json', 'json')).toThrow(
      /layers\[2\]\.shared: no shared block is named 'nope'/,
    );
  });
});
