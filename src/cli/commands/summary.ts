/**
 * `bnlab summary --model NAME [--bn|--no-bn]`: print a preset's layers, output shapes and parameter
 * counts (trainable, and non-trainable: the running statistics), Keras-style.
 */
import { Command, Option } from 'commander';
import { initBackend } from '../../kernels/index.js';
import { MODEL_OPTION_HELP, loadModelSource, modelArgument } from '../model-files.js';
import { summary } from '../../nn/summary.js';
import { addBatchNormOptions } from './train.js';
import { backendOption } from '../options.js';
import type { BatchNormPlacement } from '../../models/presets.js';

interface SummaryFlags {
  model: string;
  bn: boolean;
  bnMomentum: number | null;
  bnEps: number;
  biasCorrection: boolean;
  bnPlacement: BatchNormPlacement;
  inputBn?: boolean;
  eval?: boolean;
  backend: string;
}

export function register(program: Command): Command {
  const cmd = program
    .command('summary')
    .summary("print a model's layers, output shapes and parameter counts")
    .description('Print a Keras-style summary of a preset model: one row per layer with its output shape, trainable and non-trainable parameters (running statistics), and the state of the running statistics; then the totals.')
    .addOption(new Option('--model <name>', MODEL_OPTION_HELP).argParser(modelArgument).makeOptionMandatory())
    .option('--bn', 'with batch norm', true)
    .option('--no-bn', 'without batch norm');
  addBatchNormOptions(cmd)
    .option('--eval', 'show the model in eval mode')
    .addOption(backendOption())
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab summary --model ioffe-mlp
  $ bnlab summary --model ioffe-mlp --no-bn
  $ bnlab summary --model ioffe-mlp --bn-placement after --input-bn
  $ bnlab summary --model runs/NAME               a trained model (its running statistics included)`,
    )
    .action(async (flags: SummaryFlags) => {
      const kernels = await initBackend(flags.backend);
      // A preset is built with the flags; a model directory is shown as saved (--bn and the BN flags do not apply).
      const source = loadModelSource(flags.model, { bn: flags.bn, batchNorm: { momentum: flags.bnMomentum, eps: flags.bnEps, biasCorrection: flags.biasCorrection }, bnPlacement: flags.bnPlacement, inputBn: flags.inputBn });
      const model = source.model.train(!flags.eval);
      const name = source.dir ?? source.preset!;
      console.log(`${source.dir ? source.dir : name}: ${source.dir ? `${source.preset ? `preset ${source.preset}, ` : ''}trained model` : source.description}`);
      console.log(summary(model, [1, ...source.inputShape], source.dir ? name : flags.bn ? `${name} (bn)` : `${name} (no bn)`));
      console.log(`Backend: ${kernels.capabilities.variant}`);
    });
  return cmd;
}
