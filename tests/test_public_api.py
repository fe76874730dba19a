"""The public API: curated ``__all__`` lists that resolve, docstrings everywhere, and a lazy top level."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import pkgutil
import subprocess
import sys

import pytest

import cse

EXPECTED_TOP_LEVEL = {
    "CommitmentPolicy",
    "ConfigurationError",
    "ContentAlgorithm",
    "CseError",
    "DataKey",
    "DataKeyCache",
    "DecryptingReader",
    "DecryptionError",
    "EncryptingWriter",
    "EncryptionClient",
    "EncryptionError",
    "Envelope",
    "Format",
    "HeadResult",
    "KeyProvider",
    "KeyProviderError",
    "KeyRequest",
    "ObjectInfo",
    "ObjectSettings",
    "PutResult",
    "ServerSideEncryption",
    "Store",
    "StoreError",
    "TransferConfig",
    "WrapAlgorithm",
    "WrappedKey",
    "__version__",
    "detect_format",
    "head_object",
    "open_provider",
    "open_store",
    "parse_sse",
    "register_format",
    "register_provider",
    "register_store",
}


EXPECTED_PARQUET = {
    "CONTENT_ALGORITHM",
    "CseCryptoFactory",
    "CseKmsClient",
    "crypto_factory",
    "decryption_configuration",
    "encryption_configuration",
    "read_table",
    "write_dataset",
    "write_table",
}


def test_parquet_all_is_curated() -> None:
    parquet = importlib.import_module("cse.parquet")
    assert set(parquet.__all__) == EXPECTED_PARQUET


def _modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        names.append(info.name)
    return names


MODULES = [
    m
    for package in ("cse", "cse_rsa", "cse_s3", "cse_aws_kms", "cse_oss", "cse_aliyun_kms")
    for m in _modules(package)
    if not m.endswith(".__main__")
]


def test_top_level_all_is_curated_and_resolves() -> None:
    assert set(cse.__all__) == EXPECTED_TOP_LEVEL
    for name in cse.__all__:
        assert getattr(cse, name) is not None
    assert sorted(dir(cse)) == sorted(cse.__all__)
    with pytest.raises(AttributeError):
        cse.NotAThing  # noqa: B018


def test_import_cse_is_lazy() -> None:
    heavy = "('cse.client', 'pydantic', 'cryptography')"
    code = f"import sys, cse; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_import_cse_never_imports_distributed() -> None:
    """``import cse`` (and the modules of ``cse migrate``, the Dask engine's included) leave ``dask`` and
    ``distributed`` unimported: only a run with ``engine="dask"`` imports them."""
    pytest.importorskip("distributed")  # installed (the dev group has it), so that an import would show
    code = (
        "import sys, cse, cse.migrate, cse.migrate_dask, cse.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("module_name", MODULES)
def test_every_module_has_all_that_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names {name}, which does not exist"


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_function_and_method_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            if getattr(obj, "__module__", "") != module.__name__:
                continue  # documented where it is defined
            if not inspect.getdoc(obj):
                missing.append(name)
        if inspect.isclass(obj) and obj.__module__ == module.__name__:
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if isinstance(func, property):
                    func = func.fget
                if inspect.isfunction(func) and not inspect.getdoc(func):
                    missing.append(f"{name}.{attr}")
    assert not missing, f"{module_name}: no docstring on {missing}"


def test_py_typed_markers_ship() -> None:
    import cse_aliyun_kms
    import cse_aws_kms
    import cse_oss
    import cse_rsa
    import cse_s3

    for pkg in (cse, cse_rsa, cse_s3, cse_aws_kms, cse_oss, cse_aliyun_kms):
        assert (importlib.resources.files(pkg.__name__) / "py.typed").is_file()
