/** The model both heap probes (tools/web-heap.ts in Node, web-heap-browser.ts in Chromium) load: a 177 MiB bundle whose largest tensor is the 62.5 MiB LM head. */
export const HEAP_PROBE_SPEC = `model "heap-probe" {
  vocab 32000
  dim 512
  max_context 256
  norm rms(eps: 1e-5)
  tie_embeddings false
  mixer attn = attention(heads: 8, kv_heads: 8)
  ffn mlp = swiglu(hidden: 1536)
  layers 4 x attn with ffn mlp
}
`;
