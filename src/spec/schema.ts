/**
 * JSON Schema (draft-07) of ModelIR, which is also the YAML/JSON spec format. Hand-written to
 * mirror model.ts; test/spec/schema.test.ts checks that every resolved spec validates.
 * Discriminated unions use ajv's `discriminator` keyword so an error names the field that is
 * wrong rather than every branch that did not match.
 */

import { fieldCap, LIST_CAPS } from './limits.ts';

import {
  bool,
  kind,
  nullable,
  object,
  posInt,
  posNumber,
  type JsonSchema,
} from './schema-parts.ts';

export type { JsonSchema } from './schema-parts.ts';
import { MIXER_LIST } from '../mixers/index.ts';

/** Absent in models without shared blocks (Zamba2). */
const SHARED_BLOCKS = {
  sharedBlocks: { type: 'array', items: { $ref: '#/definitions/sharedBlock' } },
} as const;

/** Absent or null: the layer runs no shared block. */
const LAYER_SHARED = {
  shared: { type: ['string', 'null'], pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
} as const;

/**
 * The schema with the caps of limits.ts as `maximum`s (integer fields, by name) and `maxItems`
 * (the top-level lists), so the table stays the one place that states them.
 */
function withCaps(schema: JsonSchema): JsonSchema {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== 'object' || v === null) return v;
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v)) out[k] = walk(item);
    const props = out.properties as Record<string, Record<string, unknown>> | undefined;
    if (props && typeof props === 'object') {
      for (const [field, prop] of Object.entries(props)) {
        const cap = fieldCap(field);
        const type = ([] as unknown[]).concat(prop.type);
        if (cap !== undefined && type.includes('integer')) props[field] = { ...prop, maximum: cap };
        if (Object.hasOwn(LIST_CAPS, field) && prop.type === 'array') {
          props[field] = { ...prop, maxItems: LIST_CAPS[field] };
        }
      }
    }
    return out;
  };
  return walk(schema) as JsonSchema;
}

export const modelIrSchema: JsonSchema = withCaps({
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://strata.dev/schema/model-ir-1.json',
  title: 'strata ModelIR',
  ...object(
    {
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
    },
    // Added after the first specs were written: a spec without them keeps its meaning.
    {
      postNorms: { ...bool, default: false },
      residualScale: { ...posNumber, default: 1 },
      logitScale: { ...posNumber, default: 1 },
      ...SHARED_BLOCKS,
      diffusion: { $ref: '#/definitions/diffusion' },
      layerScalars: bool,
      headBias: bool,
    },
  ),
  definitions: {
    ...Object.fromEntries(MIXER_LIST.map((d) => [d.kind.name, d.schema])),
    name: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    diffusion: {
      // The kind picks the branch, so errors name the fields of the kind given.
      if: { type: 'object', properties: { kind: kind('bd3lm') }, required: ['kind'] },
      then: object({
        kind: kind('bd3lm'),
        maskId: { type: 'integer', minimum: 0 },
        genLength: posInt,
        blockLength: posInt,
        steps: posInt,
        sampler: { enum: ['first_hitting', 'ddpm'] },
        temperature: { type: 'number', minimum: 0 },
        nucleusP: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
      }),
      else: {
        if: { type: 'object', properties: { kind: kind('entropy_bound') }, required: ['kind'] },
        then: object({
          kind: kind('entropy_bound'),
          canvasLength: posInt,
          genLength: posInt,
          maxSteps: posInt,
          tMin: { type: 'number', minimum: 0 },
          tMax: { type: 'number', minimum: 0 },
          entropyBound: { type: 'number', exclusiveMinimum: 0 },
          stabilityThreshold: { type: 'integer', minimum: 0 },
          confidenceThreshold: { type: 'number', minimum: 0 },
          selfCondition: { $ref: '#/definitions/mlp' },
        }),
        else: object(
          {
            kind: { enum: ['llada', 'dream'] },
            maskId: { type: 'integer', minimum: 0 },
            genLength: posInt,
            blockLength: posInt,
            steps: posInt,
            remasking: { enum: ['low_confidence', 'random', 'margin', 'entropy'] },
            temperature: { type: 'number', minimum: 0 },
            cfgScale: { type: 'number', minimum: 0 },
          },
          // Added with Dream: absent means LLaDA's (no shift) and Dream's default eps.
          { shiftLogits: bool, eps: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 } },
        ),
      },
    },
    norm: object({
      kind: { enum: ['rms', 'layer'] },
      eps: posNumber,
      unitOffset: bool,
      bias: bool,
    }),
    layer: object(
      {
        index: { type: 'integer', minimum: 0 },
        mixerName: { $ref: '#/definitions/name' },
        // null: a layer with only its ffn (Nemotron-H's MLP layers).
        mixer: nullable('#/definitions/mixer'),
        ffnName: { type: ['string', 'null'], pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
        ffn: nullable('#/definitions/ffn'),
      },
      LAYER_SHARED,
    ),
    sharedBlock: object({
      kind: kind('shared'),
      name: { $ref: '#/definitions/name' },
      attention: { $ref: '#/definitions/attention' },
      ffn: { $ref: '#/definitions/mlp' },
      adapterRank: posInt,
      attentionAdapters: bool,
      ffnAdapters: bool,
    }),
    mixer: {
      type: 'object',
      required: ['kind'],
      discriminator: { propertyName: 'kind' },
      oneOf: MIXER_LIST.map((d) => ({ $ref: `#/definitions/${d.kind.name}` })),
    },
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
        object(
          {
            kind: kind('yarn'),
            factor: posNumber,
            originalMaxPositions: posInt,
            betaFast: posNumber,
            betaSlow: posNumber,
            attentionFactor: posNumber,
          },
          { truncate: { ...bool, default: true } },
        ),
        object({
          kind: kind('proportional'),
          pairs: { type: 'integer', minimum: 0 },
          factor: posNumber,
        }),
      ],
    },
    ffn: {
      type: 'object',
      required: ['kind'],
      discriminator: { propertyName: 'kind' },
      oneOf: [{ $ref: '#/definitions/mlp' }, { $ref: '#/definitions/moe' }],
    },
    moe: object(
      {
        kind: kind('moe'),
        experts: posInt,
        topK: posInt,
        expert: { $ref: '#/definitions/mlp' },
        clamp: {
          if: { type: 'null' },
          else: object({ limit: posNumber, alpha: posNumber }),
        },
        router: object(
          {
            scoring: { enum: ['softmax', 'sigmoid'] },
            normalize: bool,
            scale: posNumber,
            bias: bool,
            correctionBias: bool,
            groups: posInt,
            topkGroups: posInt,
          },
          { inputScale: bool, expertScale: bool },
        ),
        shared: nullable('#/definitions/mlp'),
        sharedGate: bool,
      },
      { branchNorms: bool },
    ),
    mlp: object(
      {
        kind: kind('mlp'),
        hidden: posInt,
        act: { enum: ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2'] },
        gated: bool,
        bias: bool,
      },
      { gateScale: posNumber, downScale: posNumber, tokenShift: bool },
    ),
  },
});
