/**
 * Grammar-aware generation of .strata text (generator b): settings, block definitions of every
 * kind the DSL knows (parameter names from the kinds themselves), every `layers` form of
 * grammar/README.md, ffn schedules and overrides. Values are mostly plausible (small powers of
 * two that divide each other) so that many inputs get past resolution, and sometimes extreme.
 */
import fc from 'fast-check';
import { FFNS, MIXERS } from '../../src/spec/kinds/index.ts';
import { EXTREME_NUMBERS } from './mutate.ts';
import { PROTO_NAMES } from './properties.ts';

/** Nested call kinds and their parameters, from grammar/README.md. */
const NESTED: Readonly<Record<string, readonly string[]>> = {
  rope: ['theta', 'rotary_dim', 'scaling'],
  linear: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_positions'],
  yarn: [
    'factor',
    'original_max_positions',
    'beta_fast',
    'beta_slow',
    'attention_factor',
    'truncate',
  ],
  softmax: ['normalize', 'scale', 'bias'],
  sigmoid: ['normalize', 'scale', 'bias', 'correction_bias', 'groups', 'topk_groups'],
  clamp: ['limit', 'alpha'],
  swiglu: ['hidden', 'bias', 'gate_scale', 'down_scale'],
  geglu: ['hidden', 'act', 'bias'],
  mlp: ['hidden', 'act', 'gated', 'bias'],
  attention: ['heads', 'kv_heads', 'head_dim', 'rope', 'window', 'qk_norm'],
  mamba2: ['heads', 'head_dim', 'd_state', 'groups', 'chunk'],
  rms: ['eps', 'unit_offset'],
  layer: ['eps', 'bias'],
};

const ACTS = ['silu', 'gelu', 'gelu_tanh', 'relu', 'relu2', 'sigmoid'];
const BOOL_PARAMS =
  /^(qk_norm|qkv_bias|out_bias|causal|sinks|output_gate|bias|gated|normalize|correction_bias|truncate|conv_bias|proj_bias|gate_norm|norm_before_gate|shared_gate|unit_offset|attention_adapters|ffn_adapters)$/;

const small = fc.constantFrom(1, 2, 4, 8, 16, 32, 64);
const extreme = fc.constantFrom(...EXTREME_NUMBERS);
const num = (plausible: fc.Arbitrary<string>) =>
  fc.oneof({ arbitrary: plausible, weight: 40 }, { arbitrary: extreme, weight: 1 });

function call(kind: string, depth: number): fc.Arbitrary<string> {
  const params = NESTED[kind] ?? [];
  return fc
    .subarray([...params], { minLength: 0 })
    .chain((names) =>
      names.length === 0
        ? fc.constant(kind)
        : fc
            .tuple(...names.map((n) => paramValue(n, depth + 1).map((v) => `${n}: ${v}`)))
            .map((args) => `${kind}(${args.join(', ')})`),
    );
}

/** A value for a parameter, guessed from its name. */
function paramValue(name: string, depth: number): fc.Arbitrary<string> {
  if (depth > 3) return small.map(String);
  if (BOOL_PARAMS.test(name))
    return fc.oneof(
      { arbitrary: fc.constantFrom('true', 'false'), weight: 40 },
      { arbitrary: fc.constantFrom('1', 'none'), weight: 1 },
    );
  if (name === 'act') return fc.constantFrom(...ACTS, 'tanh');
  if (name === 'rope') return fc.oneof(fc.constant('none'), call('rope', depth));
  if (name === 'scaling')
    return fc
      .constantFrom('linear', 'llama3', 'yarn', 'none')
      .chain((k) => (k === 'none' ? fc.constant(k) : call(k, depth)));
  if (name === 'expert' || name === 'shared' || name === 'ffn')
    return fc.constantFrom('swiglu', 'geglu', 'mlp').chain((k) => call(k, depth));
  if (name === 'router') return fc.constantFrom('softmax', 'sigmoid').chain((k) => call(k, depth));
  if (name === 'clamp') return call('clamp', depth);
  if (name === 'attn' || name === 'attention') return call('attention', depth);
  if (name === 'ssm') return call('mamba2', depth);
  if (name === 'rope_pairs') return fc.constantFrom('interleaved', 'half');
  if (/eps|scale|factor|softcap|theta|limit|alpha|dt_m|beta/.test(name)) {
    return num(fc.constantFrom('1e-5', '1e-6', '0.5', '1', '2', '4', '10000', '30', 'none'));
  }
  if (name === 'window' || name === 'q_rank' || name === 'inner_norm_eps')
    return num(fc.constantFrom('none', '4', '16'));
  if (name === 'experts') return num(fc.constantFrom('2', '4', '8'));
  return num(small.map(String));
}

