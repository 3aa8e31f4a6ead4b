/**
 * `shortconv(...)`: LFM2's gated short convolution (HF Lfm2ShortConv). Per layer, on the normed
 * input h (dim d):
 *   B, C, x = in_proj h                 (one [3d, d] projection, lowered as three matmuls over its
 *                                        row ranges, so no slice op is needed)
 *   y = conv(B · x)                     causal depthwise conv of l_cache taps, no activation
 *   out = out_proj(C · y)
 * State: conv.{i} [lCache − 1, dim]. Defaults follow Lfm2Config (conv_L_cache 3, conv_bias false).
 */
import type { GraphBuilder } from '../graph/builder.ts';
import { causalConv, linear, linearRows, mixerSublayer } from '../graph/blocks/common.ts';
import { layerPrefix } from '../import/names.ts';
import { checkKernel } from '../spec/checks.ts';
import { defineKind, opt } from '../spec/kind.ts';
import type { ModelIR } from '../spec/model.ts';
import { bool as boolSchema, kind, object, posInt } from '../spec/schema-parts.ts';
import { bool, int } from '../spec/values.ts';
import { defineMixer } from './define.ts';

/**
 * LFM2's gated short convolution: in_proj to (B, C, x), B·x through a causal depthwise conv
 * (no activation), C·conv, out_proj.
 */
export interface ShortConvSpec {
  kind: 'shortconv';
  /** Conv kernel length (HF conv_L_cache). */
  lCache: number;
  /** Bias on in_proj, conv and out_proj. */
  bias: boolean;
}

/** LFM2 short-conv mixer tensors under `mixer`. */
export function shortConvNames(i: number) {
  const p = `${layerPrefix(i)}.mixer`;
  return {
    norm: `${layerPrefix(i)}.input_layernorm`,
    inProj: `${p}.in_proj`,
    conv: `${p}.conv1d`,
    outProj: `${p}.out_proj`,
  };
}

const kindDef = defineKind({
  name: 'shortconv',
  params: { l_cache: opt(int(1)), bias: opt(bool) },
  build: (a): ShortConvSpec => ({
    kind: 'shortconv',
    lCache: a.l_cache ?? 3,
    bias: a.bias ?? false,
  }),
  check: (m: ShortConvSpec, n) => checkKernel('lCache', m.lCache, n),
  toArgs: (s) =>
    s.kind !== 'shortconv'
      ? null
      : [
          { name: 'l_cache', value: s.lCache },
          { name: 'bias', value: s.bias },
        ],
});

/** The gated short convolution on the normed input h, without the residual. */
function shortConvBranch(
  b: GraphBuilder,
  model: ModelIR,
  h: number,
  i: number,
  m: ShortConvSpec,
): number {
  const n = shortConvNames(i);
  const L = `l${i}.conv`;
  const d = model.dim;
  const proj = (k: number, tag: string) =>
    linearRows(b, h, n.inProj, 3 * d, k * d, d, d, m.bias, `${L}.in_${tag}`);
  const mul = (a: number, c: number, tag: string) =>
    b.op(
      { op: 'mul', width: d },
      `${L} ${tag}`,
      { a, b: c },
      {
        out: { name: `${L}.${tag}`, shape: ['T', d] },
      },
    ).out;
  const gB = proj(0, 'b');
  const gC = proj(1, 'c');
  const xs = proj(2, 'x');
  const conv = causalConv(
    b,
    mul(gB, xs, 'bx'),
    b.param(`${n.conv}.weight`, [d, m.lCache]),
    m.bias ? b.param(`${n.conv}.bias`, [d]) : null,
    b.state(`conv.${i}`, [m.lCache - 1, d]),
    d,
    m.lCache,
    false,
    L,
  );
  return linear(b, mul(gC, conv, 'cy'), n.outProj, d, d, m.bias, `${L}.out`);
}

export const shortconv = defineMixer<ShortConvSpec>({
  kind: kindDef,
  schema: object({
    kind: kind('shortconv'),
    lCache: posInt,
    bias: boolSchema,
  }),
  dims: (m) => `l_cache ${m.lCache}`,
  lower: (b, model, x, i, m, input) =>
    mixerSublayer(b, model, x, input, i, shortConvNames(i).norm, `l${i}.conv`, (h) =>
      shortConvBranch(b, model, h, i, m),
    ),
});
