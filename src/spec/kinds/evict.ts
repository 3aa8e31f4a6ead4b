/**
 * KV-cache eviction policies of `attention(evict: ...)`: `h2o(budget:, recent:)`, the H2O
 * heavy-hitter rule (semantics and why per kv head: src/ops/h2o.ts).
 */
import { defineKind, opt, req, type Family } from '../kind.ts';
import { int } from '../values.ts';

/**
 * H2O: the cache keeps at most `budget` tokens per kv head, the `recent` latest plus those with
 * the largest accumulated attention (and the attention's sink tokens, never evicted).
 */
export interface H2oEvict {
  kind: 'h2o';
  budget: number;
  recent: number;
}

export type EvictSpec = H2oEvict;

const h2o = defineKind({
  name: 'h2o',
  params: { budget: req(int(1)), recent: opt(int(0)) },
  // The paper's default splits the budget evenly between heavy hitters and recent tokens.
  build: (a): EvictSpec => ({
    kind: 'h2o',
    budget: a.budget,
    recent: a.recent ?? Math.floor(a.budget / 2),
  }),
  toArgs: (s) => [
    { name: 'budget', value: s.budget },
    { name: 'recent', value: s.recent },
  ],
});

export const EVICTIONS: Family<EvictSpec> = {
  noun: 'eviction policy',
  example: 'h2o(budget: ..., recent: ...)',
  kinds: [h2o],
};
