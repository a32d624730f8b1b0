/**
 * `bnlab export --model DIR --onnx model.onnx [--fold-bn] [--softmax]`: write a model as an ONNX
 * inference graph (src/io/onnx.ts), with batch norm as BatchNormalization nodes or folded into the
 * layers before it.
 */
import { Command, Option } from 'commander';
import onnxProto from 'onnx-proto';
import { writeFileAtomic } from '../../io/node-atomic.js';
import { ONNX_OPSET, exportOnnx, onnxOutputName } from '../../io/onnx.js';
import { MODEL_OPTION_HELP, loadModelSource, modelArgument } from '../model-files.js';
import { packageInfo } from '../version.js';

interface ExportFlags {
  model: string;
  onnx: string;
  foldBn?: boolean;
  softmax?: boolean;
}

export function register(program: Command): Command {
  return program
    .command('export')
    .summary('write a model as an ONNX inference graph')
    .description('Export a trained model (a run directory, or any model directory) as ONNX: Gemm, Conv, BatchNormalization (with the statistics eval mode uses) or batch norm folded into the preceding layer, Relu/Sigmoid/Tanh, MaxPool/AveragePool, Flatten, and optionally Softmax. The graph takes input "input" of shape [batch, ...sample] and outputs "logits" (or "probabilities" with --softmax).')
    .addOption(new Option('--model <dir>', MODEL_OPTION_HELP).argParser(modelArgument).makeOptionMandatory())
    .requiredOption('--onnx <file>', 'the .onnx file to write')
    .option('--fold-bn', 'fold each batch-norm layer into the Linear/Conv2d before it (one node less per layer, same outputs up to rounding)')
    .option('--softmax', 'end with a Softmax: output class probabilities instead of logits')
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab export --model runs/NAME --onnx model.onnx
  $ bnlab export --model runs/NAME --onnx model.onnx --fold-bn --softmax`,
    )
    .action((flags: ExportFlags) => {
      const source = loadModelSource(flags.model);
      const bytes = exportOnnx(source.model, { inputShape: source.inputShape, foldBatchNorm: flags.foldBn, softmax: flags.softmax, producerVersion: packageInfo().version, fileName: flags.onnx });
      writeFileAtomic(flags.onnx, bytes);
      const graph = onnxProto.onnx.ModelProto.decode(bytes).graph!;
      const ops = graph.node!.map((n) => n.opType).join(' → ');
      console.log(`Wrote ${flags.onnx} (${bytes.length} bytes, opset ${ONNX_OPSET}): input "input" [batch, ${source.inputShape.join(', ')}], output "${onnxOutputName(Boolean(flags.softmax))}"`);
      console.log(`Graph: ${ops}`);
      if (!source.dir) console.warn(`bnlab warning: ${flags.model} is a preset, not a trained model: the graph has its initial weights`);
    });
}
