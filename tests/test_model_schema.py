"""The model-directory schema (pipelines/model_schema.py) passes every directory seqmamba
has written, earlier versions' included; what it refuses is in the bad-input corpus."""

from pathlib import Path

import pytest

from pipelines.errors import InputError
from pipelines.model_schema import check_model_dir
from seqmamba import MambaForSequenceClassification, MambaLMHeadModel

from dna_helpers import tiny_classifier, tiny_lm

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("d, cls", [
    (DATA / "legacy" / "dna_lm", MambaLMHeadModel),
    (DATA / "legacy" / "audio_classifier", MambaForSequenceClassification),
    (DATA / "current" / "dna_classifier", MambaForSequenceClassification),
    (DATA / "current" / "audio_classifier", MambaForSequenceClassification),
])
def test_directories_written_by_earlier_and_current_versions_pass_and_load(d, cls):
    check_model_dir(d)
    model = cls.from_pretrained(d)
    if "labels" in model.config.extra:
        assert len(model.config.extra["labels"]) == model.config.num_labels


def test_fresh_directories_of_every_kind_pass(tmp_path):
    from seqmamba import MambaConfig

    check_model_dir(tiny_classifier(tmp_path / "c") / "final")
    check_model_dir(tiny_lm(tmp_path / "l") / "final")
    MambaLMHeadModel(MambaConfig(arch="transformer", d_model=16, n_layer=1, vocab_size=12,
                                 extra={"task": "dna-lm"})).save_pretrained(tmp_path / "t")
    check_model_dir(tmp_path / "t")


def test_a_foreign_config_is_left_to_its_importer(tmp_path):
    (tmp_path / "config.json").write_text('{"d_model": 64, "n_layer": 2, "vocab_size": 16}')
    check_model_dir(tmp_path)  # mamba-ssm's layout: no model_type; its importer checks it
    (tmp_path / "config.json").write_text('[1]')
    with pytest.raises(InputError, match="JSON object"):
        check_model_dir(tmp_path)
