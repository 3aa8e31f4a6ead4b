#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader so the package needs no build step.
import { register } from 'tsx/esm/api';
register();
process.env.STRATA_CLI = '1';
await import('../src/cli/main.ts');
