"""Rank-aware worker methods: 2 gloo processes against 1 process.

The two ranks run what a torchrun worker's ranks run (every collective method on every rank,
nfhm.core.world initialised from torchrun's environment variables); the references are plain
computations in this process: BatchNorm over the whole batch, one-process embedding, search and
training.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nfhm.core import world
from nfhm.core.precision import Precision
from nfhm.core.sync_batchnorm import convert_to_global_batchnorm
from nfhm.core.table_files import read_table_file, write_table_file
from nfhm.methods.state import WorkerState
from nfhm.rpc import torchrun
from nfhm.rpc.registry import Registry
from float32 import assert_float32_close
from ports import free_port
from synthetic_images import make_images
from worker_calls import call

WORLD = 2
IMAGES = 64
# One process and two do the same float32 sums in another order (the batch split over the ranks,
# BatchNorm's statistics and the gradients all-reduced): a sum of n terms reordered may differ by
# (n - 1) float32 roundings of its largest magnitude (Higham's worst case), n = 16 here (the global
# batch); training carries such differences from step to step. K allows that four times over.
K = 64
MODEL = {"loader": "nfhm.core.model:load", "name": "ViT-T/4@28px", "weights": None, "image_size": None, "embedding_size": None}
TRAIN = {
    "model": MODEL,
    "head": {"plugin": "nfhm.core.partial_fc:PartialFC_V2", "sample_rate": 1.0, "sample_num_feat": None},
    "margin": {"plugin": "nfhm.core.losses:CombinedMarginLoss", "s": 32, "m1": 1, "m2": 0.3, "m3": 0, "interclass_filtering_threshold": 0},
    "num_classes": 7,  # 4 + 3 classes on the two ranks
    "batch_size": 16,  # global: 8 per rank
    "weight_decay": 0.0,
    "head_lr_scale": 5.0,
    "freeze": 0,
    "embedding_lr_scale": 1.0,
    "precision": "fp32",
    "augment": {"crop_scale": [0.6, 1.0], "hflip_prob": 0.5, "randaug_ops": 1, "randaug_magnitude": 5, "erasing_prob": 0.25},
    "seed": 3,
    "loader_workers": 0,
    "resume": None,
}
SCHEDULE = {"lr": [[1e-3, 5e-3]] * 3, "beta1": [[0.9, 0.9]] * 3}  # 3 steps per call; 4 steps per epoch
# The model card only: the other formats are test_export.py's.
EXPORT = {"model": MODEL, "round": 1, "formats": {"safetensors": False, "onnx": False}}
# The first block frozen and no augmentation: the frozen part's output is cached (each rank keeps
# what it has seen, so the second epoch mixes cached and new images).
FROZEN = {
    **TRAIN,
    "freeze": 1,
    "augment": {"crop_scale": [1.0, 1.0], "hflip_prob": 0.0, "randaug_ops": 0, "randaug_magnitude": 5, "erasing_prob": 0.0},
}


def image_table(folder: Path) -> pa.Table:
    images, classes = make_images(IMAGES, 28, seed=5)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(folder / f"{i:03d}.png"))
        image.save(paths[-1])
    return pa.table(
        {
            "id": pa.array(np.arange(IMAGES), pa.int32()),
            "path": paths,
            "label": pa.array(classes % TRAIN["num_classes"], pa.int32()),
        }
    )


def batchnorm_steps(norm: nn.Module, rows: slice) -> dict[str, torch.Tensor]:
    """Two training steps of `norm` on `rows` of fixed (12, 5) batches (loss: a fixed weighting
    of the outputs), then eval: outputs, input gradients, state and parameter gradients."""
    generator = torch.Generator().manual_seed(0)
    batch = [torch.randn(12, 5, generator=generator) * 3 + 1 for _ in range(2)]
    weights = torch.randn(12, 5, generator=generator)
    bn = norm[0]
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=generator)
        bn.bias.uniform_(-1, 1, generator=generator)
    out: dict[str, torch.Tensor] = {}
    for step, x in enumerate(batch):
        x = x[rows].clone().requires_grad_(True)
        y = norm(x)
        (y * weights[rows]).sum().backward()
        out[f"y{step}"], out[f"dx{step}"] = y.detach(), x.grad
    norm.eval()
    out["eval"] = norm(batch[0][rows]).detach()
    out.update({name: value.detach().clone() for name, value in norm.state_dict().items()})
    out["dweight"], out["dbias"] = bn.weight.grad, bn.bias.grad
    return out


def batchnorm_case(rank: int) -> dict[str, torch.Tensor]:
    norm = convert_to_global_batchnorm(nn.Sequential(nn.BatchNorm1d(5, eps=2e-5)))
    return batchnorm_steps(norm, slice(6 * rank, 6 * rank + 6))


def found_inf_case(rank: int) -> dict[str, Any]:
    """fp16 with a GradScaler: rank 1's gradient overflows, rank 0's does not; both must skip."""
    param = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.1)
    precision = Precision.from_name("fp16", "cpu", process_group=dist.group.WORLD)
    factor = torch.full((3,), float("inf") if rank == 1 else 1.0)
    precision.scale_loss((param * factor).sum()).backward()
    precision.unscale(optimizer)
    return {"applied": precision.step(optimizer), "param": param.detach().clone()}


def rank_main(rank: int, port: int, folder: str) -> None:
    """What a torchrun rank of `nfhm.rpc.serve --distributed` does, with rank 0's requests issued
    here instead of read from a client: rank 0 leads, rank 1 follows."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    out = Path(folder)
    world.init()
    registry = Registry([rank_faults()])
    try:
        results: dict[str, Any] = {"batchnorm": batchnorm_case(rank), "found_inf": found_inf_case(rank)}
        state = WorkerState()
        if rank == 0:
            results.update(lead(registry, state, out))
        else:
            torchrun.follow(state, registry)
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def rank_1_fails(state: WorkerState, tables: dict[str, pa.Table]) -> dict[str, Any]:
    if world.world().rank == 1:
        raise ValueError("only rank 1 fails")
    return {}


