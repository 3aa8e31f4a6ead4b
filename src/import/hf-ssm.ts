/**
 * Not an importer: the state-space importers are one file per type now (hf-mamba.ts,
 * hf-mamba2.ts, hf-bamba.ts, hf-jamba.ts, hf-lfm2.ts, hf-nemotron-h.ts) over hf-ssm-shared.ts,
 * and the importer types live in registry.ts. This re-export only keeps compiling the fla
 * importers written on branches that predate the split (they import `FamilyImport` from here);
 * import from registry.ts, and delete this file once none imports it.
 */
export type { FamilyImport, FamilyImporter } from './registry.ts';
