/**
 * `bnlab summary --model NAME [--bn|--no-bn]`: print a preset's layers, output shapes and parameter
 * counts (trainable, and non-trainable: the running statistics), Keras-style.
 */
import { Command, Option } from 'commander';
import { setBackend, referenceKernels } from '../../kernels/index.js';
import { buildPreset, getPreset, presetNames } from '../../models/presets.js';
import { summary } from '../../nn/summary.js';
import { addBatchNormOptions } from './train.js';

interface SummaryFlags {
  model: string;
  bn: boolean;
  bnMomentum: number | null;
  bnEps: number;
  biasCorrection: boolean;
  eval?: boolean;
  backend: string;
}

export function register(program: Command): Command {
  const cmd = program
    .command('summary')
    .summary("print a model's layers, output shapes and parameter counts")
    .description('Print a Keras-style summary of a preset model: one row per layer with its output shape, trainable and non-trainable parameters (running statistics), and the state of the running statistics; then the totals.')
    .addOption(new Option('--model <name>', 'model preset').choices(presetNames()).makeOptionMandatory())
    .option('--bn', 'with batch norm', true)
    .option('--no-bn', 'without batch norm');
  addBatchNormOptions(cmd)
    .option('--eval', 'show the model in eval mode')
    .addOption(new Option('--backend <name>', 'kernel backend').default(referenceKernels.name))
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab summary --model ioffe-mlp
  $ bnlab summary --model ioffe-mlp --no-bn`,
    )
    .action((flags: SummaryFlags) => {
      setBackend(flags.backend);
      const preset = getPreset(flags.model);
      const model = buildPreset(flags.model, { bn: flags.bn, batchNorm: { momentum: flags.bnMomentum, eps: flags.bnEps, biasCorrection: flags.biasCorrection } });
      if (flags.eval) model.eval();
      console.log(`${preset.name}: ${preset.description}`);
      console.log(summary(model, [1, ...preset.inputShape], flags.bn ? `${preset.name} (bn)` : `${preset.name} (no bn)`));
    });
  return cmd;
}
