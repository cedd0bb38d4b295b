"""Readers on generated data (CSV and webdataset shards), the synthetic world, geocells, and one
test per class of bad input (a DataError naming the file; nothing half-written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pretrainlab.core.data import DataError
from pretrainlab.geo.formats import load_image, read_csv, read_split, read_webdataset


def test_generated_world_readers_agree(geo_data: Path) -> None:
    rec = read_split(geo_data, "train", "csv")
    wds = read_split(geo_data, "train", "wds")
    assert len(rec) == len(wds) == 240
    assert np.allclose(rec.latlon, wds.latlon, atol=1e-5)
    assert rec.meta[0]["country"] == wds.meta[0]["country"]
    assert {"climate", "drive_side", "month", "elevation", "temp_mean"} <= set(rec.meta[0])
    img = load_image(rec.images[0], 32)
    assert img.shape == (3, 32, 32) and str(img.dtype) == "torch.uint8"
    assert load_image(wds.images[0], 32).shape == (3, 32, 32)
    assert (np.abs(rec.latlon[:, 0]) <= 90).all() and (np.abs(rec.latlon[:, 1]) <= 180).all()


def test_world_cues_follow_tables() -> None:
    from pretrainlab.geo.world import country_cues

    assert country_cues("GB")["drive_side"] == "left" and country_cues("FR")["drive_side"] == "right"
    assert country_cues("US")["centre_line"] == "yellow" and country_cues("DE")["centre_line"] == "white"
    assert country_cues("US")["sign"] == "yellow_diamond" and country_cues("SE")["sign"] == "triangle_red_yellow"
    assert country_cues("RU")["script"] == "cyrillic" and country_cues("JP")["script"] == "japanese"


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


@pytest.fixture()
def csv_dir(tmp_path: Path, geo_data: Path) -> Path:
    (tmp_path / "images").mkdir()
    shutil.copy(geo_data / "images" / "train" / "train000000.jpg", tmp_path / "images" / "a.jpg")
    shutil.copy(geo_data / "images" / "train" / "train000001.jpg", tmp_path / "images" / "b.jpg")
    return tmp_path


def test_csv_column_variants(csv_dir: Path) -> None:
    # IM2GPS / YFCC style (IMG_ID, LAT, LON) and OSV-5M style (id without extension, latitude, longitude)
    r = read_csv(_write(csv_dir / "im2gps.csv", "IMG_ID,AUTHOR,LAT,LON\na.jpg,x,48.8,2.3\nb.jpg,y,-33.9,151.2\n"))
    assert r.latlon.shape == (2, 2) and r.meta[0]["author"] == "x"
    r = read_csv(_write(csv_dir / "osv.csv", "id,latitude,longitude,country,city\na,1.0,2.0,FR,Paris\n"))
    assert r.meta[0]["town"] == "Paris" and r.images[0].name == "a.jpg"


@pytest.mark.parametrize("text,problem", [
    ("image,lat,lon\na.jpg,95.0,2.0\n", "latitude 95.0 out of range"),
    ("image,lat,lon\na.jpg,10.0,-181\n", "longitude -181.0 out of range"),
    ("image,lat,lon\na.jpg,north,2.0\n", "not numeric"),
    ("image,lat,lon\na.jpg,nan,2.0\n", "not finite"),
    ("image,latitude\na.jpg,1.0\n", "missing column(s) lon/lng/longitude"),
    ("image,lat,lon\na.jpg,1,2\na.jpg,3,4\n", "duplicate id 'a.jpg'"),
    ("image,lat,lon\nmissing.jpg,1,2\n", "image 'missing.jpg' not found"),
    ("", "empty CSV"),
    ("image,lat,lon\n", "no rows"),
])
def test_bad_csv(csv_dir: Path, text: str, problem: str) -> None:
    path = _write(csv_dir / "bad.csv", text)
    with pytest.raises(DataError) as e:
        read_csv(path)
    assert problem in str(e.value) and str(path) in str(e.value)


def test_unreadable_image(csv_dir: Path) -> None:
    (csv_dir / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    rec = read_csv(_write(csv_dir / "x.csv", "image,lat,lon\nbroken.jpg,1,2\n"))
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        load_image(rec.images[0], 32)


def test_bad_shards(tmp_path: Path) -> None:
    import io
    import tarfile

    shard = tmp_path / "train-000000.tar"
    with tarfile.open(shard, "w") as tar:
        data = json.dumps({"lat": 12.0}).encode()
        info = tarfile.TarInfo("k1.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("k1.jpg")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(DataError, match="lacks lat / lon"):
        read_webdataset([shard])
    (tmp_path / "junk-000000.tar").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a readable tar shard"):
        read_webdataset([tmp_path / "junk-000000.tar"])
    with pytest.raises(DataError, match="no test.csv"):
        read_split(tmp_path, "test")


def test_generation_is_atomic(tmp_path: Path) -> None:
    from pretrainlab.core.data import generate_dataset

    def failing(out: Path, profile: str, seed: int) -> None:
        (out / "train.csv").write_text("image,lat,lon\n")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        generate_dataset(failing, tmp_path / "world", "smoke", 0)
    assert not (tmp_path / "world").exists()
