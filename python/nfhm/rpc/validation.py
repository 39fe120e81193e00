"""Calls held to the contract (nfhm/core/contract.py): a method's params before its handler
runs, its result after. A bad call is refused with the method and the field's path; a result
that breaks its schema is a bug on this side, reported with the Python traceback."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ..core.contract import Contract


class ContractViolation(ValueError):
    """Params or a result that do not match the method's schema in contract.json."""


def _where(root: str, error: ValidationError) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


class Validators:
    """One compiled validator per schema of the contract's methods."""

    def __init__(self, contract: Contract) -> None:
        self._params = {name: Draft202012Validator(m.params) for name, m in contract.methods.items()}
        self._results = {name: Draft202012Validator(m.result) for name, m in contract.methods.items()}

    def __contains__(self, method: str) -> bool:
        return method in self._params

    def check_params(self, method: str, params: Any) -> None:
        self._check(self._params[method], method, "params", params)

    def check_result(self, method: str, result: Any) -> None:
        self._check(self._results[method], method, "result", result)

    @staticmethod
    def _check(validator: Draft202012Validator, method: str, root: str, value: Any) -> None:
        error = best_match(validator.iter_errors(value))
        if error is not None:
            raise ContractViolation(f"{method}: {_where(root, error)}: {error.message}")
