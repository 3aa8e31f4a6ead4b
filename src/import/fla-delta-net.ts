/**
 * fla's `delta_net` (DeltaNetConfig, fla/models/delta_net) → the `deltanet` mixer without decay:
 * num_heads heads of hidden·expand_k / num_heads (key) and hidden·expand_v / num_heads (value).
 * Also the config keys fla's two delta-rule layers share (short convs, negative eigenvalues,
 * the output gate), which fla-gated-deltanet.ts reads through readDeltaRuleKeys.
 */
import type { ConfigReader } from './config-reader.ts';
import { flaModel, flaWeights, readFlaAttention, readFlaShell } from './fla-common.ts';
import type { FamilyImport } from './hf-ssm.ts';
import type { DeltaNetSpec, QkActivation } from '../mixers/deltanet.ts';

/** The keys DeltaNet and Gated DeltaNet share; `gate` is use_gate's default (it differs). */
export function readDeltaRuleKeys(
  cfg: ConfigReader,
  gate: boolean,
): Pick<DeltaNetSpec, 'dConv' | 'allowNegEigval' | 'outputGate'> {
  const conv = cfg.bool('use_short_conv', true);
  const size = cfg.positiveInt('conv_size', 4);
  return {
    // fla's model classes never pass conv_bias: the short convs have no bias.
    dConv: conv ? size : null,
    allowNegEigval: cfg.bool('allow_neg_eigval', false),
    outputGate: cfg.bool('use_gate', gate),
  };
}

/** fla's qk_activation names; 'elu' there is elu(x) + 1 (fla's elu_p1). */
const QK_ACTIVATION: Record<string, QkActivation> = {
  silu: 'silu',
  relu: 'relu',
  elu: 'elu1',
  identity: 'identity',
};

/** python's int(hidden · expand) (fla's key_dim / value_dim), which must split over the heads. */
function headWidth(cfg: ConfigReader, key: string, dim: number, heads: number): number {
  const expand = cfg.num(key, 1);
  const total = Math.trunc(dim * expand);
  if (!(total > 0) || total % heads !== 0) {
    cfg.fail(
      key,
      `${expand} makes ${total} channels, not a positive multiple of num_heads ${heads}`,
    );
  }
  return total / heads;
}

export function importFlaDeltaNet(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24 });
  const attn = readFlaAttention(cfg, shell);
  const heads = cfg.positiveInt('num_heads', 16);
  const keyHeadDim = headWidth(cfg, 'expand_k', shell.dim, heads);
  const valueHeadDim = headWidth(cfg, 'expand_v', shell.dim, heads);
  const act = cfg.str('qk_activation', 'silu');
  if (!Object.hasOwn(QK_ACTIVATION, act)) {
    cfg.fail('qk_activation', `is '${act}'; fla's DeltaNet takes silu, relu, elu or identity`);
  }
  const qkNorm = cfg.str('qk_norm', 'l2');
  if (qkNorm !== 'l2') {
    // 'sum' divides q and k by their sums: a reduction strata's norm op does not have.
    cfg.fail('qk_norm', `is '${qkNorm}'; strata supports only l2`);
  }
  // fla 0.5.2's DeltaNet layer receives use_output_norm but takes it into **kwargs unused: its
  // o_norm is always applied, whatever the key says.
  cfg.bool('use_output_norm', true);
  const spec: DeltaNetSpec = {
    kind: 'deltanet',
    heads,
    valueHeads: heads,
    keyHeadDim,
    valueHeadDim,
    ...readDeltaRuleKeys(cfg, false),
    qkActivation: QK_ACTIVATION[act]!,
    useBeta: cfg.bool('use_beta', true),
    decay: 'none',
    normEps: shell.eps,
  };
  const model = flaModel(name, shell, attn, 'deltanet', () => structuredClone(spec));
  return { model, ...flaWeights(model) };
}
