// Reads a run directory's TensorBoard event files with tensorboard's own
// reader (EventAccumulator, every event kept), as the `tensorboard` command
// would load them.
import { runPythonJson } from './python.js'

export interface ReadHistogram {
  step: number
  min: number
  max: number
  num: number
  sum: number
  sum_squares: number
  bucket_limit: number[]
  bucket: number[]
  /** tensorboard's own conversion for its histogram dashboard (data_compat): [left, right, count] per bucket. */
  buckets: [number, number, number][]
}

export interface ReadEvents {
  /** The event files in the directory, by name. */
  files: string[]
  fileVersion: number | null
  tags: { scalars: string[]; histograms: string[] }
  /** Per tag, [step, value] in the order read. */
  scalars: Record<string, [number, number][]>
  histograms: Record<string, ReadHistogram[]>
}

export function readEvents(dir: string): Promise<ReadEvents> {
  return runPythonJson<ReadEvents>(
    `
import dataclasses, json, os, sys
from tensorboard import data_compat
from tensorboard.compat.proto import histogram_pb2, summary_pb2
from tensorboard.util import tensor_util
from tensorboard.backend.event_processing.event_accumulator import DEFAULT_SIZE_GUIDANCE, EventAccumulator
path = json.load(sys.stdin)
acc = EventAccumulator(path, size_guidance={key: 0 for key in DEFAULT_SIZE_GUIDANCE})
acc.Reload()
tags = acc.Tags()

def histogram(e):
    h = dataclasses.asdict(e.histogram_value)
    # What the histogram dashboard shows: tensorboard's conversion of the legacy proto to [left, right, count] rows.
    value = summary_pb2.Summary.Value(tag="h", histo=histogram_pb2.HistogramProto(**h))
    buckets = tensor_util.make_ndarray(data_compat.migrate_value(value).tensor).tolist()
    return dict(step=e.step, buckets=buckets, **{k: list(v) if k.startswith("bucket") else v for k, v in h.items()})

print(json.dumps({
    "files": sorted(f for f in os.listdir(path) if "tfevents" in f),
    "fileVersion": acc.file_version,
    "tags": {"scalars": tags["scalars"], "histograms": tags["histograms"]},
    "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
    "histograms": {t: [histogram(e) for e in acc.Histograms(t)] for t in tags["histograms"]},
}))
`,
    dir,
  )
}

/** Per run as `tensorboard --logdir` finds them under `logdir` (its EventMultiplexer): each scalar tag's [step, value] list. */
export function readRuns(logdir: string): Promise<Record<string, Record<string, [number, number][]>>> {
  return runPythonJson(
    `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import DEFAULT_SIZE_GUIDANCE
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
mux = EventMultiplexer(size_guidance={key: 0 for key in DEFAULT_SIZE_GUIDANCE}).AddRunsFromDirectory(json.load(sys.stdin))
mux.Reload()
print(json.dumps({run: {t: [[e.step, e.value] for e in mux.Scalars(run, t)] for t in tags["scalars"]} for run, tags in mux.Runs().items()}))
`,
    logdir,
  )
}
