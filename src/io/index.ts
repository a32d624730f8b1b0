/**
 * Model files, checkpoints and ONNX export, browser-safe: everything works on strings and bytes. The
 * Node-only parts (atomic writes, model and checkpoint directories, PNG files) are in 'bnlab/node'.
 */
export { ModelFileError, ImageFileError, type ModelFileDefect, type ImageFileDefect } from './errors.js';
export { parseSafetensors, encodeSafetensors, readFloat32, entrySize, MAX_HEADER_BYTES, type Dtype, type SafetensorsEntry, type SafetensorsFile, type TensorToWrite } from './safetensors.js';
export {
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  MODEL_JSON,
  MODEL_SAFETENSORS,
  MAX_LAYERS,
  MAX_PARAMETERS,
  describeModel,
  encodeWeights,
  encodeModel,
  parseModelJson,
  buildModel,
  loadWeights,
  decodeModel,
  modelInput,
  type ModelJson,
  type ModelInfo,
  type Architecture,
  type DecodeModelInput,
  type LoadedModel,
} from './model-file.js';
export {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMAT_VERSION,
  CHECKPOINT_FILES,
  STATE_JSON,
  OPTIMIZER_SAFETENSORS,
  encodeCheckpoint,
  decodeCheckpoint,
  restoreTraining,
  type CheckpointState,
  type CheckpointFiles,
  type DecodedCheckpoint,
  type TrainingParts,
} from './checkpoint.js';
export { exportOnnx, onnxOutputName, ONNX_INPUT, ONNX_OPSET, type OnnxExportOptions } from './onnx.js';
export { rgbaToGray, imageSizeFor, rgbaToInput, resizePlane, resampleTaps, type GrayOptions, type ImageInputOptions } from './image.js';
export { exportPytorch, importPytorch, pytorchStateDict, registerPyTorchLayer, pytorchLayerTypes, type PyTorchExport, type PyTorchExportOptions, type PyTorchImport, type PyTorchImportOptions, type PyTorchLayer, type PyTorchLayerWriter, type ExampleBatch } from './pytorch.js';
