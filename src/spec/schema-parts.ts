/** The building blocks of the ModelIR JSON Schema, shared by schema.ts and the mixer definitions. */

export type JsonSchema = { readonly [key: string]: unknown };

export const posInt = { type: 'integer', minimum: 1 } as const;
export const posNumber = { type: 'number', exclusiveMinimum: 0 } as const;
export const bool = { type: 'boolean' } as const;
export const kind = (name: string) => ({ const: name });

/** `null` or the schema: if/else keeps errors about the object instead of "must be null". */
export function nullable(ref: string): JsonSchema {
  return { if: { type: 'null' }, else: { $ref: ref } };
}

/**
 * An object whose `properties` are all required, plus `optional` ones that carry a `default`:
 * fields added to ModelIR after specs were written, filled in by the loader (ajv useDefaults)
 * so that older YAML/JSON specs keep loading.
 */
export function object(
  properties: Record<string, JsonSchema>,
  optional: Record<string, JsonSchema> = {},
): JsonSchema {
  return {
    type: 'object',
    additionalProperties: false,
    required: Object.keys(properties),
    properties: { ...properties, ...optional },
  };
}
