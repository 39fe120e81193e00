// Agreement between a clustering and the true classes (NMI, AMI, ARI,
// purity), computed as scikit-learn 1.9 does so numbers are comparable with
// published ones, plus size statistics of a clustering (k-means pseudo-labels
// degrade when clusters collapse or go empty).
import { logGamma } from './lgamma.js'
import { indexLabels } from './labels.js'
import { percentileOfSorted } from './stats.js'

/** Sparse contingency table: only nonzero cells are stored. */
export interface Contingency {
  readonly n: number
  /** Distinct true labels, ascending (the table's rows). */
  readonly classes: Int32Array
  /** Distinct predicted labels, ascending (the table's columns). */
  readonly clusters: Int32Array
  readonly classSizes: Int32Array
  readonly clusterSizes: Int32Array
  /** Nonzero cells in row-major order: row, column and count of each. */
  readonly cellClass: Int32Array
  readonly cellCluster: Int32Array
  readonly cellCount: Int32Array
}

export interface ClusterAgreement {
  readonly nmi: number
  readonly ami: number
  readonly ari: number
  readonly purity: number
}

export function contingencyTable(labelsTrue: Int32Array, labelsPred: Int32Array): Contingency {
  if (labelsTrue.length !== labelsPred.length) {
    throw new Error(`labelings differ in length: ${labelsTrue.length} vs ${labelsPred.length}`)
  }
  if (labelsTrue.length === 0) throw new Error('empty labelings')
  const rows = indexLabels(labelsTrue)
  const cols = indexLabels(labelsPred)
  const nCols = cols.values.length
  // Sorting row * nCols + col groups equal cells, row-major; the key stays
  // exact in a double for any realistic table (< 2^53 cells).
  const keys = new Float64Array(labelsTrue.length)
  for (let i = 0; i < keys.length; i++) keys[i] = rows.ids[i]! * nCols + cols.ids[i]!
  keys.sort()
  let cells = 0
  for (let i = 0; i < keys.length; i++) if (i === 0 || keys[i] !== keys[i - 1]) cells++
  const cellClass = new Int32Array(cells)
  const cellCluster = new Int32Array(cells)
  const cellCount = new Int32Array(cells)
  let c = -1
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    if (i === 0 || key !== keys[i - 1]) {
      c++
      cellClass[c] = Math.floor(key / nCols)
      cellCluster[c] = key % nCols
    }
    cellCount[c]!++
  }
  return {
    n: labelsTrue.length,
    classes: rows.values,
    clusters: cols.values,
    classSizes: rows.counts,
    clusterSizes: cols.counts,
    cellClass,
    cellCluster,
    cellCount,
  }
}

/** Entropy (nats) of a labeling given its group sizes, as sklearn's _entropy. */
function entropy(sizes: Int32Array, n: number): number {
  if (sizes.length === 1) return 0
  const logN = Math.log(n)
  let sum = 0
  for (let i = 0; i < sizes.length; i++) sum += (sizes[i]! / n) * (Math.log(sizes[i]!) - logN)
  return -sum
}

/** Mutual information (nats), as sklearn's mutual_info_score. */
export function mutualInformation(table: Contingency): number {
  const { n, classSizes, clusterSizes, cellClass, cellCluster, cellCount } = table
  if (classSizes.length === 1 || clusterSizes.length === 1) return 0
  const logN = Math.log(n)
  let mi = 0
  for (let c = 0; c < cellCount.length; c++) {
    const count = cellCount[c]!
    const share = count / n
    const logOuter = -Math.log(classSizes[cellClass[c]!]! * clusterSizes[cellCluster[c]!]!) + logN + logN
    const term = share * (Math.log(count) - logN) + share * logOuter
    // sklearn zeroes terms below eps before summing.
    if (Math.abs(term) >= Number.EPSILON) mi += term
  }
  return Math.max(mi, 0)
}

/** Distinct values of `sizes` with how often each occurs. */
function sizeGroups(sizes: Int32Array): { sizes: Int32Array; counts: Int32Array } {
  const grouped = indexLabels(sizes)
  return { sizes: grouped.values, counts: grouped.counts }
}

/**
 * Expected mutual information under the permutation model, term for term as
 * sklearn's expected_mutual_information. Its summand depends only on the
 * pair of sizes (a_i, b_j), so rows and columns of equal size are summed once
 * and weighted by their multiplicities: cost O(distinct a x distinct b x
 * min(a, b)) instead of O(R x C x min(a, b)).
 */
export function expectedMutualInformation(table: Contingency): number {
  const { n, classSizes, clusterSizes } = table
  if (classSizes.length === 1 || clusterSizes.length === 1) return 0
  const logFactorial = new Float64Array(n + 1)
  for (let m = 0; m <= n; m++) logFactorial[m] = logGamma(m + 1)
  const logN = Math.log(n)
  const a = sizeGroups(classSizes)
  const b = sizeGroups(clusterSizes)
  let emi = 0
  for (let i = 0; i < a.sizes.length; i++) {
    const ai = a.sizes[i]!
    const logA = Math.log(ai)
    for (let j = 0; j < b.sizes.length; j++) {
      const bj = b.sizes[j]!
      const logB = Math.log(bj)
      // Constant part of log[a! b! (N-a)! (N-b)!]; the nij-dependent factorials are subtracted below.
      const glnFixed = logFactorial[ai]! + logFactorial[bj]! + logFactorial[n - ai]! + logFactorial[n - bj]!
      let sum = 0
      for (let nij = Math.max(1, ai - n + bj); nij <= Math.min(ai, bj); nij++) {
        const term2 = logN + Math.log(nij) - logA - logB
        const gln =
          glnFixed -
          (logFactorial[nij]! + logFactorial[n]!) -
          logFactorial[ai - nij]! -
          logFactorial[bj - nij]! -
          logFactorial[n - ai - bj + nij]!
        sum += (nij / n) * term2 * Math.exp(gln)
      }
      emi += a.counts[i]! * b.counts[j]! * sum
    }
  }
  return emi
}

