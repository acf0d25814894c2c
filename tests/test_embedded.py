"""Every model shipped inside the package reproduces, on the LiteRT installed here, the
validation figures its card recorded at export. `make check-litert-min` runs this on the
oldest ai-edge-litert that pyproject.toml allows."""
import pytest

from emseg_lite.runtime.engine import registry
from emseg_lite.runtime.pipelines.datasets import load_labeled, locate
from emseg_lite.runtime.pipelines.evaluate import evaluate_volume
from emseg_lite.runtime.pipelines.segmenter import Segmenter

V_RAND_TOLERANCE = 1e-3
"""Other LiteRT releases and CPUs round differently (float sums in another order); more than
this on five sections is a wrong result, not rounding."""


@pytest.mark.parametrize("variant", sorted(registry.embedded_models()))
def test_embedded_model_reproduces_its_card(variant, isbi):
    segmenter = Segmenter.load(variant, threads=2)
    card = segmenter.card
    volume = load_labeled(*locate(isbi)).select(card.training.val_sections)
    report = evaluate_volume(segmenter.probabilities, volume, card.postprocessing)
    recorded = card.validation["variant"]
    for method, scores in (("none", recorded.threshold), ("watershed", recorded.watershed)):
        measured = report.mean(method)
        assert measured.v_rand == pytest.approx(scores.v_rand, abs=V_RAND_TOLERANCE), method
        assert measured.v_info == pytest.approx(scores.v_info, abs=V_RAND_TOLERANCE), method
