"""`pip install ./python` into a fresh environment that has only torch (issue 16's "Done when"):
the package declares everything else it needs, and its notebook API there embeds images equal
to this environment's.

The fresh venv sees this venv's torch through a .pth file naming a folder of links to torch and
the packages torch's metadata requires, nothing else; pip fetches the rest (from its cache after
the first run)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement

import nfhm
from nfhm.core.model import create_model
from float32 import assert_float32_close
from synthetic_images import make_images

PACKAGE = Path(nfhm.__file__).resolve().parents[1]  # python/
UNREACHABLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Network is unreachable|ConnectTimeout|ReadTimeoutError"
)


def distribution_closure(name: str) -> list[importlib.metadata.Distribution]:
    """`name` and every distribution its metadata requires (extras left out), recursively."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [name]
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def link_torch(folder: Path) -> list[str]:
    """Links to the top-level modules of torch and its requirements; their names."""
    folder.mkdir()
    names = set()
    for dist in distribution_closure("torch"):
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.endswith((".dist-info", ".pth")):
                continue
            target = Path(dist.locate_file(top))
            if top not in names and target.exists():
                (folder / top).symlink_to(target)
                names.add(top)
    return sorted(names)


FRESH_SCRIPT = """
import importlib.util, json, sys
import numpy as np
import nfhm
from nfhm.rpc.registry import Registry  # the worker's whole stack imports: faiss, sklearn, jsonschema

Registry()
encoder = nfhm.load_encoder(sys.argv[1])
np.save(sys.argv[2], encoder.embed(sys.argv[3:]))
import torch
print(json.dumps({"nfhm": nfhm.__file__, "torch": torch.__file__, "pandas": importlib.util.find_spec("pandas") is not None}))
"""


def test_pip_install_into_a_fresh_venv_with_only_torch(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # Without its own pip (this venv's pip installs into it, --python), saving ensurepip's ~5 s.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    linked = link_torch(tmp_path / "torch-only")
    assert "torch" in linked and "numpy" not in linked and "nfhm" not in linked
    (site / "torch-only.pth").write_text(f"{tmp_path / 'torch-only'}\n")

    # A copy, so that the build's files (build/, *.egg-info) stay out of the repository.
    source = tmp_path / "python"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    started = time.perf_counter()
    # --no-compile: no .pyc files for all of numpy, scipy, pyarrow ..., of which the test imports little.
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-compile", str(source)]
    pip = subprocess.run(install, capture_output=True, text=True, env=env, cwd=tmp_path)
    seconds = time.perf_counter() - started
    if pip.returncode != 0 and UNREACHABLE.search(pip.stdout + pip.stderr):
        pytest.skip(f"PyPI is unreachable: {UNREACHABLE.search(pip.stdout + pip.stderr).group(0)}")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    print(f"pip install ./python into a fresh venv: {seconds:.1f} s")

    weights = tmp_path / "FP16-ViT-S-7.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in create_model("ViT-S/7@28px").state_dict().items()}, weights)
    pictures, _ = make_images(6, 32, seed=3)
    paths = [str(tmp_path / f"image-{i}.png") for i in range(len(pictures))]
    for picture, path in zip(pictures, paths):
        picture.save(path)

    out = tmp_path / "fresh.npy"
    fresh = subprocess.run(
        [str(python), "-c", FRESH_SCRIPT, str(weights), str(out), *paths], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert fresh.returncode == 0, fresh.stderr
    where = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert Path(where["nfhm"]).is_relative_to(site)  # the installed copy, not this checkout
    assert Path(where["torch"]).resolve() == Path(torch.__file__).resolve()
    assert where["pandas"] is False  # nothing but torch came from here

    expected = nfhm.load_encoder(weights).embed(paths)
    assert_float32_close(np.load(out), expected, k=16, what="fresh venv vs this venv")
