/**
 * The one place importers build an AttentionSpec: the shape (heads, kv heads, head size, RoPE)
 * plus only what a family changes; everything else is plain causal softmax attention at
 * head_dim^-0.5 without bias, window, softcap, sinks or output gate.
 */
import type { AttentionSpec, RopeSpec } from '../spec/model.ts';

/** What a family may change from plain attention; `bias` sets the q/k/v and output biases. */
export type AttentionOptions = Partial<
  Pick<AttentionSpec, 'qkNorm' | 'window' | 'scale' | 'softcap' | 'sinks' | 'outputGate'>
> & { bias?: boolean };

export function attentionSpec(
  heads: number,
  kvHeads: number,
  headDim: number,
  rope: RopeSpec | null,
  options: AttentionOptions = {},
): AttentionSpec {
  const { bias = false, ...rest } = options;
  return {
    kind: 'attention',
    heads,
    kvHeads,
    headDim,
    rope,
    qkNorm: false,
    qkvBias: bias,
    outBias: bias,
    causal: true,
    window: null,
    scale: headDim ** -0.5,
    softcap: null,
    sinks: false,
    outputGate: false,
    ...rest,
  };
}