const blockName = fc.oneof(
  { arbitrary: fc.constantFrom('a', 'b', 'attn', 'local', 'ssm'), weight: 60 },
  { arbitrary: fc.constantFrom(...PROTO_NAMES), weight: 1 },
);
const ffnName = fc.oneof(
  { arbitrary: fc.constantFrom('f', 'g', 'moe'), weight: 60 },
  { arbitrary: fc.constantFrom(...PROTO_NAMES), weight: 1 },
);

function definition(role: 'mixer' | 'ffn'): fc.Arbitrary<{ name: string; text: string }> {
  const kinds = (role === 'mixer' ? MIXERS : FFNS).kinds.filter((k) => k.supported);
  return fc
    .tuple(role === 'mixer' ? blockName : ffnName, fc.constantFrom(...kinds))
    .chain(([name, kind]) =>
      fc.subarray([...kind.paramNames]).chain((params) =>
        fc.tuple(...params.map((p) => paramValue(p, 0).map((v) => `${p}: ${v}`))).map((args) => ({
          name,
          text: `  ${role} ${name} = ${kind.name}(${args.join(', ')})`,
        })),
      ),
    );
}

/** One `layers` statement in any of its forms, over the given mixer and ffn names. */
function layersStmt(mixers: string[], ffns: string[]): fc.Arbitrary<string> {
  const m = fc.constantFrom(...mixers);
  const count = num(fc.constantFrom('1', '2', '3', '4', '6', '8'));
  const group = fc
    .array(fc.tuple(fc.integer({ min: 1, max: 3 }), m), { minLength: 1, maxLength: 3 })
    .map((g) => `[${g.map(([k, n]) => `${k} ${n}`).join(' : ')}]`);
  const idx = fc
    .array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 3 })
    .map((a) => `[${a.join(', ')}]`);
  const form = fc.oneof(
    fc.tuple(count, m).map(([n, x]) => `${n} x ${x}`),
    fc.tuple(count, group).map(([n, g]) => `${n} x ${g}`),
    fc.tuple(count, group, fc.nat(4)).map(([n, g, at]) => `${n} x ${g.replace(']', ` at ${at}]`)}`),
    fc.tuple(count, group).map(([n, g]) => `${n} as ${g}`),
    fc.array(m, { minLength: 1, maxLength: 4 }).map((a) => `[${a.join(', ')}]`),
    fc.tuple(count, m, m, idx).map(([n, a, b, i]) => `${n} x ${a}, ${b} at ${i}`),
    fc
      .tuple(fc.stringMatching(/^[-M*E]{1,8}$/), m)
      .map(([p, x]) => `"${p}" with { M: ${x}, "*": ${x} }`),
  );
  const f = fc.constantFrom(...ffns, 'none');
  const schedule = ffns.length
    ? fc.option(
        fc
          .tuple(
            fc.oneof(
              f,
              fc.array(f, { minLength: 1, maxLength: 3 }).map((a) => `[${a.join(', ')}]`),
            ),
            fc.array(
              fc.oneof(
                fc.tuple(fc.nat(4), f).map(([k, x]) => `first ${k} ${x}`),
                fc
                  .tuple(f, fc.integer({ min: 0, max: 4 }), fc.nat(3))
                  .map(([x, k, o]) => `${x} every ${k} offset ${o}`),
                idx.map((i) => `none at ${i}`),
              ),
              { maxLength: 2 },
            ),
          )
          .map(([head, rest]) => ` with ffn ${[head, ...rest].join(', ')}`),
        { nil: '' },
      )
    : fc.constant('');
  return fc.tuple(form, schedule).map(([fm, s]) => `  layers ${fm.startsWith('"') ? fm : fm + s}`);
}

