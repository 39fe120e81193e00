// Maps arbitrary integer labels (negative, non-contiguous) to dense ids
// 0..m-1 in ascending label order, so metrics can index typed arrays.

export interface LabelIndex {
  /** Distinct labels, ascending; id i stands for values[i]. */
  readonly values: Int32Array
  /** Dense id of each element. */
  readonly ids: Int32Array
  /** Number of elements per id. */
  readonly counts: Int32Array
}

export function indexLabels(labels: Int32Array): LabelIndex {
  const sorted = Int32Array.from(labels).sort()
  let distinct = 0
  for (let i = 0; i < sorted.length; i++) {
    if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[distinct++] = sorted[i]!
  }
  const values = sorted.slice(0, distinct)
  const ids = new Int32Array(labels.length)
  const counts = new Int32Array(distinct)
  for (let i = 0; i < labels.length; i++) {
    const id = labelId(values, labels[i]!)
    ids[i] = id
    counts[id]!++
  }
  return { values, ids, counts }
}

/** Dense id of `label` in ascending `values`, or -1 when absent. */
export function labelId(values: Int32Array, label: number): number {
  let lo = 0
  let hi = values.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const v = values[mid]!
    if (v < label) lo = mid + 1
    else if (v > label) hi = mid - 1
    else return mid
  }
  return -1
}
