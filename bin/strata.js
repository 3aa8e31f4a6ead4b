#!/usr/bin/env node
// The CLI in a checkout: runs the TypeScript sources through tsx's loader, no build step. The
// installed package runs the built dist/src/cli/bin.js instead (package.json "bin").
import { register } from 'tsx/esm/api';
register();
const { runCli } = await import('../src/cli/main.ts');
runCli();
