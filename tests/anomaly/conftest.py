from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sitesight.synth.parts import make_parts  # noqa: E402

SIZE = 64


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """One torch thread while these tests run (on a shared 2-core machine two threads mostly wait on each
    other), restored afterwards for the rest of the session."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def parts_train():
    """40 normal 64x64 screws to fit on."""
    return make_parts(40, 0, seed=0, image_wh=(SIZE, SIZE))


@pytest.fixture(scope="session")
def parts_test():
    """40 normal and 40 defective screws (10 of each defect type), with masks."""
    return make_parts(40, 40, seed=1, image_wh=(SIZE, SIZE))


@pytest.fixture(scope="session")
def memory_detector(parts_train):
    from sitesight.models.anomaly.memory import MemoryConfig, fit_memory

    # Random-init ResNet-18 (no weights in tests): the 64 px parts upsampled to 96 px give layer1+layer2 a
    # 24x24 patch grid, fine enough for thin scratches.
    return fit_memory(list(parts_train.images), config=MemoryConfig(image_size=96, layers=(1, 2)), seed=0, device="cpu")


@pytest.fixture(scope="session")
def ae_detector(parts_train):
    from sitesight.models.anomaly.autoencoder import AutoencoderConfig, fit_autoencoder

    return fit_autoencoder(list(parts_train.images), config=AutoencoderConfig(image_size=64, base_channels=16), epochs=30, seed=0, device="cpu")
