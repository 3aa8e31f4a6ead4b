/** HF import of the state-space and hybrid families: mamba, mamba2, bamba, jamba, lfm2, nemotron_h. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importHfConfig } from '../../src/import/hf.ts';
import { importHfFolder } from '../../src/import/hf-folder.ts';
import type {
  AttentionSpec,
  Mamba1Spec,
  Mamba2Spec,
  ModelIR,
  ShortConvSpec,
} from '../../src/spec/model.ts';
import { validateModel } from '../../src/spec/validate.ts';
import { countParams } from '../../src/spec/params.ts';
import { fixtureConfig, tinyConfig } from '../helpers/hf-config.ts';
import { mlp } from '../helpers/models.ts';

const HF = join(import.meta.dirname, '..', 'fixtures', 'hf');
const config = tinyConfig;
const kinds = (m: ModelIR) =>
  m.layers.map((l) => `${l.mixer?.kind ?? 'none'}/${l.ffn ? l.ffn.kind : '-'}`);

describe('the golden fixtures import to the models transformers built', () => {
  it('mamba: Mamba-1 layers without FFN, tied head', () => {
    const { model } = importHfConfig(config('mamba'), 'mamba');
    const mixer: Mamba1Spec = {
      kind: 'mamba1',
      dInner: 128,
      dState: 16,
      dConv: 4,
      dtRank: 8,
      convBias: true,
      projBias: false,
      innerNorms: null,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([mixer, mixer]);
    expect(kinds(model)).toEqual(['mamba1/-', 'mamba1/-']);
    expect(model).toMatchObject({ vocab: 256, dim: 64, tieEmbeddings: true });
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-5, unitOffset: false, bias: false });
    expect(validateModel(model)).toEqual([]);
  });

  it('mamba2: groups of B/C, whole-width gated norm (HF Mamba2), time_step_limit with {"__float__": "Infinity"}', () => {
    const { model } = importHfConfig(config('mamba2'), 'mamba2');
    const mixer: Mamba2Spec = {
      kind: 'mamba2',
      heads: 8,
      headDim: 16,
      dState: 16,
      groups: 2,
      dConv: 4,
      chunk: 16,
      convBias: true,
      projBias: false,
      normGroup: 128,
      normEps: 1e-5,
      dtMin: 0,
      dtMax: null,
    };
    expect(model.layers.map((l) => l.mixer)).toEqual([mixer, mixer]);
    expect(model.tieEmbeddings).toBe(false);
  });

  it('bamba: mamba2 and attention (partial rotary 0.5) layers, each with a SwiGLU FFN', () => {
    const { model } = importHfConfig(config('bamba'), 'bamba');
    expect(kinds(model)).toEqual(['mamba2/mlp', 'attention/mlp']);
    const attn = model.layers[1].mixer as AttentionSpec;
    expect(attn).toMatchObject({ heads: 4, kvHeads: 2, headDim: 16, qkNorm: false });
    expect(attn.rope).toEqual({ theta: 10000, rotaryDim: 8, scaling: { kind: 'none' } });
    expect(model.layers[0].mixer).toMatchObject({
      heads: 8,
      headDim: 16,
      groups: 1,
      normGroup: 128,
    });
    expect(model.layers[0].ffn).toEqual(mlp({ hidden: 128 }));
  });

  it('jamba: Mamba-1 with inner norms and attention; MoE (no renormalisation) on expert layers', () => {
    const { model } = importHfConfig(config('jamba'), 'jamba');
    // attn_layer_period 2 / offset 1, expert_layer_period 2 / offset 0.
    expect(kinds(model)).toEqual(['mamba1/moe', 'attention/mlp']);
    const mixer: Mamba1Spec = {
      kind: 'mamba1',
      dInner: 128,
      dState: 16,
      dConv: 4,
      dtRank: 8,
      convBias: true,
      projBias: false,
      innerNorms: { eps: 1e-6 },
    };
    expect(model.layers[0].mixer).toEqual(mixer);
    expect(model.layers[1].mixer).toMatchObject({ rope: null, heads: 4, kvHeads: 2, headDim: 16 });
    const expert = { kind: 'mlp', hidden: 128, act: 'silu', gated: true, bias: false };
    expect(model.layers[0].ffn).toMatchObject({
      kind: 'moe',
      experts: 4,
      topK: 2,
      expert,
      router: { scoring: 'softmax', normalize: false, bias: false, correctionBias: false },
      shared: null,
    });
    expect(model.layers[1].ffn).toEqual(expert);
    expect(model).toMatchObject({ vocab: 256, dim: 64, tieEmbeddings: false, maxContext: 262144 });
    expect(model.norm).toEqual({ kind: 'rms', eps: 1e-6, unitOffset: false, bias: false });
    expect(validateModel(model)).toEqual([]);
  });

  it('lfm2: short conv and qk-norm attention layers from layer_types', () => {
    const { model } = importHfConfig(config('lfm2'), 'lfm2');
    expect(kinds(model)).toEqual(['shortconv/mlp', 'attention/mlp', 'shortconv/mlp']);
    const conv: ShortConvSpec = { kind: 'shortconv', lCache: 3, bias: false };
    expect(model.layers[0].mixer).toEqual(conv);
    expect(model.layers[1].mixer).toMatchObject({ qkNorm: true, rope: { theta: 1e6 } });
    expect(model.tieEmbeddings).toBe(true);
  });

  it('nemotron_h: one block per layer; MLP and MoE layers have no mixer', () => {
    const { model } = importHfConfig(config('nemotron_h'), 'nemotron_h');
    expect(kinds(model)).toEqual(['mamba2/-', 'attention/-', 'none/mlp', 'none/moe']);
    expect(model.layers.map((l) => l.mixerName)).toEqual([
      'mamba',
      'attention',
      'no_mixer',
      'no_mixer',
    ]);
    // Zamba2RMSNormGated: one norm group per B/C group.
    expect(model.layers[0].mixer).toMatchObject({
      heads: 8,
      headDim: 16,
      groups: 2,
      normGroup: 64,
    });
    expect(model.layers[1].mixer).toMatchObject({ rope: null, heads: 4, kvHeads: 2, headDim: 16 });
    expect(model.layers[2].ffn).toEqual({
      kind: 'mlp',
      hidden: 128,
      act: 'relu2',
      gated: false,
      bias: false,
    });
    expect(model.layers[3].ffn).toMatchObject({
      kind: 'moe',
      experts: 4,
      topK: 2,
      expert: { hidden: 32, act: 'relu2', gated: false },
      router: { scoring: 'sigmoid', normalize: true, correctionBias: true, groups: 1 },
      shared: { hidden: 32, act: 'relu2', gated: false },
    });
    expect(validateModel(model)).toEqual([]);
  });

  it.each(['mamba', 'mamba2', 'bamba', 'jamba', 'lfm2', 'nemotron_h'])(
    '%s: every checkpoint tensor is mapped, conv weights [C, 1, K] read as [C, K]',
    async (type) => {
      const hf = await importHfFolder(join(HF, type));
      try {
        const conv = hf.tensors.find((t) => /conv1d\.weight$/.test(t.name))!;
        expect(conv.shape).toHaveLength(2);
        const data = await hf.readTensorF32(conv.name);
        expect(data.length).toBe(conv.shape[0] * conv.shape[1]);
      } finally {
        await hf.close();
      }
    },
  );
});

describe('weight names', () => {
  it('maps the canonical names to each family spelling', () => {
    const mamba = importHfConfig(config('mamba'), 'm');
    expect(mamba.weightMap).toMatchObject({
      'model.embed_tokens.weight': 'backbone.embeddings.weight',
      'model.norm.weight': 'backbone.norm_f.weight',
      'model.layers.1.input_layernorm.weight': 'backbone.layers.1.norm.weight',
      'model.layers.1.mixer.x_proj.weight': 'backbone.layers.1.mixer.x_proj.weight',
      'model.layers.1.mixer.A_log': 'backbone.layers.1.mixer.A_log',
    });
    expect(mamba.storedShapes['model.layers.0.mixer.conv1d.weight']).toEqual([128, 1, 4]);
    const bamba = importHfConfig(config('bamba'), 'b').weightMap;
    expect(bamba).toMatchObject({
      'model.norm.weight': 'model.final_layernorm.weight',
      'model.layers.0.mixer.dt_bias': 'model.layers.0.mamba.dt_bias',
      'model.layers.0.mixer.norm.weight': 'model.layers.0.mamba.norm.weight',
      'model.layers.1.post_attention_layernorm.weight': 'model.layers.1.pre_ff_layernorm.weight',
      'model.layers.1.mlp.gate_proj.weight': 'model.layers.1.feed_forward.gate_proj.weight',
    });
    const lfm2 = importHfConfig(config('lfm2'), 'l').weightMap;
    expect(lfm2).toMatchObject({
      'model.norm.weight': 'model.embedding_norm.weight',
      'model.layers.0.input_layernorm.weight': 'model.layers.0.operator_norm.weight',
      'model.layers.0.mixer.in_proj.weight': 'model.layers.0.conv.in_proj.weight',
      'model.layers.0.mixer.conv1d.weight': 'model.layers.0.conv.conv.weight',
      'model.layers.1.self_attn.o_proj.weight': 'model.layers.1.self_attn.out_proj.weight',
      'model.layers.1.self_attn.q_norm.weight': 'model.layers.1.self_attn.q_layernorm.weight',
      'model.layers.2.mlp.gate_proj.weight': 'model.layers.2.feed_forward.w1.weight',
      'model.layers.2.mlp.up_proj.weight': 'model.layers.2.feed_forward.w3.weight',
      'model.layers.2.mlp.down_proj.weight': 'model.layers.2.feed_forward.w2.weight',
    });
  });
});

describe('nemotron_h', () => {
  const NEMO = config('nemotron_h');

  it('maps every block to backbone.layers.{i}.mixer behind the layer norm', () => {
    const { weightMap } = importHfConfig(NEMO, 'n');
    expect(weightMap).toMatchObject({
      'model.layers.0.input_layernorm.weight': 'backbone.layers.0.norm.weight',
      'model.layers.0.mixer.dt_bias': 'backbone.layers.0.mixer.dt_bias',
      'model.layers.1.self_attn.q_proj.weight': 'backbone.layers.1.mixer.q_proj.weight',
      'model.layers.2.post_attention_layernorm.weight': 'backbone.layers.2.norm.weight',
      'model.layers.2.mlp.up_proj.weight': 'backbone.layers.2.mixer.up_proj.weight',
      'model.layers.3.mlp.gate.weight': 'backbone.layers.3.mixer.gate.weight',
      'model.layers.3.mlp.gate.e_score_correction_bias':
        'backbone.layers.3.mixer.gate.e_score_correction_bias',
      'model.layers.3.mlp.experts.1.down_proj.weight':
        'backbone.layers.3.mixer.experts.1.down_proj.weight',
      'model.layers.3.mlp.shared_expert.up_proj.weight':
        'backbone.layers.3.mixer.shared_experts.up_proj.weight',
    });
  });

  it('reads the legacy hybrid_override_pattern and its old key spellings', () => {
    const { layers_block_type: _, ...rest } = NEMO;
    const m = importHfConfig(
      {
        ...rest,
        hybrid_override_pattern: 'M*-E',
        num_hidden_layers: 4,
        rms_norm_eps: 1e-5,
        attention_head_dim: 16,
      },
      'n',
    ).model;
    expect(kinds(m)).toEqual(['mamba2/-', 'attention/-', 'none/mlp', 'none/moe']);
  });

  it('names what it cannot honour', () => {
    const cases: [object, RegExp][] = [
      [{ ...NEMO, num_hidden_layers: 5 }, /'num_hidden_layers' is 5 but the layer types list 4/],
      [
        { ...NEMO, layers_block_type: ['mamba', 'ssm'] },
        /entry "ssm" is not a NemotronH layer type/,
      ],
      [{ ...NEMO, moe_latent_size: 16 }, /'moe_latent_size' is set/],
      [{ ...NEMO, attention_head_dim: 32 }, /'attention_head_dim' is 32 but head_dim is 16/],
      [{ ...NEMO, num_nextn_predict_layers: 1 }, /multi-token prediction/],
    ];
    for (const [cfg, error] of cases) expect(() => importHfConfig(cfg, 'x')).toThrow(error);
  });
});

describe('jamba', () => {
  const JAMBA = config('jamba');
  const published = (): Record<string, unknown> => fixtureConfig('configs/jamba-v0.1.json');

  it('imports Jamba-v0.1 to the released layout: attention at 4, 12, 20, 28, MoE on odd layers', () => {
    const { model } = importHfConfig(published(), 'Jamba-v0.1');
    expect(
      model.layers.map((l, i) => (l.mixer?.kind === 'attention' ? i : -1)).filter((i) => i >= 0),
    ).toEqual([4, 12, 20, 28]);
    expect(model.layers.map((l) => l.ffnName)).toEqual(
      Array.from({ length: 32 }, (_, i) => (i % 2 === 1 ? 'moe' : 'mlp')),
    );
    expect(model.layers[1].ffn).toMatchObject({ experts: 16, topK: 2, expert: { hidden: 14336 } });
    // mamba_dt_rank 256 = ceil(4096 / 16); inner norms use rms_norm_eps.
    expect(model.layers[0].mixer).toMatchObject({
      dInner: 8192,
      dtRank: 256,
      innerNorms: { eps: 1e-6 },
    });
    // Published: 52B parameters (51.6B on the Hub), 12B active.
    const c = countParams(model);
    expect(Math.abs(c.total - 51.6e9) / 51.6e9).toBeLessThan(0.005);
    expect(Math.abs(c.active - 12e9) / 12e9).toBeLessThan(0.01);
  });

  it('derives the JambaConfig defaults and dt_rank "auto"', () => {
    const { model } = importHfConfig(
      {
        model_type: 'jamba',
        hidden_size: 40,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        num_hidden_layers: 8,
        vocab_size: 10,
        mamba_dt_rank: 'auto',
      },
      'j',
    );
    expect(model.layers[0].mixer).toMatchObject({ dInner: 80, dtRank: 3, dState: 16, dConv: 4 });
    expect(kinds(model)).toEqual(
      Array.from(
        { length: 8 },
        (_, i) => `${i === 4 ? 'attention' : 'mamba1'}/${i % 2 ? 'moe' : 'mlp'}`,
      ),
    );
    // num_experts 1 makes every layer dense (JambaMLP), as in transformers.
    const dense = importHfConfig({ ...JAMBA, num_experts: 1 }, 'j').model;
    expect(kinds(dense)).toEqual(['mamba1/mlp', 'attention/mlp']);
  });

  it('maps the checkpoint names: mamba, feed_forward.router, pre_ff_layernorm, final_layernorm', () => {
    const { weightMap, storedShapes } = importHfConfig(JAMBA, 'j');
    expect(weightMap).toMatchObject({
      'model.norm.weight': 'model.final_layernorm.weight',
      'model.layers.0.mixer.dt_layernorm.weight': 'model.layers.0.mamba.dt_layernorm.weight',
      'model.layers.0.mixer.b_layernorm.weight': 'model.layers.0.mamba.b_layernorm.weight',
      'model.layers.0.mixer.x_proj.weight': 'model.layers.0.mamba.x_proj.weight',
      'model.layers.0.post_attention_layernorm.weight': 'model.layers.0.pre_ff_layernorm.weight',
      'model.layers.0.mlp.gate.weight': 'model.layers.0.feed_forward.router.weight',
      'model.layers.0.mlp.experts.3.gate_proj.weight':
        'model.layers.0.feed_forward.experts.3.gate_proj.weight',
      'model.layers.1.mlp.gate_proj.weight': 'model.layers.1.feed_forward.gate_proj.weight',
      'model.layers.1.self_attn.q_proj.weight': 'model.layers.1.self_attn.q_proj.weight',
    });
    expect(storedShapes['model.layers.0.mixer.conv1d.weight']).toEqual([128, 1, 4]);
  });

  it('names what it cannot honour', () => {
    const cases: [object, RegExp][] = [
      [
        { ...JAMBA, attn_layer_offset: 2 },
        /'attn_layer_offset' 2 must be in \[0, attn_layer_period 2\)/,
      ],
      [{ ...JAMBA, expert_layer_offset: 3 }, /'expert_layer_offset' 3 must be in/],
      [{ ...JAMBA, num_experts_per_tok: 5 }, /'num_experts_per_tok' 5 exceeds num_experts 4/],
      [{ ...JAMBA, sliding_window: 64 }, /'sliding_window' is set/],
      [{ ...JAMBA, hidden_act: 'gelu' }, /'hidden_act' must be silu/],
      [
        { ...JAMBA, layers_block_type: ['attention', 'mamba'] },
        /'layers_block_type' disagrees with attn_layer_period/,
      ],
      [
        { ...JAMBA, mamba_d_model: 64 },
        /'mamba_d_model' is not understood by strata's jamba importer/,
      ],
    ];
    for (const [cfg, error] of cases) expect(() => importHfConfig(cfg, 'x')).toThrow(error);
    // A written-out layers_block_type that agrees is accepted.
    expect(() =>
      importHfConfig({ ...JAMBA, layers_block_type: ['mamba', 'attention'] }, 'x'),
    ).not.toThrow();
  });
});

describe('config rules', () => {
  const MAMBA2 = config('mamba2');

  it('derives the defaults of the config classes', () => {
    const { model } = importHfConfig(
      { model_type: 'mamba', hidden_size: 40, num_hidden_layers: 1, vocab_size: 10 },
      'm',
    );
    expect(model.layers[0].mixer).toMatchObject({
      dInner: 80,
      dtRank: 3,
      dState: 16,
      projBias: false,
    });
    expect(model.tieEmbeddings).toBe(true);
    const bamba = importHfConfig(
      { ...config('bamba'), mamba_d_head: 'auto', mamba_n_heads: 4 },
      'b',
    ).model;
    expect(bamba.layers[0].mixer).toMatchObject({ heads: 4, headDim: 32 });
  });

  it('reads finite dt limits and the original LFM2 spellings', () => {
    const m = importHfConfig({ ...MAMBA2, time_step_limit: [0.001, 0.1] }, 'm').model;
    expect(m.layers[0].mixer).toMatchObject({ dtMin: 0.001, dtMax: 0.1 });
    const { layer_types: _, intermediate_size: __, ...lfm2 } = config('lfm2');
    const old = importHfConfig(
      {
        ...lfm2,
        full_attn_idxs: [1],
        block_ff_dim: 96,
        block_auto_adjust_ff_dim: true,
        block_multiple_of: 32,
        tie_embedding: false,
        block_dim: 64,
        num_heads: 4,
      },
      'l',
    ).model;
    expect(kinds(old)).toEqual(['shortconv/mlp', 'attention/mlp', 'shortconv/mlp']);
    // int(2 × 96 / 3) = 64, rounded up to a multiple of 32.
    expect(old.layers[0].ffn).toMatchObject({ hidden: 64 });
    expect(old.tieEmbeddings).toBe(false);
  });

  it('names what it cannot honour', () => {
    const cases: [object, RegExp][] = [
      [
        { ...MAMBA2, head_dim: 8 },
        /'head_dim' 8 × num_heads 8 = 64 is not expand × hidden_size \(128\)/,
      ],
      [{ ...MAMBA2, n_groups: 3 }, /'n_groups' 3 does not divide num_heads 8/],
      [{ ...MAMBA2, rms_norm: false }, /'rms_norm' is false/],
      [{ ...MAMBA2, hidden_act: 'gelu' }, /'hidden_act' must be silu/],
      [{ ...MAMBA2, time_step_limit: [0.5, 0.1] }, /'time_step_limit' must be \[min, max\]/],
      [{ ...config('lfm2'), block_dim: 32 }, /'block_dim' is 32 but hidden_size is 64/],
      [{ ...config('lfm2'), layer_types: ['conv', 'mamba', 'conv'] }, /entry "mamba" is not conv/],
      [{ ...config('bamba'), attn_layer_indices: [2] }, /'attn_layer_indices' must list distinct/],
      [{ ...config('bamba'), partial_rotary_factor: 0.25 }, /partial_rotary_factor/],
      [
        { ...config('mamba'), d_model: 64 },
        /'d_model' is not understood by strata's mamba importer/,
      ],
    ];
    for (const [cfg, error] of cases) expect(() => importHfConfig(cfg, 'x')).toThrow(error);
  });
});
