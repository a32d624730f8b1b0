/**
 * `bnlab export --model DIR (--onnx model.onnx [--fold-bn] [--softmax] | --pytorch DIR)`: write a model as
 * an ONNX inference graph (src/io/onnx.ts), or as PyTorch files (model.py, model.safetensors, example.py;
 * src/io/pytorch.ts).
 */
import { Command, Option } from 'commander';
import { checkWritable, writeFileAtomic } from '../../io/node-atomic.js';
import { savePytorchExport } from '../../io/node-pytorch.js';
import { ONNX_OPSET, exportOnnx, onnxOutputName } from '../../io/onnx.js';
import { decodeModelProto } from '../../io/onnx-schema.js';
import { getPreset, presetNames } from '../../models/presets.js';
import { TRAINED_MODEL_OPTION_HELP, loadModelSource, trainedModelArgument, type ModelSource } from '../model-files.js';
import { packageInfo } from '../version.js';
import { shellQuote } from '../format.js';

interface ExportFlags {
  model: string;
  onnx?: string;
  pytorch?: string;
  foldBn?: boolean;
  softmax?: boolean;
  overwrite?: boolean;
}

export function register(program: Command): Command {
  return program
    .command('export')
    .summary('write a model as an ONNX inference graph or as a PyTorch module')
    .description('Export a trained model (a run directory, or any model directory).\n\n--onnx: an ONNX graph of Gemm, Conv, BatchNormalization (with the statistics eval mode uses) or batch norm folded into the preceding layer, Relu/Sigmoid/Tanh, MaxPool/AveragePool, Flatten, and optionally Softmax; input "input" of shape [batch, ...sample], output "logits" (or "probabilities" with --softmax).\n\n--pytorch DIR: model.py (an nn.Module with the same layers and state-dict names), model.safetensors (its state dict: load_state_dict is strict, eval outputs equal bnlab\'s), model.json (the same for bnlab), and example.py, which classifies example_input.safetensors and compares with bnlab\'s logits.')
    .addOption(new Option('--model <dir>', TRAINED_MODEL_OPTION_HELP).argParser(trainedModelArgument).makeOptionMandatory())
    .addOption(new Option('--onnx <file>', 'the .onnx file to write').conflicts('pytorch'))
    .option('--pytorch <dir>', 'the directory to write model.py, model.safetensors, model.json, example.py into')
    .option('--fold-bn', 'ONNX: fold each batch-norm layer into the Linear/Conv2d before it (one node less per layer, same outputs up to rounding)')
    .option('--softmax', 'ONNX: end with a Softmax: output class probabilities instead of logits')
    .option('--overwrite', 'PyTorch: replace an existing directory')
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab export --model runs/NAME --onnx model.onnx
  $ bnlab export --model runs/NAME --onnx model.onnx --fold-bn --softmax
  $ bnlab export --model runs/NAME --pytorch runs/NAME-pytorch && python3 runs/NAME-pytorch/example.py`,
    )
    .action((flags: ExportFlags) => {
      if (!flags.onnx && !flags.pytorch) throw new Error('say what to write: --onnx FILE or --pytorch DIR');
      if (flags.onnx) checkWritable(flags.onnx, 'file', '--onnx');
      else checkWritable(flags.pytorch!, 'directory', '--pytorch');
      const source = loadModelSource(flags.model);
      if (flags.onnx) exportOnnxFile(source, flags.onnx, flags);
      else exportPytorchDir(source, flags.pytorch!, flags);
      if (!source.dir) console.warn(`bnlab warning: ${flags.model} is a preset, not a trained model: the export has its initial weights`);
    });
}

function exportOnnxFile(source: ModelSource, file: string, flags: ExportFlags): void {
  const standardize = source.preprocessing?.standardize;
  const bytes = exportOnnx(source.model, { inputShape: source.inputShape, foldBatchNorm: flags.foldBn, softmax: flags.softmax, producerVersion: packageInfo().version, fileName: file, standardize });
  writeFileAtomic(file, bytes);
  const graph = decodeModelProto(bytes).graph!;
  const ops = graph.node!.map((n) => n.opType).join(' → ');
  console.log(`Wrote ${file} (${bytes.length} bytes, opset ${ONNX_OPSET}): input "input" [batch, ${source.inputShape.join(', ')}]${standardize ? ' (raw values: the graph standardizes them with the training statistics first)' : ''}, output "${onnxOutputName(Boolean(flags.softmax))}"`);
  console.log(`Graph: ${ops}`);
}

function exportPytorchDir(source: ModelSource, dir: string, flags: ExportFlags): void {
  const title = source.preset && presetNames().includes(source.preset) ? `${getPreset(source.preset).description}.` : undefined;
  const info = { inputShape: source.inputShape, preset: source.preset, classNames: source.classNames, dataset: source.dataset, preprocessing: source.preprocessing };
  const exported = savePytorchExport(dir, source.model, info, { overwrite: flags.overwrite, source: source.dir ?? `the preset ${source.preset}`, bnlabVersion: packageInfo().version, title });
  for (const note of exported.notes) console.warn(`bnlab note: ${note}`);
  console.log(`Wrote ${dir}/: model.py, model.safetensors, model.json, example.py, example_input.safetensors`);
  console.log(`Input [N, ${source.inputShape.join(', ')}] float32 (${source.inputShape.length === 1 ? 'flat vectors' : 'images, channels first'}), output [N, ${source.model.outputShape([1, ...source.inputShape])[1]}] logits`);
  console.log(`Try it: cd ${shellQuote(dir)} && python3 example.py`);
}
