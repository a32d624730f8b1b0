/**
 * The experiments behind `bnlab experiment NAME`, each a claim about why batch norm works, run on real
 * data and returned as plain JSON with figures and a reading generated from the numbers. Browser-safe:
 * pass the data in (see `ExperimentData`).
 */
import { batchSizeExperiment } from './batch-size.js';
import { convergenceExperiment } from './convergence.js';
import { distributionExperiment } from './distribution.js';
import { ghostBatchExperiment } from './ghost-batch.js';
import { inferenceExperiment } from './inference.js';
import { inputScaleExperiment } from './input-scale.js';
import { smoothnessExperiment } from './smoothness.js';
import { twoFeatureExperiment } from './two-feature-experiment.js';
import type { ExperimentDefinition } from './types.js';

export type { EffectFormat, ExperimentData, ExperimentDefinition, ExperimentOptions, ExperimentProgress, ExperimentResult, Headline, SeedEffect, SeedRun } from './types.js';
export { runConvergence, convergenceFigures, CONVERGENCE_DEFAULTS, CONVERGENCE_QUICK, type ConvergenceData, type ConvergenceOptions, type ConvergenceResult, type ConvergenceSettings } from './convergence.js';
export { runDistribution, distributionFigures, DISTRIBUTION_DEFAULTS, DISTRIBUTION_QUICK, type DistributionData, type DistributionOptions, type DistributionResult, type DistributionSettings } from './distribution.js';
export { runInputScale, inputScaleFigures, INPUT_SCALE_DEFAULTS, INPUT_SCALE_QUICK, type InputScaleData, type InputScaleOptions, type InputScaleResult, type InputScaleSettings } from './input-scale.js';
export { runBatchSize, batchSizeFigures, BATCH_SIZE_DEFAULTS, BATCH_SIZE_QUICK, type BatchSizeData, type BatchSizeOptions, type BatchSizeResult, type BatchSizeSettings } from './batch-size.js';
export { runGhostBatch, ghostBatchFigures, ghostBatchEffects, describeGhostBatch, GHOST_BATCH_DEFAULTS, GHOST_BATCH_QUICK, type GhostBatchData, type GhostBatchOptions, type GhostBatchResult, type GhostBatchSettings } from './ghost-batch.js';
export { runInference, inferenceFigures, INFERENCE_DEFAULTS, INFERENCE_QUICK, type InferenceData, type InferenceOptions, type InferenceResult, type InferenceSettings } from './inference.js';
export { runSmoothness, smoothnessFigures, smoothnessEffects, smoothnessVerdict, describeSmoothness, smoothnessNetwork, batchObjective, NoisyShift, SMOOTHNESS_DEFAULTS, SMOOTHNESS_QUICK, type SmoothnessData, type SmoothnessOptions, type SmoothnessResult, type SmoothnessSettings } from './smoothness.js';
export { runTwoFeature, twoFeatureFigures, twoFeatureEffects, learningRateGrid, TWO_FEATURE_DEFAULTS, TWO_FEATURE_QUICK, type TwoFeatureData, type TwoFeatureExperimentOptions, type TwoFeatureResult, type TwoFeatureSettings } from './two-feature-experiment.js';
export { gradientShift, internalCovariateShift, probeLandscape, type GradientShift, type LandscapeProbe, type Objective } from './landscape.js';
export { convergenceExperiment, distributionExperiment, inputScaleExperiment, batchSizeExperiment, ghostBatchExperiment, inferenceExperiment, smoothnessExperiment, twoFeatureExperiment };
export { combineEffects, figuresOverSeeds, resolveSeeds, upgradeResult, type EffectMeasure } from './seeds.js';

/** Every experiment, in the order the combined report shows them. */
export const EXPERIMENTS: readonly ExperimentDefinition[] = [convergenceExperiment, distributionExperiment, inputScaleExperiment, twoFeatureExperiment, batchSizeExperiment, ghostBatchExperiment, inferenceExperiment, smoothnessExperiment];

export function experimentNames(): string[] {
  return EXPERIMENTS.map((e) => e.name);
}

export function getExperiment(name: string): ExperimentDefinition {
  const e = EXPERIMENTS.find((x) => x.name === name);
  if (!e) throw new Error(`Unknown experiment "${name}". Available: ${experimentNames().join(', ')}`);
  return e;
}
