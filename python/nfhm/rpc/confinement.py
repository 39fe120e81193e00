"""What a TCP client may name: the files the worker reads and writes, and the plug-ins it imports.

contract.json marks both (src/bridge/confinement.ts): a value whose JSON Schema carries
"x-worker-path" names a file or folder on the worker's machine, one with "x-plugin" a
``module:attribute`` plug-in, and a table column with "workerPath" holds such paths (the image
lists). A worker started with --listen checks every marked value of a call before its method runs:

* a path must lie, once its symlinks are resolved, in one of the --allow-dir directories (default:
  the working directory), unless the worker was started with --allow-any-path;
* a plug-in's module must be nfhm or one of the --allow-plugin modules (or inside one), and the
  object it names must be defined there, so ``nfhm.core.model:os.system`` is refused too.

The methods of the modules named in NFHM_WORKER_EXTENSIONS are not checked: the worker's operator
chose them at start, and the contract declares nothing about them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from ..core import plugins
from ..core.contract import Contract, JsonSchema
from ..methods.handler import Tables

PATH_MARK = "x-worker-path"
PLUGIN_MARK = "x-plugin"
BUILT_IN_PLUGINS = "nfhm"


def marked(schema: JsonSchema, value: Any, mark: str, where: str) -> Iterator[tuple[str, str]]:
    """(where, string) for each string in `value` whose schema carries `mark`. `value` is valid
    against `schema`; of a union, the first branch it matches is followed (model.weights
    "imagenet" is no path)."""
    if schema.get(mark) and isinstance(value, str):
        yield where, value
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from marked(sub, value[key], mark, f"{where}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from marked(schema["items"], item, mark, f"{where}[{i}]")
    for branch in schema.get("anyOf", ()):
        if Draft202012Validator(branch).is_valid(value):
            yield from marked(branch, value, mark, where)
            break


def _inside(dirs: tuple[str, ...]) -> Callable[[str, str, str], None]:
    """A check that raises PermissionError for a path outside `dirs` once its symlinks are
    resolved. Each folder is resolved once: an image list names thousands of files in a few
    folders (os.path.realpath of 16,384 deep paths one by one: ~0.4 s on 2 shared cores)."""
    folders: dict[str, str] = {}

    def real(path: str) -> str:
        folder, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        if folder not in folders:
            folders[folder] = os.path.realpath(folder or ".")
        full = os.path.join(folders[folder], name)
        return os.path.realpath(full) if os.path.islink(full) else full

    def check(method: str, where: str, path: str) -> None:
        resolved = real(path)
        if any(resolved == d or resolved.startswith(d.rstrip(os.sep) + os.sep) for d in dirs):
            return
        shown = path if resolved == path else f"{path} (that is, {resolved})"
        raise PermissionError(
            f"{method}: {where}: {shown} lies outside the directories this worker may use: {', '.join(dirs)} "
            "(start it with --allow-dir DIR to add one, or --allow-any-path)"
        )

    return check


@dataclass(frozen=True)
class Confinement:
    dirs: tuple[str, ...] | None  # real paths; None: any path (--allow-any-path)
    plugins: tuple[str, ...]  # modules whose plug-ins (theirs and their submodules') may be named

    @classmethod
    def of(cls, allow_dirs: list[str] | None, any_path: bool, allow_plugins: list[str]) -> Confinement:
        if any_path:
            return cls(None, (BUILT_IN_PLUGINS, *allow_plugins))
        dirs = allow_dirs or [os.getcwd()]
        missing = [d for d in dirs if not os.path.isdir(d)]
        if missing:
            raise SystemExit(f"nfhm.rpc.serve: --allow-dir {missing[0]}: no such directory")
        return cls(tuple(os.path.realpath(d) for d in dirs), (BUILT_IN_PLUGINS, *allow_plugins))

    def check(self, contract: Contract, method: str, params: dict[str, Any], tables: Tables) -> None:
        """Raises PermissionError naming the first value of this call that is not allowed."""
        declared = contract.methods[method]
        if self.dirs is not None:
            inside = _inside(self.dirs)
            for where, path in marked(declared.params, params, PATH_MARK, "params"):
                inside(method, where, path)
            for table, layout in declared.tables_in.items():
                for column in contract.layouts[layout]:
                    if column.worker_path and column.name in tables[table].column_names:
                        for row, path in enumerate(tables[table][column.name].to_pylist()):
                            if path is not None:
                                inside(method, f"table `{table}` row {row}", path)
        for where, spec in marked(declared.params, params, PLUGIN_MARK, "params"):
            self._check_plugin(method, where, spec)

    def _allowed_module(self, module: str) -> bool:
        return any(module == m or module.startswith(m + ".") for m in self.plugins)

    def _check_plugin(self, method: str, where: str, spec: str) -> None:
        module = spec.partition(":")[0]
        if not self._allowed_module(module):
            raise PermissionError(
                f"{method}: {where}: plug-in {spec!r} is not from a module this worker allows "
                f"({', '.join(self.plugins)}); start it with --allow-plugin {module} to allow it"
            )
        home = getattr(plugins.resolve(spec), "__module__", None)
        if not (isinstance(home, str) and self._allowed_module(home)):
            raise PermissionError(
                f"{method}: {where}: plug-in {spec!r} names an object of module {home!r}, which this worker "
                f"does not allow ({', '.join(self.plugins)})"
            )
