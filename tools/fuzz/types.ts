/** What the fuzzer feeds the front end and what it learns from each input. */

/** The three input kinds, with spec data split by syntax: .strata, .yaml, .json, HF config.json. */
export type InputKind = 'dsl' | 'yaml' | 'json' | 'hf';

export const INPUT_KINDS: readonly InputKind[] = ['dsl', 'yaml', 'json', 'hf'];

/** The file extension a reproducer of each kind is written with. */
export const EXTENSIONS: Readonly<Record<InputKind, string>> = {
  dsl: 'strata',
  yaml: 'yaml',
  json: 'json',
  hf: 'json',
};

export interface FuzzInput {
  kind: InputKind;
  text: string;
  /** Which generator and seed file it came from, for the report; not part of the input. */
  origin: string;
}

/** accepted: a model came out and every property held; rejected: a located user error. */
export type Outcome =
  | { status: 'accepted' | 'rejected'; ms: number }
  | { status: 'failure'; signature: string; reason: string; ms: number };

export type Failure = Extract<Outcome, { status: 'failure' }>;

/** The per-input time budget of property (2): anything slower is a hang for a user. */
export const INPUT_BUDGET_MS = 2000;
