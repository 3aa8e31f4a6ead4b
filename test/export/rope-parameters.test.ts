/**
 * ropeParameters (src/export/hf-common.ts) for the proportional scaling: the rope_parameters dict
 * transformers reads back into the same RoPE (readDiffusionGemmaConfig's inverse for one layer type).
 */
import { describe, expect, it } from 'vitest';
import { ExportError, ropeParameters } from '../../src/export/hf-common.ts';

describe('ropeParameters: proportional', () => {
  it('writes rope_type proportional with partial_rotary_factor = 2·pairs / head_dim', () => {
    const scaling = { kind: 'proportional', pairs: 4, factor: 1 } as const;
    expect(ropeParameters({ theta: 1e6, rotaryDim: 32, scaling }, 32)).toEqual({
      rope_type: 'proportional',
      rope_theta: 1e6,
      partial_rotary_factor: 0.25,
    });
    expect(
      ropeParameters({ theta: 1e6, rotaryDim: 32, scaling: { ...scaling, factor: 2 } }, 32),
    ).toMatchObject({ factor: 2 });
  });

  it('refuses a proportional RoPE over part of the head', () => {
    const scaling = { kind: 'proportional', pairs: 4, factor: 1 } as const;
    expect(() => ropeParameters({ theta: 1e6, rotaryDim: 16, scaling }, 32)).toThrow(ExportError);
  });
});