function override(mixers: string[], ffns: string[]): fc.Arbitrary<string> {
  const target = fc.oneof(
    fc.nat(9).map((i) => `layer ${i}`),
    fc.array(fc.nat(9), { minLength: 1, maxLength: 3 }).map((a) => `layers [${a.join(', ')}]`),
  );
  const field = fc.oneof(
    {
      arbitrary: fc.constantFrom(
        'heads',
        'window',
        'kv_heads',
        'hidden',
        'softcap',
        'd_state',
        'top_k',
      ),
      weight: 20,
    },
    { arbitrary: fc.constantFrom(...PROTO_NAMES), weight: 1 },
  );
  const entry = fc.oneof(
    fc
      .tuple(
        fc.constantFrom(...mixers, 'mixer', 'ffn'),
        field,
        fc.constantFrom('1', '2', '4', '64', 'none', '2147483648'),
      )
      .map(([b, k, v]) => `${b}.${k}: ${v}`),
    fc.constantFrom(...mixers).map((x) => `mixer: ${x}`),
    fc.constantFrom(...ffns, 'none').map((x) => `ffn: ${x}`),
  );
  return fc
    .tuple(target, fc.array(entry, { minLength: 1, maxLength: 2 }))
    .map(([t, e]) => `  override ${t} { ${e.join(', ')} }`);
}

const SETTINGS = fc.record({
  vocab: num(fc.constantFrom('8', '256', '32000')),
  dim: num(fc.constantFrom('16', '32', '64')),
  maxContext: num(fc.constantFrom('8', '512')),
  norm: fc.constantFrom('rms', 'layer').chain((k) => call(k, 0)),
  extra: fc.subarray([
    'post_norms true',
    'tie_embeddings true',
    'embedding_scale 2',
    'logit_softcap 30',
    'residual_scale 0.5',
    'logit_scale 0.25',
  ]),
  protoSetting: fc.oneof(
    { arbitrary: fc.constant(''), weight: 30 },
    { arbitrary: fc.constantFrom(...PROTO_NAMES).map((n) => `  ${n} 1`), weight: 1 },
  ),
});

/** A whole .strata model. */
export const dslModelArb: fc.Arbitrary<string> = fc
  .tuple(
    SETTINGS,
    fc.array(definition('mixer'), { minLength: 1, maxLength: 3 }),
    fc.array(definition('ffn'), { maxLength: 2 }),
  )
  .chain(([s, mixerDefs, ffnDefs]) => {
    const mixers = [...new Set(mixerDefs.map((d) => d.name))];
    const ffns = [...new Set(ffnDefs.map((d) => d.name))];
    return fc
      .tuple(
        fc.array(layersStmt(mixers, ffns), { minLength: 1, maxLength: 3 }),
        fc.array(override(mixers, ffns), { maxLength: 2 }),
      )
      .map(([layers, overrides]) =>
        [
          'model "gen" {',
          `  vocab ${s.vocab}`,
          `  dim ${s.dim}`,
          `  max_context ${s.maxContext}`,
          `  norm ${s.norm}`,
          ...s.extra.map((e) => `  ${e}`),
          ...(s.protoSetting ? [s.protoSetting] : []),
          ...mixerDefs.map((d) => d.text),
          ...ffnDefs.map((d) => d.text),
          ...layers,
          ...overrides,
          '}',
          '',
        ].join('\n'),
      );
  });
