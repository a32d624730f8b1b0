/**
 * Classification metrics from true and predicted classes: the confusion matrix and per-class
 * precision, recall and F1, with their macro and support-weighted averages (as scikit-learn's
 * classification_report). Browser-safe.
 *
 * Shape legend: K = classes. confusion[t][p] = samples of true class t predicted as p (rows: truth).
 * precision_k = confusion[k][k] / Σ_t confusion[t][k];  recall_k = confusion[k][k] / Σ_p confusion[k][p];
 * F1_k = 2·P·R / (P + R). A ratio with nothing to divide by (a class never predicted, or absent) is 0,
 * scikit-learn's zero_division=0. The macro average is over the classes that occur among the true or
 * the predicted classes, as scikit-learn's (which takes its labels from both): a class with no samples
 * and no predictions has nothing to measure, and counting it as 0 would lower the average.
 */

export interface ClassMetrics {
  name: string;
  precision: number;
  recall: number;
  f1: number;
  /** Samples whose true class this is. */
  support: number;
}

export interface ClassificationReport {
  /** K x K, rows = true class, columns = predicted class. */
  confusion: number[][];
  perClass: ClassMetrics[];
  /** Unweighted mean over the classes that occur (true or predicted): see `absent`. */
  macro: Omit<ClassMetrics, 'name'>;
  /** Classes with no samples and no predictions, left out of the macro average. */
  absent: string[];
  /** Mean over classes weighted by support. */
  weighted: Omit<ClassMetrics, 'name'>;
  accuracy: number;
  count: number;
}

/** confusion[t][p] counts for labels and predictions in [0, numClasses). */
export function confusionMatrix(labels: ArrayLike<number>, predicted: ArrayLike<number>, numClasses: number): number[][] {
  if (labels.length !== predicted.length) throw new Error(`confusionMatrix: ${labels.length} labels but ${predicted.length} predictions`);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i];
    const p = predicted[i];
    if (!(t >= 0 && t < numClasses && p >= 0 && p < numClasses)) throw new Error(`confusionMatrix: sample ${i} has label ${t} and prediction ${p}, expected classes 0..${numClasses - 1}`);
    m[t][p]++;
  }
  return m;
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);

/** Precision, recall, F1 and support per class, their averages and the accuracy, from a confusion matrix. */
export function classificationReport(confusion: number[][], classNames?: readonly string[]): ClassificationReport {
  const k = confusion.length;
  const count = confusion.reduce((s, row) => s + row.reduce((a, b) => a + b, 0), 0);
  const perClass: ClassMetrics[] = [];
  const occurs: boolean[] = [];
  let correct = 0;
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    correct += tp;
    const predicted = confusion.reduce((s, row) => s + row[c], 0);
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    perClass.push({ name: classNames?.[c] ?? String(c), precision, recall, f1: ratio(2 * precision * recall, precision + recall), support });
    occurs.push(support > 0 || predicted > 0);
  }
  const average = (weight: (m: ClassMetrics, c: number) => number) => {
    const total = perClass.reduce((s, m, c) => s + weight(m, c), 0);
    const mean = (key: 'precision' | 'recall' | 'f1') => ratio(perClass.reduce((s, m, c) => s + weight(m, c) * m[key], 0), total);
    return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1'), support: count };
  };
  const absent = perClass.filter((_, c) => !occurs[c]).map((m) => m.name);
  return { confusion, perClass, macro: average((_, c) => (occurs[c] ? 1 : 0)), absent, weighted: average((m) => m.support), accuracy: ratio(correct, count), count };
}
