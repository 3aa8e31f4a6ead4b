/**
 * The bundle manifest: what a compiled model is, independent of how it was
 * compiled. Versioned and schema-checked (ajv) on load so a damaged or foreign
 * bundle fails with a message naming the problem.
 */
import type { ModelIR } from '../src/spec/model.ts';
import type { GridDim, BindingDecl } from './kernel-ir.ts';
import type { DeviceCaps } from '../src/target.ts';

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

const posInt = { type: 'integer', minimum: 1 } as const;
const natInt = { type: 'integer', minimum: 0 } as const;
const name = { type: 'string', minLength: 1 } as const;
const shape = { type: 'array', items: natInt } as const;
/** A file of the bundle: relative, forward slashes, no `..` (bundle-node.ts checks it resolves inside). */
const bundleFile = {
  type: 'string',
  minLength: 1,
  pattern: '^(?![/\\\\])(?![A-Za-z]:)(?!.*(^|[/\\\\])\\.\\.([/\\\\]|$)).*$',
} as const;

function closed(
  properties: Record<string, unknown>,
  required: string[] = Object.keys(properties),
): Record<string, unknown> {
  return { type: 'object', additionalProperties: false, required, properties };
}

const gridDim = {
  anyOf: [
    natInt,
    closed(
      {
        sym: { enum: ['T', 'L'] },
        mul: { type: 'number' },
        add: { type: 'number' },
        div: { type: 'number', exclusiveMinimum: 0 },
      },
      ['sym'],
    ),
  ],
};

const phase = closed({
  maxT: posInt,
  slots: { type: 'array', items: natInt },
  scratch: { type: 'object', additionalProperties: natInt },
  dispatches: {
    type: 'array',
    items: closed({
      kernel: name,
      bind: { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
      grid: { type: 'array', items: gridDim, minItems: 3, maxItems: 3 },
      label: { type: 'string' },
    }),
  },
  ioBytes: closed({ ids: natInt, logits: natInt, token: natInt }),
});

const caps = closed({
  maxInvocationsPerWorkgroup: posInt,
  maxWorkgroupSizeX: posInt,
  maxWorkgroupSizeY: posInt,
  maxWorkgroupStorageBytes: natInt,
  maxStorageBindingBytes: posInt,
  maxBufferBytes: posInt,
  maxStorageBuffersPerStage: posInt,
  maxWorkgroupsPerDimension: posInt,
  subgroups: { type: 'boolean' },
  shaderF16: { type: 'boolean' },
  subgroupMatrix: { type: 'boolean' },
  subgroupMaxSize: natInt,
  subgroupMatrixConfigs: {
    type: 'array',
    items: closed({
      componentType: { type: 'string' },
      resultComponentType: { type: 'string' },
      M: posInt,
      N: posInt,
      K: posInt,
    }),
  },
});

/**
 * JSON Schema of manifest.json. The `model` field is checked here only as an object: it is a
 * ModelIR, checked by the spec loader's own schema and rules (runtime/manifest-check.ts).
 */
export const MANIFEST_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'strata bundle manifest',
  ...closed(
    {
      format: { const: BUNDLE_FORMAT },
      version: { type: 'integer' },
      createdBy: { type: 'string' },
      model: { type: 'object' },
      compile: closed({
        maxT: posInt,
        capacity: posInt,
        fused: { type: 'boolean' },
        caps,
        precision: { const: 'f32' },
      }),
      weightsFile: bundleFile,
      tensors: { type: 'array', items: closed({ name, shape }) },
      state: { type: 'array', items: closed({ name, shape: { type: 'array', items: posInt } }) },
      kernels: {
        type: 'array',
        items: closed({
          name,
          file: bundleFile,
          bindings: {
            type: 'array',
            minItems: 1,
            items: closed({ name, access: { enum: ['read', 'read_write', 'uniform'] } }),
          },
          workgroupSize: { type: 'array', items: posInt, minItems: 3, maxItems: 3 },
        }),
      },
      phases: closed({ prefill: phase, decode: phase }),
      tokenizer: {
        anyOf: [
          closed({ kind: { const: 'bytes' } }),
          closed({ kind: { const: 'file' }, file: bundleFile }),
        ],
      },
    },
    [
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
  ),
} as const;

export interface BundleSource {
  manifest: BundleManifest;
  shader(file: string): Promise<string>;
  /** The named tensor as f32; must throw an error naming the tensor if it is missing or mis-sized. */
  tensor(name: string, shape: number[]): Promise<Float32Array>;
  /** Release files; GpuModel.load calls it once everything is on the GPU. */
  close?(): Promise<void>;
}

export type Progress = (stage: string, done: number, total: number) => void;
