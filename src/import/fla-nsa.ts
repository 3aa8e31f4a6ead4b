/**
 * fla's `nsa` model type (NSAConfig, NSAForCausalLM): NativeSparseAttention (src/mixers/nsa.ts)
 * at every layer, fla's GatedMLP after it. Defaults are NSAConfig's (64 heads, 4 kv heads,
 * head_dim 32, block_size 64, block_counts 16, window_size 512, rope_theta 10000). Checkpoint
 * names are strata's canonical ones under `attn.` (q/k/v/g/o_proj), the shell's renamed.
 *
 * Not golden-tested yet: fla runs NSA only through its Triton kernels (parallel_nsa), which need
 * a GPU; tools/golden/make_fla_nsa_golden.py writes the fixture there.
 */
import type { NsaSpec } from '../mixers/nsa.ts';
import { show, type ConfigReader } from './config-reader.ts';
import { flaModel, flaWeights, readFlaShell } from './fla-common.ts';
import type { FamilyImport } from './registry.ts';

export function importFlaNsa(cfg: ConfigReader, name: string): FamilyImport {
  const shell = readFlaShell(cfg, { dim: 2048, layers: 24 });
  const heads = cfg.positiveInt('num_heads', 64);
  const kvHeads = cfg.raw('num_kv_heads') === null ? heads : cfg.positiveInt('num_kv_heads', 4);
  if (heads % kvHeads !== 0) {
    cfg.fail('num_kv_heads', `${kvHeads} does not divide num_heads ${heads}`);
  }
  const headDim = cfg.positiveInt('head_dim', 32);
  const block = cfg.positiveInt('block_size', 64);
  const counts = cfg.raw('block_counts');
  if (counts !== undefined && !Number.isInteger(counts)) {
    // fla also takes a per-token tensor, which a config cannot hold; null selects nothing.
    cfg.fail('block_counts', `is ${show(counts)}; strata's nsa needs a positive integer`);
  }
  const select = cfg.positiveInt('block_counts', 16);
  const window = cfg.raw('window_size');
  if (window === null || window === 0) {
    cfg.fail(
      'window_size',
      `is ${show(window)} (no sliding-window branch); strata's nsa always has one, window >= 1`,
    );
  }
  const spec: NsaSpec = {
    kind: 'nsa',
    heads,
    kvHeads,
    headDim,
    block,
    stride: block,
    select,
    selectBlock: block,
    window: cfg.positiveInt('window_size', 512),
    ropeTheta: cfg.num('rope_theta', 10000),
    qkvBias: cfg.bool('qkv_bias', false),
    scale: headDim ** -0.5,
  };
  const model = flaModel(name, shell, null, 'nsa', () => structuredClone(spec));
  return { model, ...flaWeights(model) };
}
