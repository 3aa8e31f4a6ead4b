/**
 * The bundle manifest: what a compiled model is, independent of how it was
 * compiled. Versioned and schema-checked (ajv) on load so a damaged or foreign
 * bundle fails with a message naming the problem.
 */
import type { ModelIR } from '../src/spec/model.ts';
import type { DeviceCaps, GridDim, BindingDecl } from '../codegen/kernel-ir.ts';

export const BUNDLE_FORMAT = 'strata-bundle';
export const BUNDLE_VERSION = 1;

export interface ManifestKernel {
  name: string;
  file: string;
  bindings: BindingDecl[];
  workgroupSize: [number, number, number];
}

export interface ManifestDispatch {
  kernel: string;
  bind: Record<string, string>;
  grid: [GridDim, GridDim, GridDim];
  label: string;
}

export interface ManifestPhase {
  maxT: number;
  slots: number[];
  scratch: Record<string, number>;
  dispatches: ManifestDispatch[];
  ioBytes: { ids: number; logits: number; token: number };
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  version: number;
  createdBy: string;
  model: ModelIR;
  compile: { maxT: number; capacity: number; fused: boolean; caps: DeviceCaps; precision: 'f32' };
  weightsFile: string;
  tensors: { name: string; shape: number[] }[];
  state: { name: string; shape: number[] }[];
  kernels: ManifestKernel[];
  phases: { prefill: ManifestPhase; decode: ManifestPhase };
  tokenizer: { kind: 'bytes' } | { kind: 'file'; file: string };
}

const gridDim = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    {
      type: 'object',
      required: ['sym'],
      additionalProperties: false,
      properties: {
        sym: { enum: ['T', 'L'] },
        mul: { type: 'number' },
        add: { type: 'number' },
        div: { type: 'number' },
      },
    },
  ],
};

const phase = {
  type: 'object',
  required: ['maxT', 'slots', 'scratch', 'dispatches', 'ioBytes'],
  properties: {
    maxT: { type: 'integer', minimum: 1 },
    slots: { type: 'array', items: { type: 'integer', minimum: 0 } },
    scratch: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 } },
    dispatches: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kernel', 'bind', 'grid', 'label'],
        properties: {
          kernel: { type: 'string' },
          bind: { type: 'object', additionalProperties: { type: 'string' } },
          grid: { type: 'array', items: gridDim, minItems: 3, maxItems: 3 },
          label: { type: 'string' },
        },
      },
    },
    ioBytes: { type: 'object', required: ['ids', 'logits', 'token'] },
  },
};

/** JSON Schema of manifest.json (the model field is checked by the ModelIR schema separately). */
export const MANIFEST_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'strata bundle manifest',
  type: 'object',
  required: [
    'format',
    'version',
    'model',
    'compile',
    'weightsFile',
    'tensors',
    'state',
    'kernels',
    'phases',
    'tokenizer',
  ],
  properties: {
    format: { const: BUNDLE_FORMAT },
    version: { type: 'integer' },
    createdBy: { type: 'string' },
    model: { type: 'object' },
    compile: { type: 'object', required: ['maxT', 'capacity', 'fused', 'caps', 'precision'] },
    weightsFile: { type: 'string' },
    tensors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'shape'],
        properties: {
          name: { type: 'string' },
          shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
        },
      },
    },
    state: { type: 'array' },
    kernels: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'file', 'bindings', 'workgroupSize'],
        properties: { name: { type: 'string' }, file: { type: 'string' } },
      },
    },
    phases: {
      type: 'object',
      required: ['prefill', 'decode'],
      properties: { prefill: phase, decode: phase },
    },
    tokenizer: { type: 'object', required: ['kind'] },
  },
} as const;
