import json

import pytest
from cards import example_card

from emseg_lite.runtime.core.card import SCHEMA_VERSION, ModelCard
from emseg_lite.runtime.core.errors import ModelError


def test_card_round_trips_through_json(tmp_path):
    card = example_card()
    card.save(tmp_path / "m.json")
    assert ModelCard.load(tmp_path / "m.json") == card


def test_card_reports_every_problem_at_once(tmp_path):
    data = example_card().to_dict()
    data["surprise"] = 1
    del data["tiling"]["halo"]
    data["threshold_typo"] = 0.5
    data["input"]["shape"] = "64x64"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ModelError) as info:
        ModelCard.load(tmp_path / "bad.json")
    message = str(info.value)
    assert str(tmp_path / "bad.json") in message and "\n" not in message
    for problem in ("unknown key surprise", "unknown key threshold_typo", "missing key tiling.halo",
                    "input.shape must be a list"):
        assert problem in message


def test_card_refuses_other_schema_versions(tmp_path):
    data = example_card().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ModelError, match="schema_version"):
        ModelCard.from_dict(data, "x.json")


def test_card_refuses_unknown_variant():
    with pytest.raises(ModelError, match="variant 'int4'"):
        ModelCard.from_dict(example_card(variant="int4").to_dict())


def test_corrupt_card_is_one_line_error(tmp_path):
    (tmp_path / "m.json").write_text('{"variant": "int8",')
    with pytest.raises(ModelError, match=r"m.json: model card is not valid JSON \(line 1"):
        ModelCard.load(tmp_path / "m.json")


def test_missing_card_is_reported(tmp_path):
    with pytest.raises(ModelError, match="model card not found"):
        ModelCard.load(tmp_path / "absent.json")


def test_card_detects_a_different_model_file(tmp_path):
    model = tmp_path / "emseg-int8.tflite"
    model.write_bytes(b"x" * 1234)
    with pytest.raises(ModelError, match="does not match its card"):
        example_card().check_model_file(model)