def rank_faults() -> ModuleType:
    """A worker extension with one collective method, as NFHM_WORKER_EXTENSIONS would load it."""
    module = ModuleType("rank_faults")
    module.METHODS = {"test.rank_1_fails": rank_1_fails}
    module.COLLECTIVE = frozenset(module.METHODS)
    return module


def lead(registry: Registry, state: WorkerState, out: Path) -> dict[str, Any]:
    run = torchrun.lead(registry)

    def call(name: str, params: dict[str, Any], tables: dict[str, pa.Table] | None = None) -> tuple[Any, Any]:
        reply, out_tables = run(state, name, params, tables or {})
        assert reply["ok"], reply["error"]["traceback"]
        return reply["result"], out_tables

    try:
        follower_failure = run(state, "test.rank_1_fails", {}, {})[0]
        table = read_table_file(str(out / "images.arrow"))
        embed = {"model": MODEL, "out": str(out / "two.arrow"), "batch_size": 5, "loader_workers": 0, "precision": "fp32"}
        call("embed.shard", embed, {"images": table})
        knn = {"query_shards": [str(out / "two.arrow")], "gallery_shards": None, "k": 5, "exclude_self": True}
        neighbors = call("search.knn", knn)[1]["neighbors"]
        # 3 steps, a checkpoint, a new session from it, 3 more steps: the same as 6 at once.
        start = call("train.start", TRAIN, {"train": table})[0]
        losses = call("train.steps", SCHEDULE)[0]["loss"]
        call("train.checkpoint", {"path": str(out / "two-ranks.pt")})
        resumed = call("train.start", {**TRAIN, "resume": str(out / "two-ranks.pt")}, {"train": table})[0]
        losses += call("train.steps", SCHEDULE)[0]["loss"]
        call("train.export", {**EXPORT, "model_path": str(out / "two-model.pt"), "centroids_path": str(out / "two-centres.npy")})
        failure = run(state, "train.steps", SCHEDULE, {})[0]  # no session any more, on either rank
        call("train.start", FROZEN, {"train": table})
        frozen_losses = call("train.steps", SCHEDULE)[0]["loss"] + call("train.steps", SCHEDULE)[0]["loss"]
        call("train.export", {**EXPORT, "model_path": str(out / "frozen-model.pt"), "centroids_path": str(out / "frozen-centres.npy")})
    finally:
        torchrun.release_followers()
    return {
        "neighbors": neighbors,
        "start": start,
        "resumed": resumed,
        "losses": losses,
        "failure": failure,
        "follower_failure": follower_failure,
        "frozen_losses": frozen_losses,
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("distributed")
    table = image_table(folder)
    write_table_file(str(folder / "images.arrow"), table)
    mp.spawn(rank_main, args=(free_port(), str(folder)), nprocs=WORLD, join=True)
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return {"folder": folder, "table": table, "ranks": ranks}


def test_global_batchnorm_equals_batchnorm_over_the_whole_batch(run: dict[str, Any]) -> None:
    expected = batchnorm_steps(nn.Sequential(nn.BatchNorm1d(5, eps=2e-5)), slice(0, 12))
    parts = [r["batchnorm"] for r in run["ranks"]]
    for name in ("y0", "dx0", "y1", "dx1", "eval"):
        assert_float32_close(torch.cat([p[name] for p in parts]), expected[name], K, name)
    for name in ("0.running_mean", "0.running_var", "0.num_batches_tracked"):
        for part in parts:
            assert_float32_close(part[name], expected[name], K, name)
    # Each rank holds the gradient of its own rows' loss; DDP sums (averages) them.
    for name in ("dweight", "dbias"):
        assert_float32_close(sum(p[name] for p in parts), expected[name], K, name)


def test_fp16_overflow_on_one_rank_skips_the_step_on_every_rank(run: dict[str, Any]) -> None:
    for part in (r["found_inf"] for r in run["ranks"]):
        assert part["applied"] is False
        torch.testing.assert_close(part["param"], torch.ones(3))


def test_embedding_and_search_split_over_ranks_match_one_process(run: dict[str, Any], tmp_path: Path) -> None:
    embed = {"model": MODEL, "out": str(tmp_path / "one.arrow"), "batch_size": 5, "loader_workers": 0, "precision": "fp32"}
    result, _ = call("embed.shard", embed, {"images": run["table"]})
    assert result["rows"] == IMAGES and result["bad"] == []
    one, two = read_table_file(embed["out"]), read_table_file(str(run["folder"] / "two.arrow"))
    assert two["id"].to_pylist() == one["id"].to_pylist()
    vectors = [np.stack(t["embedding"].to_numpy(zero_copy_only=False)) for t in (one, two)]
    assert_float32_close(vectors[1], vectors[0], K, "embeddings")

    knn = {"query_shards": [embed["out"]], "gallery_shards": None, "k": 5, "exclude_self": True}
    _, tables = call("search.knn", knn, {})
    mine, theirs = tables["neighbors"], run["ranks"][0]["neighbors"]
    assert theirs.column("query_id").to_pylist() == mine.column("query_id").to_pylist()
    assert theirs.column("ids").to_pylist() == mine.column("ids").to_pylist()
    assert_float32_close(
        np.stack(theirs["similarities"].to_numpy(zero_copy_only=False)),
        np.stack(mine["similarities"].to_numpy(zero_copy_only=False)),
        K,
        "similarities",
    )


def one_process_training(
    table: pa.Table, folder: Path, resume: str | None, calls: int, params: dict[str, Any] = TRAIN
) -> tuple[list[float], Path, Path]:
    state = WorkerState()
    call("train.start", {**params, "resume": resume}, {"train": table}, state)
    losses: list[float] = []
    for _ in range(calls):
        losses += call("train.steps", SCHEDULE, {}, state)[0]["loss"]
    model, centres = folder / "model.pt", folder / "centres.npy"
    call("train.export", {**EXPORT, "model_path": str(model), "centroids_path": str(centres)}, {}, state)
    return losses, model, centres


def assert_same_weights(model: Path, centres: Path, other_model: Path, other_centres: Path) -> None:
    mine, theirs = torch.load(model, weights_only=True), torch.load(other_model, weights_only=True)
    assert mine.keys() == theirs.keys()
    # At the scale of the whole model: a tensor that is itself rounding noise (a BatchNorm's running
    # mean behind a layer without bias) differs by many times its own size.
    floats = [name for name in mine if mine[name].is_floating_point()]
    flat = [torch.cat([state[name].double().flatten() for name in floats]) for state in (theirs, mine)]
    assert_float32_close(flat[0], flat[1], K, "weights")
    assert all(torch.equal(theirs[name], mine[name]) for name in mine if name not in floats)
    assert_float32_close(np.load(other_centres), np.load(centres), K, "centroids")


def test_failures_are_answered_by_rank_0_and_the_ranks_go_on(run: dict[str, Any]) -> None:
    failure = run["ranks"][0]["failure"]  # on every rank: rank 0's own error
    assert failure["ok"] is False and failure["error"]["message"].startswith("no training session")
    failure = run["ranks"][0]["follower_failure"]  # on rank 1 only: named by its rank
    assert failure["ok"] is False and failure["error"]["message"] == "rank 1: only rank 1 fails"
    assert "ValueError" in failure["error"]["traceback"]


def test_two_ranks_train_as_one_process_and_resume_their_own_checkpoint(run: dict[str, Any], tmp_path: Path) -> None:
    losses, model, centres = one_process_training(run["table"], tmp_path, None, calls=2)
    leader = run["ranks"][0]
    assert leader["start"]["start_step"] == 0 and leader["resumed"]["start_step"] == 3
    assert leader["start"]["parameters"]["head"] == TRAIN["num_classes"] * 32  # the whole class matrix
    assert_float32_close(leader["losses"], losses, K, "losses")
    assert_same_weights(model, centres, run["folder"] / "two-model.pt", run["folder"] / "two-centres.npy")
    assert np.load(run["folder"] / "two-centres.npy").shape == (TRAIN["num_classes"], 32)


def test_a_checkpoint_of_two_ranks_continues_in_one_process(run: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    full, model, centres = one_process_training(run["table"], tmp_path / "full", None, calls=2)
    resumed, resumed_model, resumed_centres = one_process_training(
        run["table"], tmp_path, str(run["folder"] / "two-ranks.pt"), calls=1
    )
    assert_float32_close(resumed, full[3:], K, "losses")
    assert_same_weights(model, centres, resumed_model, resumed_centres)


def test_two_ranks_train_a_partly_frozen_model_with_its_cache_as_one_process(run: dict[str, Any], tmp_path: Path) -> None:
    losses, model, centres = one_process_training(run["table"], tmp_path, None, calls=2, params=FROZEN)
    assert_float32_close(run["ranks"][0]["frozen_losses"], losses, K, "losses")
    assert_same_weights(model, centres, run["folder"] / "frozen-model.pt", run["folder"] / "frozen-centres.npy")
