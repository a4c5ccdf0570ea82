"""A store stays whole: a partition, its marker and the manifest entry listing its setting become visible
together, so a run stopped between any two of its atomic steps (a kill, a full disk) leaves a store that
`verify` calls clean, and the next run finishes it; a run that cannot work (more classes than the model
has outputs, an image too large to decode) is refused before its first write."""

from __future__ import annotations

import errno
import itertools
import struct
import zlib

import pytest

from store import writer
from store.verify import verify
from testkit.dataset_families import flat_image
from testkit.extraction import extract_args

LIMIT = "8"  # samples per setting: the fewest that still make every partition


class Killed(BaseException):
    """Stands for SIGKILL between two atomic steps: nothing after it runs, no handler sees it."""


@pytest.fixture(scope="module")
def base(tmp_path_factory, checkpoints, cli):
    """A store holding fog/1 of one model."""
    store = tmp_path_factory.mktemp("whole") / "store"
    ran = cli(*extract_args(store, checkpoints[:1], "--limit", LIMIT, "--corruptions", "fog", "--severities", "1"))
    assert ran.returncode == 0, ran.stderr
    return store


def add_settings(store, checkpoints, cli):
    """Extract two new severities of fog and a new corruption into `store`."""
    return cli(*extract_args(store, checkpoints[:1], "--limit", LIMIT, "--corruptions", "fog", "contrast",
                             "--severities", "1,2"))


@pytest.mark.slow  # one extraction per step of the run (about 15)
def test_a_new_setting_killed_at_every_step_leaves_a_store_verify_calls_clean(base, checkpoints, cli, monkeypatch,
                                                                            pristine_copy) -> None:
    real = writer._publish
    for step in itertools.count():
        store = pristine_copy(base)
        published = itertools.count()

        def publish(tmp, final, published=published, step=step):
            if next(published) == step:
                raise Killed
            real(tmp, final)

        monkeypatch.setattr(writer, "_publish", publish)
        try:
            ran = add_settings(store, checkpoints, cli)
        except Killed:
            ran = None
        monkeypatch.setattr(writer, "_publish", real)
        assert verify(store) == [], (step, [str(p) for p in verify(store)])
        if ran is not None:  # the run got through every step: the last kill was at its last step
            assert ran.returncode == 0, ran.stderr
            break
    assert step > 6, "the run had fewer steps than a new setting takes"
    killed = pristine_copy(base)

    def publish_until_severity_2(tmp, final):
        if "severity=2" in str(final):
            raise Killed
        real(tmp, final)

    monkeypatch.setattr(writer, "_publish", publish_until_severity_2)
    with pytest.raises(Killed):
        add_settings(killed, checkpoints, cli)
    monkeypatch.setattr(writer, "_publish", real)
    assert add_settings(killed, checkpoints, cli).returncode == 0  # the next run finishes it
    assert verify(killed) == []


def test_a_full_disk_while_adding_a_setting_leaves_a_store_verify_calls_clean(base, checkpoints, cli, monkeypatch,
                                                                             pristine_copy) -> None:
    store = pristine_copy(base)
    real = writer.pq.write_table

    def full(table, where, **options):  # the disk fills when the first new partition is written
        if str(where).endswith("part-0.parquet"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **options)

    monkeypatch.setattr(writer.pq, "write_table", full)
    ran = add_settings(store, checkpoints, cli)
    assert ran.returncode == 2 and ran.stderr.strip().splitlines()[-1].startswith("error: "), ran.stderr
    assert "no space left" in ran.stderr and "Traceback" not in ran.stderr
    assert verify(store) == [], [str(p) for p in verify(store)]
    assert not list((store / writer.TMP).iterdir())  # the failed file's temporary copy is gone


def header_only_png(path, width: int, height: int):
    """A PNG whose header declares width x height (its data is a few bytes): what PIL reads before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def folder(tmp_path):
    """An image folder of 10 classes, one 40 x 40 image each (the small_cnn checkpoints have 10 outputs)."""
    for number in range(10):
        flat_image(tmp_path / "folder" / f"class{number:02d}" / "a.png", number, (40, 40))
    return tmp_path / "folder"


def extract_folder(cli, store, folder, checkpoints):
    return cli("extract", "--store", store, "--checkpoints", checkpoints[0], "--dataset", "imagefolder",
               "--data-dir", folder, "--image-size", "32", "--corruptions", "fog", "--severities", "1",
               "--device", "cpu")


@pytest.mark.parametrize("case", ["an 11th class", "a 400-megapixel PNG"])
def test_extraction_refuses_what_it_cannot_run_with_one_error_line_leaving_nothing(folder, checkpoints, cli,
                                                                                 tmp_path, case) -> None:
    if case == "an 11th class":
        flat_image(folder / "class10" / "a.png", 10, (40, 40))
        expected = "model small0 has 10 outputs, but dataset imagefolder has 11 classes (no output for class10)"
    else:
        header_only_png(folder / "class03" / "huge.png", 20_000, 20_000)
        expected = f"cannot read image {folder / 'class03' / 'huge.png'}: Image size (400000000 pixels)"
    store = tmp_path / "store"
    ran = extract_folder(cli, store, folder, checkpoints)
    assert ran.returncode == 2 and ran.stderr.strip().splitlines() == [ran.stderr.strip().splitlines()[-1]]
    assert ran.stderr.startswith(f"error: {expected}"), ran.stderr
    assert not store.exists()


def test_an_image_just_over_pils_limit_is_refused_from_its_header(folder, checkpoints, cli, tmp_path,
                                                                  monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40 * 2)  # between the limit and twice it PIL only warns
    header_only_png(folder / "class03" / "big.png", 80, 70)
    ran = extract_folder(cli, tmp_path / "store", folder, checkpoints)
    assert ran.returncode == 2 and "is 80 x 70 pixels, more than 3200 (PIL's MAX_IMAGE_PIXELS)" in ran.stderr
    assert not (tmp_path / "store").exists()
