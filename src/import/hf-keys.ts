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
