import pytest

from pipeline.devices import DeviceError, resolve_device


def test_cpu_and_auto_compute_types():
    assert resolve_device("cpu", "auto").compute_type == "int8"
    assert resolve_device("cpu", "float32").compute_type == "float32"
    auto = resolve_device("auto", "auto")
    assert auto.kind in ("cpu", "cuda") and auto.compute_type == ("int8" if auto.kind == "cpu" else "float16")


def test_unusable_cuda_says_what_is_missing():
    import ctranslate2

    if ctranslate2.get_cuda_device_count():
        pytest.skip("a GPU is visible here: the error path cannot be shown")
    with pytest.raises(DeviceError, match="no GPU"):
        resolve_device("cuda:0")
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
