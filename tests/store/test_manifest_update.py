"""One manifest updater (lock, read, change, atomic write) for every change of manifest.json, a writer that
reads the manifest only when a setting is new to it, and every table read through the bounded reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from store import layout, provenance, reader, writer
from store.verify import verify
from testkit import synthetic

SMALL = {"num_models": 3, "num_samples": 20, "corruptions": ("fog",), "severities": (1,)}


def _columns(num_samples: int) -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, num_samples)
    return synthetic.prediction_columns(rng, labels, 10, 0.9, *synthetic.classifier(rng, 10))


def test_writing_many_partitions_reads_the_manifest_only_when_a_setting_is_new(synthetic_store, pristine_copy,
                                                                               monkeypatch) -> None:
    store = pristine_copy(synthetic_store(**SMALL))
    reads = []
    real = reader.read_manifest
    monkeypatch.setattr(reader, "read_manifest", lambda root, **kw: reads.append(root) or real(root, **kw))
    columns = _columns(20)
    for index in range(12):  # twelve partitions of a setting the manifest lists: read once, when first seen
        synthetic.write_partition(store, f"extra{index}", "fog", 1, columns)
    assert len(reads) == 1, "a listed setting is published without reading the manifest again"
    for index in range(12):  # a new setting: listed once (one read), then no further reads
        synthetic.write_partition(store, f"extra{index}", "snow", 4, columns)
    assert len(reads) == 2
    manifest = real(store)
    assert "snow" in manifest["corruptions"] and 4 in manifest["severities"]
    writer.write_json(store, {**manifest, "note": "changed by another writer"}, store / layout.MANIFEST)
    synthetic.write_partition(store, "extra0", "snow", 4, columns)  # the file changed: read it once more
    assert len(reads) == 3 and verify(store, ("predictions",)) == []


def test_the_manifest_lists_a_new_setting_before_its_partition_is_published(synthetic_store, pristine_copy,
                                                                            monkeypatch) -> None:
    store = pristine_copy(synthetic_store(**SMALL))
    listed = {}
    real = writer._publish

    def publish(tmp, final):
        if final.name == "part-0.parquet":
            listed[final.parent.parent.name] = reader.read_manifest(store)["corruptions"]
        real(tmp, final)

    monkeypatch.setattr(writer, "_publish", publish)
    synthetic.write_partition(store, "extra", "frost", 2, _columns(20))
    synthetic.write_partition(store, "extra", "fog", 1, _columns(20))
    assert "frost" in listed["corruption=frost"] and "fog" in listed["corruption=fog"]


def test_every_manifest_change_goes_through_one_updater(synthetic_store, pristine_copy) -> None:
    store = pristine_copy(synthetic_store(**SMALL))
    with writer.manifest_update(store) as manifest:  # no change: the file is not rewritten
        before = (store / layout.MANIFEST).stat().st_ino
    assert (store / layout.MANIFEST).stat().st_ino == before
    with pytest.raises(RuntimeError), writer.manifest_update(store) as manifest:  # a failed change writes nothing
        manifest["dataset"] = "half-changed"
        raise RuntimeError
    assert reader.read_manifest(store)["dataset"] == "synthetic"
    with writer.manifest_update(store) as manifest, writer.locked(store):  # the lock nests in one thread
        manifest["note"] = "kept"
    assert reader.read_manifest(store)["note"] == "kept"
    assert provenance.record_training(store, {"m00-dense-0": "abc"}) == ["m00-dense-0"]  # held under no digest
    assert reader.read_manifest(store)[provenance.TRAINING_KEY] == {"m00-dense-0": "abc"}
    before = (store / layout.MANIFEST).stat().st_ino
    assert provenance.record_training(store, {"m00-dense-0": "abc"}) == []  # the same digest: nothing written
    assert (store / layout.MANIFEST).stat().st_ino == before




def test_every_table_read_goes_through_the_bounded_reader() -> None:
    for module in ("store/writer.py", "store/provenance.py", "compute/commands/extract.py",
                   "compute/commands/migrate.py"):
        assert "pq.read_table" not in (Path(__file__).parents[2] / module).read_text(), module
