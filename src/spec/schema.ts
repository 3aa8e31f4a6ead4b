/**
 * JSON Schema (draft-07) of ModelIR, which is also the YAML/JSON spec format. Hand-written to
 * mirror model.ts; test/spec/schema.test.ts checks that every resolved spec validates.
 * Discriminated unions use ajv's `discriminator` keyword so an error names the field that is
 * wrong rather than every branch that did not match.
 */

export type JsonSchema = { readonly [key: string]: unknown };

const posInt = { type: 'integer', minimum: 1 } as const;
const posNumber = { type: 'number', exclusiveMinimum: 0 } as const;
const bool = { type: 'boolean' } as const;

function object(properties: Record<string, JsonSchema>): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties),
    properties,
  };
}

/** object() with `optional` left out of `required`: fields added after specs were written. */
function optionalKeys(optional: string[], properties: Record<string, JsonSchema>): JsonSchema {
  const o = object(properties) as { required: string[] };
  return { ...o, required: o.required.filter((k) => !optional.includes(k)) };
}

/** `null` or the schema: if/else keeps errors about the object instead of "must be null". */
function nullable(ref: string): JsonSchema {
  return { if: { type: 'null' }, else: { $ref: ref } };
}

const kind = (name: string) => ({ const: name });

export const modelIrSchema: JsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://strata.dev/schema/model-ir-1.json',
  title: 'strata ModelIR',
  ...object({
    version: { const: 1 },
    name: { type: 'string', minLength: 1 },
    vocab: posInt,
    dim: posInt,
    norm: { $ref: '#/definitions/norm' },
    tieEmbeddings: bool,
    embeddingScale: posNumber,
    logitSoftcap: { type: ['number', 'null'], exclusiveMinimum: 0 },
    maxContext: posInt,
    layers: { type: 'array', minItems: 1, items: { $ref: '#/definitions/layer' } },
  }),
  definitions: {
    name: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    norm: object({
      kind: { enum: ['rms', 'layer'] },
      eps: posNumber,
      unitOffset: bool,
      bias: bool,
    }),
    layer: object({
      index: { type: 'integer', minimum: 0 },
      mixerName: { $ref: '#/definitions/name' },
      // null: a layer with only its ffn (Nemotron-H's MLP layers).
      mixer: nullable('#/definitions/mixer'),
      ffnName: { type: ['string', 'null'], pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
      ffn: nullable('#/definitions/ffn'),
    }),
    mixer: {
      type: 'object',
      required: ['kind'],
      discriminator: { propertyName: 'kind' },
      oneOf: [
        { $ref: '#/definitions/attention' },
        { $ref: '#/definitions/mamba1' },
        { $ref: '#/definitions/mamba2' },
        { $ref: '#/definitions/shortconv' },
        { $ref: '#/definitions/gated_deltanet' },
      ],
    },
    attention: optionalKeys(['outputGate'], {
      kind: kind('attention'),
      heads: posInt,
      kvHeads: posInt,
      headDim: posInt,
      rope: nullable('#/definitions/rope'),
      qkNorm: bool,
      qkvBias: bool,
      outBias: bool,
      causal: bool,
      window: { type: ['integer', 'null'], minimum: 1 },
      scale: posNumber,
      softcap: { type: ['number', 'null'], exclusiveMinimum: 0 },
      // Optional so specs written before gated attention still load (the loader fills false).
      outputGate: bool,
    }),
    mamba1: object({
      kind: kind('mamba1'),
      dInner: posInt,
      dState: posInt,
      dConv: posInt,
      dtRank: posInt,
      convBias: bool,
      projBias: bool,
      innerNorms: { if: { type: 'null' }, else: object({ eps: posNumber }) },
    }),
    mamba2: object({
      kind: kind('mamba2'),
      heads: posInt,
      headDim: posInt,
      dState: posInt,
      groups: posInt,
      dConv: posInt,
      chunk: posInt,
      convBias: bool,
      projBias: bool,
      normGroup: posInt,
      normEps: posNumber,
      dtMin: { type: 'number', minimum: 0 },
      // null: no upper clamp (HF's time_step_limit of inf, which JSON cannot write).
      dtMax: { type: ['number', 'null'], minimum: 0 },
    }),
    gated_deltanet: object({
      kind: kind('gated_deltanet'),
      keyHeads: posInt,
      valueHeads: posInt,
      keyHeadDim: posInt,
      valueHeadDim: posInt,
      dConv: posInt,
      normEps: posNumber,
    }),
    shortconv: object({
      kind: kind('shortconv'),
      lCache: posInt,
      bias: bool,
    }),
    rope: object({
      theta: posNumber,
      rotaryDim: posInt,
      scaling: { $ref: '#/definitions/ropeScaling' },
    }),
    ropeScaling: {
      type: 'object',
      required: ['kind'],
      discriminator: { propertyName: 'kind' },
      oneOf: [
        object({ kind: kind('none') }),
        object({ kind: kind('linear'), factor: posNumber }),
        object({
          kind: kind('llama3'),
          factor: posNumber,
          lowFreqFactor: posNumber,
          highFreqFactor: posNumber,
          originalMaxPositions: posInt,
        }),
        object({
          kind: kind('yarn'),
          factor: posNumber,
          originalMaxPositions: posInt,
          betaFast: posNumber,
          betaSlow: posNumber,
          attentionFactor: posNumber,
        }),
      ],
    },
    ffn: {
      type: 'object',
      required: ['kind'],
      discriminator: { propertyName: 'kind' },
      oneOf: [{ $ref: '#/definitions/mlp' }, { $ref: '#/definitions/moe' }],
    },
    moe: object({
      kind: kind('moe'),
      experts: posInt,
      topK: posInt,
      expert: { $ref: '#/definitions/mlp' },
      clamp: {
        if: { type: 'null' },
        else: object({ limit: posNumber, alpha: { type: 'number' } }),
      },
      router: object({
        scoring: { enum: ['softmax', 'sigmoid'] },
        normalize: bool,
        scale: posNumber,
        bias: bool,
        correctionBias: bool,
        groups: posInt,
        topkGroups: posInt,
      }),
      shared: nullable('#/definitions/mlp'),
      sharedGate: bool,
    }),
    mlp: object({
      kind: kind('mlp'),
      hidden: posInt,
      act: { enum: ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2'] },
      gated: bool,
      bias: bool,
    }),
  },
};
