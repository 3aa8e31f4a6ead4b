/**
 * The bundle manifest: what a compiled model is, independent of how it was
 * compiled. Versioned and schema-checked (ajv) on load so a damaged or foreign
 * bundle fails with a message naming the problem.
 */
import type { ModelIR } from '../src/spec/model.ts';
import type { GridDim, BindingDecl } from './kernel-ir.ts';
import type { DeviceCaps } from '../src/target.ts';
import type { TokenizerFiles } from '../src/import/tokenizer-files.ts';
import { WEIGHT_TYPES, dtypeBytes, type DType, type WeightType } from '../src/graph/dtype.ts';
import { PRECISIONS, type Precision } from '../src/passes/precision.ts';

/**
 * How a weight of `dtype` is written in the bundle's safetensors file: f32 and f16 as themselves;
 * q8 and q4, which safetensors has no type for, as their bytes (U8), the manifest's dtype and
 * shape saying how to read them.
 */
export function storedEntry(
  dtype: WeightType,
  shape: readonly number[],
): { dtype: 'F32' | 'F16' | 'U8'; shape: number[]; bytes: number } {
  const n = shape.reduce((a, b) => a * b, 1);
  // f16 without the padding to a whole word its buffer has: safetensors allows no holes.
  if (dtype === 'f16') return { dtype: 'F16', shape: [...shape], bytes: 2 * n };
  if (dtype === 'f32') return { dtype: 'F32', shape: [...shape], bytes: 4 * n };
  const bytes = dtypeBytes(dtype, n);
  return { dtype: 'U8', shape: [bytes], bytes };
}

export const BUNDLE_FORMAT = 'strata-bundle';
/** 2: tensors and state carry their dtype; compile.precision says how weights are stored. */
export const BUNDLE_VERSION = 2;

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
  compile: {
    maxT: number;
    capacity: number;
    /**
     * Sequences per decode step (compile --batch; runtime/batch.ts runs them). Absent: 1, and
     * the bundle is what it was before batching existed.
     */
    batch?: number;
    /**
     * 'slot' (batched bundles): the prefill phase is one sequence's, run per batch slot
     * (runtime/batch.ts). Batched bundles without it (older) fed prompts through the batched
     * step; BatchSequence refuses them rather than bind their prefill to one slot's buffers.
     */
    batchPrefill?: 'slot';
    fused: boolean;
    caps: DeviceCaps;
    precision: Precision;
  };
  weightsFile: string;
  /** Weights: the logical shape, and the type they are stored as (src/graph/dtype.ts). */
  tensors: { name: string; shape: number[]; dtype: WeightType }[];
  /**
   * `shared` (batched bundles only): whole-run state, such as MoE load counters, that every
   * sequence adds to, rather than a slice per sequence; a batch slot's prefill binds it whole.
   */
  state: { name: string; shape: number[]; dtype: DType; shared?: true }[];
  kernels: ManifestKernel[];
  phases: { prefill: ManifestPhase; decode: ManifestPhase };
  /**
   * 'bytes': UTF-8 bytes are ids (specs without a tokenizer). 'file': the model's tokenizer.json
   * and tokenizer_config.json, copied into the bundle, and the ids generation stops at. 'none': a
   * checkpoint without a tokenizer strata reads; text prompts are refused.
   */
  tokenizer:
    | { kind: 'bytes' }
    | { kind: 'none' }
    | { kind: 'file'; file: string; config: string; eos: number[] };
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
        sym: { enum: ['T', 'L', 'D'] },
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

const capsProperties = {
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
  bufferView: { type: 'boolean' },
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
};
// bufferView arrived after bundles had been written: absent, it reads as false.
const caps = closed(
  capsProperties,
  Object.keys(capsProperties).filter((k) => k !== 'bufferView'),
);

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
      compile: closed(
        {
          maxT: posInt,
          capacity: posInt,
          batch: posInt,
          batchPrefill: { const: 'slot' },
          fused: { type: 'boolean' },
          caps,
          precision: { enum: [...PRECISIONS] },
        },
        // batch only in batched bundles, so single-sequence ones stay byte-identical.
        ['maxT', 'capacity', 'fused', 'caps', 'precision'],
      ),
      weightsFile: bundleFile,
      tensors: {
        type: 'array',
        items: closed({ name, shape, dtype: { enum: [...WEIGHT_TYPES] } }),
      },
      state: {
        type: 'array',
        items: closed(
          {
            name,
            shape: { type: 'array', items: posInt },
            dtype: { enum: ['f32', 'f16', 'u32'] },
            shared: { const: true },
          },
          ['name', 'shape', 'dtype'],
        ),
      },
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
      // Discriminated by kind, so a bad 'file' entry is reported against the 'file' form alone.
      tokenizer: {
        type: 'object',
        required: ['kind'],
        properties: { kind: { enum: ['bytes', 'none', 'file'] } },
        allOf: [
          {
            if: { properties: { kind: { const: 'file' } } },
            then: closed({
              kind: { const: 'file' },
              file: bundleFile,
              config: bundleFile,
              eos: { type: 'array', items: natInt },
            }),
            else: closed({ kind: { enum: ['bytes', 'none'] } }),
          },
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
  /**
   * The named tensor's stored bytes (its manifest dtype's layout, what the GPU binds); must throw
   * an error naming the tensor if it is missing or mis-sized.
   */
  tensor(name: string, shape: number[]): Promise<Uint8Array>;
  /**
   * Optional, preferred when present: every manifest tensor's stored bytes in pieces, in whatever
   * order the source reads them (a fetched file: its own order), so a loader can upload each
   * piece as it arrives and never hold a tensor whole. `offset` and the piece's length are
   * multiples of 4 (the last piece of a tensor zero-padded); `bytes` is valid only during the call.
   */
  streamTensors?(sink: (name: string, offset: number, bytes: Uint8Array) => void): Promise<void>;
  /** The model's tokenizer when the manifest names one ('file'); null for 'bytes'. */
  tokenizer(): Promise<TokenizerFiles | null>;
  /** Release files; GpuModel.load calls it once everything is on the GPU. */
  close?(): Promise<void>;
}

export type Progress = (stage: string, done: number, total: number) => void;