/** NMI with the arithmetic mean of the entropies (sklearn's default). */
export function normalizedMutualInfo(table: Contingency): number {
  if (table.classes.length === 1 && table.clusters.length === 1) return 1
  const mi = mutualInformation(table)
  if (mi === 0) return 0
  return mi / ((entropy(table.classSizes, table.n) + entropy(table.clusterSizes, table.n)) / 2)
}

/** AMI with the arithmetic mean of the entropies (sklearn's default). */
export function adjustedMutualInfo(table: Contingency): number {
  const nClasses = table.classes.length
  const nClusters = table.clusters.length
  if (nClasses === 1 && nClusters === 1) return 1
  if (nClasses === 1 || nClusters === 1) return 0
  const mi = mutualInformation(table)
  const emi = expectedMutualInformation(table)
  const normalizer = (entropy(table.classSizes, table.n) + entropy(table.clusterSizes, table.n)) / 2
  // sklearn keeps both terms at least eps away from 0, preserving their sign.
  const awayFromZero = (x: number): number =>
    x < 0 ? Math.min(x, -Number.EPSILON) : Math.max(x, Number.EPSILON)
  return awayFromZero(mi - emi) / awayFromZero(normalizer - emi)
}

/** Adjusted Rand index from the pair-confusion matrix, as sklearn. */
export function adjustedRandIndex(table: Contingency): number {
  const { n, classSizes, clusterSizes, cellClass, cellCluster, cellCount } = table
  // Pair counts are < n^2, exact in doubles for n < 9e7.
  let sumSquares = 0
  let sameClusterPairs = 0
  let sameClassPairs = 0
  for (let c = 0; c < cellCount.length; c++) {
    const count = cellCount[c]!
    sumSquares += count * count
    sameClusterPairs += count * clusterSizes[cellCluster[c]!]!
    sameClassPairs += count * classSizes[cellClass[c]!]!
  }
  const tp = BigInt(sumSquares - n)
  const fp = BigInt(sameClusterPairs - sumSquares)
  const fn = BigInt(sameClassPairs - sumSquares)
  const tn = BigInt(n) * BigInt(n) - fp - fn - BigInt(sumSquares)
  if (fn === 0n && fp === 0n) return 1
  // Products reach n^4: exact in BigInt, then rounded once as Python does.
  return (
    (2 * Number(tp * tn - fn * fp)) / Number((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
  )
}

/** Fraction of points whose cluster's majority class is their class. */
export function purity(table: Contingency): number {
  const best = new Int32Array(table.clusters.length)
  for (let c = 0; c < table.cellCount.length; c++) {
    const col = table.cellCluster[c]!
    best[col] = Math.max(best[col]!, table.cellCount[c]!)
  }
  let sum = 0
  for (let col = 0; col < best.length; col++) sum += best[col]!
  return sum / table.n
}

export function clusterAgreement(labelsTrue: Int32Array, labelsPred: Int32Array): ClusterAgreement {
  const table = contingencyTable(labelsTrue, labelsPred)
  return {
    nmi: normalizedMutualInfo(table),
    ami: adjustedMutualInfo(table),
    ari: adjustedRandIndex(table),
    purity: purity(table),
  }
}

export interface ClusterSizeStats {
  /** K: clusters asked for, empty ones included. */
  readonly clusters: number
  readonly empty: number
  readonly singletons: number
  /** Over all K clusters, empty ones counting as size 0. */
  readonly min: number
  readonly median: number
  readonly max: number
  readonly mean: number
  /** Largest cluster over the mean size n / K; 1 when perfectly balanced. */
  readonly maxOverMean: number
  /**
   * Entropy of the cluster-size distribution over log K: 1 when perfectly
   * balanced, towards 0 as points collapse into few clusters (1 when K = 1).
   */
  readonly normalizedEntropy: number
  /** Distinct sizes ascending (0 for empty clusters) and how many clusters have each. */
  readonly histogram: { readonly sizes: Int32Array; readonly counts: Int32Array }
}

/**
 * Size statistics of a clustering. `k` is the number of clusters requested
 * (k-means' K), which reveals empty ones; it defaults to the distinct labels.
 */
export function clusterSizeStats(labels: Int32Array, k?: number): ClusterSizeStats {
  if (labels.length === 0) throw new Error('empty labeling')
  const present = indexLabels(labels).counts
  const clusters = k ?? present.length
  if (!Number.isInteger(clusters) || clusters < present.length) {
    throw new RangeError(`k = ${clusters} but the labeling has ${present.length} distinct clusters`)
  }
  const sizes = new Int32Array(clusters)
  sizes.set(present)
  sizes.sort()
  const n = labels.length
  let singletons = 0
  let entropySum = 0
  for (let i = 0; i < present.length; i++) {
    const size = present[i]!
    if (size === 1) singletons++
    entropySum -= (size / n) * Math.log(size / n)
  }
  const meanSize = n / clusters
  const max = sizes[clusters - 1]!
  return {
    clusters,
    empty: clusters - present.length,
    singletons,
    min: sizes[0]!,
    median: percentileOfSorted(sizes, 50),
    max,
    mean: meanSize,
    maxOverMean: max / meanSize,
    normalizedEntropy: clusters === 1 ? 1 : entropySum / Math.log(clusters),
    histogram: sizeGroups(sizes),
  }
}
