/**
 * config.json keys that never change what a checkpoint computes at inference. Anything
 * else an importer does not read is an error (see ConfigReader.finish).
 */
export const HARMLESS_CONFIG_KEYS: ReadonlySet<string> = new Set([
  // Bookkeeping written by transformers / the Hub.
  'architectures',
  'model_type',
  'torch_dtype',
  'dtype',
  'transformers_version',
  '_name_or_path',
  'tokenizer_class',
  // Remote-code checkpoints (llada, Dream): which Python classes load them.
  'auto_map',
  // Special token ids: tokenizer and generation concerns, not the network.
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  // Training-time only: initialisation, dropout, auxiliary losses.
  'initializer_range',
  'attention_dropout',
  'hidden_dropout',
  'embd_pdrop',
  'resid_pdrop',
  'router_aux_loss_coef',
  'output_router_logits',
  // Output plumbing and cache switches of the Python API.
  'use_cache',
  'output_attentions',
  'output_hidden_states',
  'return_dict',
  'use_return_dict',
  'torchscript',
  'chunk_size_feed_forward',
  // Tensor-parallel slicing of the same matmuls (HF pretraining_tp): identical results.
  'pretraining_tp',
  // Classification-head and task metadata (unused by a causal LM).
  'id2label',
  'label2id',
  'problem_type',
  'finetuning_task',
  'task_specific_params',
  'prefix',
  // Legacy generation defaults stored in config.json (sampling, not the model).
  'max_length',
  'min_length',
  'do_sample',
  'temperature',
  'top_k',
  'top_p',
  'num_beams',
  'repetition_penalty',
]);

/**
 * The config.json keys that set a ModelIR field, by field, most common first: used to blame a
 * key when an imported model breaks a rule (a llama3 rope's high_freq_factor ≤ low_freq_factor,
 * a conv kernel of 1). Dotted keys name a member of a nested object.
 */
const FIELD_KEYS: Readonly<Record<string, readonly string[]>> = {
  vocab: ['vocab_size'],
  dim: ['hidden_size', 'd_model'],
  maxContext: ['max_position_embeddings'],
  hidden: ['intermediate_size', 'moe_intermediate_size'],
  heads: ['num_attention_heads', 'mamba_n_heads', 'mamba_num_heads'],
  kvHeads: ['num_key_value_heads'],
  headDim: ['head_dim', 'mamba_head_dim', 'mamba_d_head'],
  window: ['sliding_window'],
  dState: ['state_size', 'ssm_state_size', 'mamba_d_state'],
  dConv: ['conv_kernel', 'mamba_d_conv', 'd_conv', 'linear_conv_kernel_dim'],
  lCache: ['conv_L_cache'],
  groups: ['n_group', 'n_groups', 'mamba_n_groups'],
  topkGroups: ['topk_group'],
  experts: ['num_local_experts', 'num_experts', 'n_routed_experts'],
  topK: ['num_experts_per_tok', 'experts_per_token'],
  highFreqFactor: ['rope_scaling.high_freq_factor', 'rope_parameters.high_freq_factor'],
  lowFreqFactor: ['rope_scaling.low_freq_factor', 'rope_parameters.low_freq_factor'],
  factor: ['rope_scaling.factor', 'rope_parameters.factor'],
  originalMaxPositions: [
    'rope_scaling.original_max_position_embeddings',
    'rope_parameters.original_max_position_embeddings',
  ],
};

/** The value at a dotted key of a config, or undefined. */
function valueAt(config: Readonly<Record<string, unknown>>, dotted: string): unknown {
  let v: unknown = config;
  for (const part of dotted.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** The first key present in config that sets the ModelIR field, or null. */
export function configKeyFor(
  field: string,
  config: Readonly<Record<string, unknown>>,
): string | null {
  const keys = Object.hasOwn(FIELD_KEYS, field) ? FIELD_KEYS[field]! : [];
  return keys.find((k) => valueAt(config, k) !== undefined) ?? null;
}
