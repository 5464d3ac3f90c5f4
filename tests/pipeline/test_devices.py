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


def test_engine_choice_and_its_compute_types():
    from pipeline.devices import cpu_has_amx_bf16, resolve_engine

    # torch and transformers are installed for the tests, so only the CPU decides.
    assert resolve_engine("auto", "cpu") == ("hybrid" if cpu_has_amx_bf16() else "ctranslate2")
    assert resolve_engine("transformers", "cpu") == "transformers"
    assert resolve_device("cpu", "auto", "transformers").compute_type == "float32"
    assert resolve_device("auto", "auto", "hybrid") == resolve_device("cpu", "auto", "ctranslate2")
    with pytest.raises(DeviceError, match="unknown ASR engine"):
        resolve_engine("onnx", "cpu")
    with pytest.raises(DeviceError, match="runs on the CPU"):
        resolve_engine("hybrid", "cuda")


def test_cuda_for_the_torch_engine_without_a_gpu_says_so():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here: the error path cannot be shown")
    with pytest.raises(DeviceError, match="transformers sees no GPU"):
        resolve_device("cuda", "auto", "transformers")


def test_torch_engine_refuses_a_compute_type_it_cannot_run():
    from pipeline.engines import EngineConfig, load_asr_engine

    with pytest.raises(ValueError, match="does not suit the transformers engine"):
        load_asr_engine(EngineConfig(asr_model="tiny.en", asr_engine="transformers", device="cpu", compute_type="int8"))


def test_the_decoder_runs_on_one_thread_on_small_cpus_unless_told_otherwise():
    from pipeline.devices import SINGLE_THREAD_DECODER_MAX_CPUS, resolve_decoder_threads

    small, large = SINGLE_THREAD_DECODER_MAX_CPUS, SINGLE_THREAD_DECODER_MAX_CPUS + 1
    assert resolve_decoder_threads(0, 0, cpus=small) == 1
    assert resolve_decoder_threads(0, 0, cpus=large) == 0  # the runtime's default, as the encoder
    assert resolve_decoder_threads(0, 6, cpus=large) == 6
    assert resolve_decoder_threads(3, 0, cpus=small) == 3


def test_a_final_decoded_alone_takes_every_thread_only_where_ctranslate2_uses_onednn(monkeypatch):
    from pipeline.devices import ctranslate2_uses_mkl, resolve_solo_beams_on_all_threads

    monkeypatch.setenv("CT2_USE_MKL", "0")
    assert not ctranslate2_uses_mkl()
    assert resolve_solo_beams_on_all_threads(0, 1, 0, cpus=2)
    assert resolve_solo_beams_on_all_threads(0, 1, 2, cpus=8)
    assert not resolve_solo_beams_on_all_threads(1, 1, 0, cpus=2)  # --decoder-threads given: kept as given
    assert not resolve_solo_beams_on_all_threads(0, 0, 0, cpus=8)  # the decoder has every thread already
    assert not resolve_solo_beams_on_all_threads(0, 2, 2, cpus=2)
    monkeypatch.setenv("CT2_USE_MKL", "1")  # MKL: a second thread made each decoder step twice as slow
    assert ctranslate2_uses_mkl()
    assert not resolve_solo_beams_on_all_threads(0, 1, 0, cpus=2)


def test_a_second_asr_lane_runs_where_a_one_thread_decoder_leaves_a_cpu_idle():
    from pipeline.devices import CPU_ASR_LANES, Device, resolve_asr_lanes

    cpu, gpu = Device("cpu"), Device("cuda", 0, "float16")
    assert resolve_asr_lanes(0, "hybrid", cpu, decoder_threads=1, cpus=2) == CPU_ASR_LANES == 2
    assert resolve_asr_lanes(0, "ctranslate2", cpu, decoder_threads=1, cpus=2) == 2
    assert resolve_asr_lanes(0, "ctranslate2", cpu, decoder_threads=1, cpus=1) == 1  # no CPU to spare
    assert resolve_asr_lanes(0, "ctranslate2", cpu, decoder_threads=0, cpus=8) == 1  # the decoder takes all
    assert resolve_asr_lanes(0, "ctranslate2", gpu, decoder_threads=0, cpus=8) == 1  # GPUs batch instead
    assert resolve_asr_lanes(3, "ctranslate2", cpu, decoder_threads=1, cpus=2) == 3
    assert resolve_asr_lanes(0, "transformers", cpu, decoder_threads=1, cpus=2) == 1
    with pytest.raises(DeviceError, match="needs the ctranslate2 or hybrid engine"):
        resolve_asr_lanes(2, "transformers", cpu, decoder_threads=1, cpus=2)
