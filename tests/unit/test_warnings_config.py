"""The test configuration (pyproject's filterwarnings) fails on deprecations raised by interp's own code and
ignores third-party deprecation noise. The filters pytest applies to every test are the ones checked."""

import warnings

import pytest


def _warn_from(module: str, category: type[Warning]) -> None:
    """Raise ``category`` from code whose module is ``module`` (what ``warnings`` attributes it to)."""
    namespace = {"__name__": module, "warnings": warnings, "category": category}
    exec("def deprecated():\n    warnings.warn('old API', category, stacklevel=1)\n", namespace)
    namespace["deprecated"]()


@pytest.mark.parametrize("module", ["interp", "interp.pipelines.loading", "interp.sweep.runner"])
@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_a_deprecation_from_interp_fails_the_test(module, category):
    with pytest.raises(category, match="old API"):
        _warn_from(module, category)


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_third_party_deprecations_are_not_errors(category):
    _warn_from("somelib.module", category)  # ignored by the configuration: no exception
    _warn_from("interpolation", category)  # a third-party module whose name only starts like interp's


def test_torch_dtype_deprecation_named_by_message_is_an_error():
    """diffusers attributes ``torch_dtype is deprecated`` to itself; only interp's calls trigger it."""
    with pytest.raises(FutureWarning):
        warnings.warn("`torch_dtype` is deprecated! Use `dtype` instead!", FutureWarning, stacklevel=1)
