"""Optional submodules on import (PEP 562): ``fastbp.optimize``, ``fastbp.dask``,
``fastbp.sklearn`` and ``fastbp.onnx`` resolve after a plain ``import fastbp``, import their
third-party packages only when first touched, and name the pip extra when one is missing.
Each case runs in a fresh interpreter (tests/scripts/)."""

import pytest
from helpers import run_script_file, script_result

from fastbp._extras import EXTRAS, available

#: The optional submodules of this checkout.
SUBMODULES = tuple(EXTRAS)


def test_import_fastbp_imports_no_extra_and_each_resolves_on_access():
    present = [sub for sub in SUBMODULES if available(f"fastbp.{sub}")]
    result = script_result(run_script_file("lazy_submodules.py", *present))
    # Numba imports SciPy where it is installed, so SciPy is not among the names checked.
    assert result["imported_before"] == []
    assert result["resolved"] == {sub: [f"fastbp.{sub}", True] for sub in present}
    assert result["dir"] == present


def test_missing_extra_names_its_pip_command():
    blocked = sorted({name for _, needs in EXTRAS.values() for name in needs})
    messages = script_result(run_script_file("missing_extras.py", *blocked))
    assert set(messages) == set(SUBMODULES)
    for sub, message in messages.items():
        extra = EXTRAS[sub][0]
        assert message is not None, f"fastbp.{sub} imported with {blocked} blocked"
        assert f'pip install "fastbp[{extra}]"' in message, message


def test_unknown_attribute_is_still_an_attribute_error():
    import fastbp

    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        fastbp.no_such_name  # noqa: B018
