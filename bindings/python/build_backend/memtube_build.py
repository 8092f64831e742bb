"""The package's PEP 517 build backend: maturin, told which ABI to build for.

On CPython 3.11 and later the extension is built for the stable ABI (the
crate's default feature ``abi3``): one wheel serves every later version. The
buffer protocol, through which messages and grants are shared without a copy,
entered the limited API only in 3.11, so on CPython 3.9 and 3.10 the
extension is built for the running version instead (``--no-default-features``
added to maturin's build arguments). Everything else is maturin's own hook.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import maturin as _maturin

# Hooks maturin handles alone (an sdist is the same for every version).
build_sdist = _maturin.build_sdist
get_requires_for_build_sdist = _maturin.get_requires_for_build_sdist
get_requires_for_build_wheel = _maturin.get_requires_for_build_wheel
get_requires_for_build_editable = _maturin.get_requires_for_build_editable

_STABLE_ABI_FROM = (3, 11)


def _settings(config_settings: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """maturin's settings, with the stable ABI turned off before 3.11."""
    if sys.version_info[:2] >= _STABLE_ABI_FROM:
        return config_settings
    args = list(_maturin.get_maturin_pep517_args(config_settings))
    if "--no-default-features" not in args:
        args.append("--no-default-features")
    settings = dict(config_settings or {})
    settings.pop("build-args", None)
    settings["maturin.build-args"] = args
    return settings


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    return _maturin.build_wheel(wheel_directory, _settings(config_settings), metadata_directory)


def build_editable(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    return _maturin.build_editable(wheel_directory, _settings(config_settings), metadata_directory)


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    return _maturin.prepare_metadata_for_build_wheel(metadata_directory, _settings(config_settings))


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Mapping[str, Any] | None = None
) -> str:
    return _maturin.prepare_metadata_for_build_editable(metadata_directory, _settings(config_settings))
