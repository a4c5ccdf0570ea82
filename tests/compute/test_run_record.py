"""The run record (compute.runs.RunRecord): typed, cast when read, and a digest that survives new fields.

The digests below were computed by the code of commit eea5a0a (before the record was typed); the records are
exactly what that code saved in a checkpoint. If one of them changes, every study trained before retrains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from compute import identity, quantize, runs
from compute.__main__ import build_parser
from compute.runs import RunRecord
from compute.study_file import DerivedPlan, Study
from compute.train import Schedule

SCHEDULE = {"batch_size": 64, "crop_padding": 2, "epochs": 2, "flip": False, "lr": 0.05, "momentum": 0.9,
            "weight_decay": 0.0005}
# (record as eea5a0a saved it, its digest then): a dense run, an ltr run that rewinds to it, an nm run whose
# study wrote `lr = 1` and `weight_decay = 0` (ints in float fields), and that nm model quantized.
DENSE = ({"arch": "small_cnn", "base": None, "dataset": "digits", "method": "dense", "options": {}, "rewind_step": 7,
          "schedule": SCHEDULE, "seed": 0, "sparsity": 0.0}, "4b695b0de821")
LTR = ({"arch": "small_cnn", "base": "4b695b0de821", "dataset": "digits", "method": "ltr", "options": {"rounds": 2},
        "rewind_step": 7, "schedule": {**SCHEDULE, "epochs": 1, "lr": 0.01}, "seed": 1, "sparsity": 0.9},
       "2c7314ef9f09")
NM = ({"arch": "small_cnn", "base": "4b695b0de821", "dataset": "digits", "method": "nm", "options": {"pattern": "2:4"},
       "rewind_step": None, "schedule": {**SCHEDULE, "epochs": 10, "lr": 1, "weight_decay": 0}, "seed": 0,
       "sparsity": 0.5}, "b0aa4bfc4080")
INT8 = ({"arch": "small_cnn", "base": "b0aa4bfc4080", "dataset": "digits", "method": "nm+int8",
         "options": {"backend": "x86", "calibration": 512}, "rewind_step": None, "schedule": {}, "seed": 0,
         "sparsity": 0.5}, "53bff6a20ad4")
SAVED = [DENSE, LTR, NM, INT8]


@pytest.mark.parametrize(("saved", "digest"), SAVED)
def test_a_record_saved_before_the_typed_record_keeps_its_digest(saved, digest) -> None:
    record = RunRecord.from_dict(saved)
    assert record.digest == digest
    assert record.base_digest == saved["base"], "the old name `base` is read as base_digest"
    assert RunRecord.from_dict(record.to_dict()) == record and "base_digest" in record.to_dict()


def test_the_current_code_builds_the_records_of_saved_checkpoints_and_finds_them(tmp_path) -> None:
    """The same runs built now (by the study file and the record builders) name the checkpoints saved then,
    so an existing study keeps every checkpoint."""
    study = Study(arch="small_cnn", dataset="digits", methods=(), dense={"epochs": 2})
    dense = study.dense_record(0, 7)
    ltr = runs.pruned_run("small_cnn", "digits", "ltr", 0.9, 1, {**runs.FINETUNE, "epochs": 1}, {"rounds": 2},
                          dense.digest, 7)
    nm = runs.pruned_run("small_cnn", "digits", "nm", 0.5, 0, {"lr": 1, "weight_decay": 0}, {"pattern": "2:4"},
                         dense.digest, 7)
    meta = {"arch": "small_cnn", "dataset": "digits", "hparams": {"model_id": "small_cnn-nm-50-s0", "run": nm.to_dict()}}
    int8 = runs.quantized_run(meta, "int8", {"calibration": quantize.CALIBRATION, "backend": "x86"}, nm.digest)
    assert [r.digest for r in (dense, ltr, nm, int8)] == [digest for _, digest in SAVED]
    saved = tmp_path / f"small_cnn-dense-s0.{DENSE[1]}.pt"
    saved.write_bytes(b"")
    path = identity.checkpoint_path(tmp_path, identity.model_id("small_cnn", "dense", 0.0, 0), dense)
    assert path == saved and path.exists() and identity.superseded(path) == []


@dataclasses.dataclass(frozen=True)
class LaterSchedule(Schedule):
    """The schedule with a field added later, with a default."""

    warmup_epochs: int = 0


@dataclasses.dataclass(frozen=True)
class LaterRecord(RunRecord):
    """The record with a field added later, with a default."""

    scope: str = "global"


@pytest.mark.parametrize(("saved", "digest"), SAVED)
def test_a_field_added_with_a_default_keeps_every_digest(saved, digest) -> None:
    later = LaterRecord.from_dict(saved)
    assert later.scope == "global" and later.digest == digest
    if later.schedule is not None:
        widened = dataclasses.replace(later, schedule=LaterSchedule(**dataclasses.asdict(later.schedule)))
        assert widened.digest == digest
        assert dataclasses.replace(widened, schedule=dataclasses.replace(widened.schedule, warmup_epochs=1)).digest != digest
    assert dataclasses.replace(later, scope="layer").digest != digest, "a value other than the default is hashed"


def test_every_field_of_the_first_format_is_hashed_even_at_its_default() -> None:
    """A changed Schedule default changes the record: a checkpoint is never reused for another schedule."""
    record = RunRecord.from_dict(DENSE[0])
    assert record.hashed()["schedule"] == SCHEDULE and record.hashed()["base"] is None
    assert set(record.hashed()) == runs.FIRST_FORMAT[RunRecord] - {"base_digest"} | {"base"}


def test_from_dict_casts_values_to_the_field_types() -> None:
    raw = {**NM[0], "seed": 0.0, "schedule": {**NM[0]["schedule"], "epochs": 10.0}}
    record = RunRecord.from_dict(raw)
    assert type(record.seed) is int and type(record.schedule.epochs) is int and record.digest == NM[1]
    assert isinstance(record.schedule, Schedule) and record.config.epochs == 10
    assert RunRecord.from_dict(INT8[0]).schedule is None, "an empty schedule: a run that trains nothing"
    with pytest.raises(TypeError):
        record.options["pattern"] = "1:4"  # frozen, as the record


@pytest.mark.parametrize(("change", "message"), [
    ({"train": {}}, "unknown key 'train'"),
    ({"sparsity": "high"}, "sparsity must be float, got 'high'"),
    ({"seed": 0.5}, "seed must be int"),
    ({"arch": None}, "arch must be str"),
    ({"schedule": {**SCHEDULE, "warmup": 1}}, r"unknown schedule keys \['warmup'\]"),
    ({"schedule": {**SCHEDULE, "flip": 1}}, "schedule.flip must be bool"),
    ({"options": {"pattern": ["2:4"]}}, "options.pattern must be a name with a number, string or boolean"),
    ({"options": {"rounds": 2}}, r"unknown options \['rounds'\] for method 'nm'"),
    ({"base_digest": "abc"}, "both 'base' and 'base_digest'"),
])
def test_from_dict_names_the_key_that_does_not_fit(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        RunRecord.from_dict({**NM[0], **change})


def test_from_dict_names_a_missing_key() -> None:
    with pytest.raises(ValueError, match=r"missing keys \['schedule'\]"):
        RunRecord.from_dict({key: value for key, value in NM[0].items() if key != "schedule"})


def test_model_ids_follow_one_rule() -> None:
    assert identity.model_id("small_cnn", "ft", 0.975, 0) == "small_cnn-ft-97.5-s0"
    assert identity.model_id("small_cnn", "dense", 0.0, 2) == identity.tagged_id("small_cnn", "dense", 2)
    study = Study(arch="small_cnn", dataset="digits", methods=())
    assert study.derived_ids(DerivedPlan("ft-90", "quantize", "int8"), 3) == (
        identity.model_id("small_cnn", "ft", 0.9, 3), "small_cnn-ft-90-int8-s3")


def test_the_calibration_default_is_written_once() -> None:
    assert DerivedPlan("dense", "quantize", "int8").calibration == quantize.CALIBRATION
    given = build_parser().parse_args(["quantize", "--base", "b.pt", "--out", str(Path("q.pt"))])
    assert given.calibration == quantize.CALIBRATION
