/**
 * Kernel bindings come from the op definition: order, element type, access, and the in-place
 * state output sharing its input's binding; plus the one f32 literal writer.
 */
import { describe, expect, it } from 'vitest';
import { opBindings, wgslF32 } from '../../codegen/kernels/wgsl-builder.ts';
import type {
  Conv1dAttrs,
  EmbedAttrs,
  LinearRecurrenceAttrs,
  PointwiseAttrs,
} from '../../src/graph/ops.ts';

const rwkv: LinearRecurrenceAttrs = {
  op: 'linear_recurrence',
  heads: 2,
  qHeads: 2,
  kHeads: 2,
  vHeads: 2,
  gateHeads: 2,
  keyDim: 4,
  valueDim: 4,
  scale: 1,
  decay: 'key',
  update: 'dplr',
  normalize: false,
  normEps: 0,
};

describe('opBindings', () => {
  it("declares the definition's inputs, then outputs that are not in-place inputs", () => {
    const { bindings, decls } = opBindings(rwkv);
    expect(bindings.map((b) => `${b.name}:${b.access}`)).toEqual([
      'step:uniform',
      'q:read',
      'k:read',
      'v:read',
      'g:read',
      'a:read',
      'b:read',
      'state:read_write',
      'out:read_write',
    ]);
    expect(decls).toContain('@group(0) @binding(7) var<storage, read_write> state: array<f32>;');
    expect(decls.split('\n')).toHaveLength(8);
  });

  it('declares optional inputs only when present, in-place state once, and vec4 where asked', () => {
    const conv: Conv1dAttrs = { op: 'conv1d', channels: 8, kernel: 4, bias: true, silu: true };
    expect(opBindings(conv).bindings.map((b) => `${b.name}:${b.access}`)).toEqual([
      'step:uniform',
      'x:read',
      'w:read',
      'bias:read',
      'state:read_write',
      'out:read_write',
    ]);
    expect(opBindings({ ...conv, bias: false }).bindings.map((b) => b.name)).toEqual([
      'step',
      'x',
      'w',
      'state',
      'out',
    ]);
    // A split table's node reads and writes out: one read_write binding.
    const split: EmbedAttrs = {
      op: 'embed',
      vocab: 10,
      dim: 8,
      scale: 1,
      rowStart: 4,
      rows: 6,
      tableType: 'f32',
    };
    const { decls } = opBindings(split, [], ['table', 'out']);
    expect(decls.split('\n')).toEqual([
      '@group(0) @binding(1) var<storage, read> ids: array<u32>;',
      '@group(0) @binding(2) var<storage, read> table: array<vec4<f32>>;',
      '@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;',
    ]);
    expect(() => opBindings(split, [], ['nope'])).toThrow(/no binding 'nope'/);
  });

  it('rejects a binding named like an identifier the kernel keeps for itself', () => {
    const a: PointwiseAttrs = {
      op: 'pointwise',
      width: 1,
      inputs: { t: { perToken: true, cols: 1, inner: 1, repeat: 1 } },
      expr: { in: 't' },
    };
    expect(() => opBindings(a, ['t'])).toThrow(/'t' cannot be a binding name/);
  });
});

describe('wgslF32', () => {
  it('writes f32 literals and refuses what overflows f32', () => {
    expect(wgslF32(2)).toBe('2.0');
    expect(wgslF32(-0.5)).toBe('-0.5');
    expect(wgslF32(1e-6)).toBe('0.000001');
    expect(wgslF32(1e-7)).toBe('1e-7');
    expect(() => wgslF32(1e39)).toThrow(/f32 literal/);
    expect(() => wgslF32(NaN)).toThrow(/f32 literal/);
  });
});
