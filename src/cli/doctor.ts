import { parseArgs } from 'node:util';
import type { Command } from './command.ts';
import { acquire, SWIFTSHADER_ICD } from '../../runtime/node/webgpu-node.ts';

export const doctorCommand: Command = {
  name: 'doctor',
  summary:
    'Show the WebGPU adapter, its features and limits, and whether the CPU fallback is in use',
  usage: `usage: strata doctor [--gpu-flags LIST] [--json]

  --gpu-flags LIST  comma-separated Dawn toggles/flags passed to create(); 'fast' selects
                    the speed toggles (allow_unsafe_apis, skip_validation, ...)
  --json            machine-readable output`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { 'gpu-flags': { type: 'string' }, json: { type: 'boolean' } },
    });
    const flags = values['gpu-flags'] ? values['gpu-flags'].split(',').filter(Boolean) : [];
    const gpu = await acquire({ flags });
    const info = {
      adapter: gpu.adapterInfo,
      fallback: gpu.fallback ? `SwiftShader (CPU Vulkan driver at ${SWIFTSHADER_ICD})` : false,
      features: gpu.features,
      shaderF16: gpu.caps.shaderF16,
      subgroupMatrix: gpu.caps.subgroupMatrix,
      subgroups: gpu.caps.subgroups,
      limits: gpu.caps,
      flags,
    };
    if (values.json) {
      console.log(JSON.stringify(info, null, 2));
      return 0;
    }
    const a = gpu.adapterInfo;
    console.log(`adapter     ${a.vendor} ${a.architecture} ${a.device} ${a.description}`.trim());
    console.log(`fallback    ${info.fallback || 'no (hardware adapter)'}`);
    console.log(`shader-f16  ${gpu.caps.shaderF16 ? 'yes' : 'no'}`);
    console.log(`subgroups   ${gpu.caps.subgroups ? 'yes' : 'no'}`);
    console.log(`subgroup-matrix (tensor cores) ${gpu.caps.subgroupMatrix ? 'yes' : 'no'}`);
    console.log(`features    ${gpu.features.join(', ')}`);
    console.log('limits');
    for (const [k, v] of Object.entries(gpu.caps))
      if (typeof v === 'number') console.log(`  ${k.padEnd(28)} ${v}`);
    if (flags.length) console.log(`dawn flags  ${flags.join(', ')}`);
    gpu.device.destroy();
    return 0;
  },
};
