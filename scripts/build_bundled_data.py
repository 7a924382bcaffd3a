#!/usr/bin/env python
"""Rebuild the bundled photographs (``data/photos``) and ``data/manifest.csv`` from their sources.

Provenance only: users never need to run this (the result is committed). It reads photographs
that ship inside installable packages:

* scikit-image (``skimage/data``): astronaut, chelsea, coffee, rocket, hubble_deep_field,
  motorcycle_left (its stereo partner motorcycle_right is left out, see below);
* scikit-learn (``sklearn/datasets/images``): china, flower -- read from the wheel, which is
  downloaded with ``pip download`` when scikit-learn is not importable (it is *not* a project
  dependency);
* matplotlib (``mpl-data/sample_data``): grace_hopper;
* Debian ``lomiri-wallpapers-16.04``: the photographs in ``/usr/share/backgrounds``;
* Debian ``opencv-doc``: photographs in ``/usr/share/doc/opencv-doc/examples/data``.

Missing Debian files are fetched with ``apt-get download`` + ``dpkg -x`` into a temporary
folder (needs apt; run ``apt-get update`` first if the package lists are empty).

Split (deterministic, by source photo): every photo of the small/medium packages becomes one
256 x 256 **test** image (shortest side resized to 256 with MATLAB bicubic, centre crop --
exactly what :func:`ctlib.data.build_test_set` does to ImageNet images); every multi-megapixel
wallpaper becomes **training** crops (halved with MATLAB bicubic when its short side is at least
2000 px, then up to ``--crops-per-photo`` non-overlapping 512 x 512 crops on a centred grid,
the most detailed first). No photo feeds both splits; second views of the same scene (stereo
pairs, image pairs) are left out altogether.

Formats: test images PNG (lossless); training crops JPEG quality 95 with 4:4:4 chroma (see
data/README.md for the measured loss and the reason).

Usage::

    python scripts/build_bundled_data.py                 # writes data/photos + data/manifest.csv
    python scripts/build_bundled_data.py --out /tmp/x    # somewhere else
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ctlib.data.datasets import resize_short_side_center_crop
from ctlib.data.imresize import imresize
from ctlib.data.io import read_image, to_uint8
from ctlib.files import REPO_ROOT, file_sha256

TEST_SIZE = 256
CROP = 512
HALVE_AT = 2000  # short side (px) from which a training photo is halved before cropping

LOMIRI_DIR = Path("/usr/share/backgrounds")
OPENCV_DIR = Path("/usr/share/doc/opencv-doc/examples/data")

OPENCV_LICENCE = "Apache-2.0 AND BSD-3-Clause"
OPENCV_ATTR = "OpenCV contributors (opencv samples/data; Debian copyright 'Files: *')"
MIDDLEBURY = "Middlebury stereo/flow data: permission to use and publish, citation requested"


@dataclass(frozen=True)
class Source:
    key: str  # short name used in file names
    package: str  # skimage | sklearn | matplotlib | lomiri-wallpapers-16.04 | opencv-doc
    original: str  # file name inside the package
    licence: str
    attribution: str
    url: str = ""
    notes: str = ""
    group: str = ""  # the scene; defaults to package:key

    @property
    def scene(self) -> str:
        return self.group or f"{self.package}:{self.key}"


TEST_SOURCES: list[Source] = [
    Source("astronaut", "skimage", "astronaut.png", "Public domain", "NASA (Eileen Collins)",
           "https://flic.kr/p/r9qvLn", "scikit-image docstring: no known copyright restrictions"),
    Source("chelsea", "skimage", "chelsea.png", "CC0-1.0", "Stefan van der Walt"),
    Source("coffee", "skimage", "coffee.png", "CC0-1.0", "Rachel Michetti (courtesy of Pikolo Espresso Bar)"),
    Source("rocket", "skimage", "rocket.jpg", "Public domain", "SpaceX (DSCOVR launch on Falcon 9)",
           "https://www.flickr.com/photos/spacexphotos/16511594820/"),
    Source("hubble", "skimage", "hubble_deep_field.jpg", "Public domain", "NASA / HubbleSite (eXtreme Deep Field)",
           "http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/"),
    Source("motorcycle", "skimage", "motorcycle_left.png", MIDDLEBURY,
           "D. Scharstein et al., Middlebury 2014 stereo datasets (GCPR 2014)",
           "https://vision.middlebury.edu/stereo/data/scenes2014/",
           "downsampled x4 by scikit-image", group="skimage:motorcycle"),
    Source("china", "sklearn", "china.jpg", "CC-BY-2.0", "danielbuechele (Flickr)",
           "https://www.flickr.com/photos/danielbuechele/6061409035/"),
    Source("flower", "sklearn", "flower.jpg", "CC-BY-2.0", "vultilion (Flickr)",
           "https://www.flickr.com/photos/vultilion/6056698931/",
           "scikit-learn's README names danielbuechele in the attribution line but links vultilion's photo"),
    Source("grace_hopper", "matplotlib", "grace_hopper.jpg", "Public domain",
           "U.S. Navy photograph (work of the U.S. federal government)"),
    Source("apple", "opencv-doc", "apple.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("orange", "opencv-doc", "orange.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("fruits", "opencv-doc", "fruits.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("butterfly", "opencv-doc", "butterfly.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("building", "opencv-doc", "building.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("home", "opencv-doc", "home.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("squirrel", "opencv-doc", "squirrel_cls.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("chicky", "opencv-doc", "chicky_512.png", OPENCV_LICENCE, OPENCV_ATTR,
           notes="RGBA; alpha dropped"),
    Source("smarties", "opencv-doc", "smarties.png", OPENCV_LICENCE, OPENCV_ATTR),
    Source("board", "opencv-doc", "board.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("aloe", "opencv-doc", "aloeL.jpg", OPENCV_LICENCE, OPENCV_ATTR,
           notes="Middlebury 2006 stereo scene 'Aloe' (left view)", group="opencv-doc:aloe"),
    Source("rubberwhale", "opencv-doc", "rubberwhale1.png", OPENCV_LICENCE, OPENCV_ATTR,
           notes="Middlebury optical-flow scene 'RubberWhale' (frame 1)", group="opencv-doc:rubberwhale"),
    Source("leuven", "opencv-doc", "leuvenA.jpg", OPENCV_LICENCE, OPENCV_ATTR, group="opencv-doc:leuven"),
    Source("aero", "opencv-doc", "aero1.jpg", OPENCV_LICENCE, OPENCV_ATTR, group="opencv-doc:aero"),
    Source("notebook", "opencv-doc", "ela_original.jpg", OPENCV_LICENCE, OPENCV_ATTR, group="opencv-doc:ela"),
    Source("desk", "opencv-doc", "stuff.jpg", OPENCV_LICENCE, OPENCV_ATTR),
    Source("books", "opencv-doc", "left.jpg", OPENCV_LICENCE, OPENCV_ATTR,
           notes="left view of a stereo pair", group="opencv-doc:books"),
]

_LOMIRI = [
    ("bridge", "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "Sander Klootwijk, 2018"),
    ("dragonfly", "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", '"Bolly", 2018'),
    ("fig", "Picture_0B_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace", 2018'),
    ("brushes", "Picture_1A_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace", 2018'),
    ("wine", "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "Jakub Mede, 2018"),
    ("aitzgorri", "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("texture", "analogpattern_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich, 2018"),
    ("bird_lamp", "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich, 2018"),
    ("dogs", "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("clock", "greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich, 2018"),
    ("stream", "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("picos", "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
    ("dandelions", "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "Clemens Engelhardt, 2018"),
    ("sunset", "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi, 2018"),
]
TRAIN_SOURCES: list[Source] = [
    Source(k, "lomiri-wallpapers-16.04", f, lic, who, "https://gitlab.com/ubports/development/core/lomiri-wallpapers")
    for k, f, lic, who in _LOMIRI
]

#: Considered and left out, with the reason (written into data/README.md by hand).
EXCLUDED = {
    "skimage:motorcycle_right.png": "stereo partner of the test image 'motorcycle'",
    "lomiri:umang_by_Abhishek_Mudgal.jpg": "digital artwork, not a photograph",
    "opencv-doc:aloeR.jpg, rubberwhale2.png, leuvenB.jpg, aero3.jpg, right.jpg, ela_modified.jpg":
        "second views / edited copies of test scenes",
    "opencv-doc:baboon.jpg": "USC-SIPI 'Mandrill', copyright status unclear upstream",
    "opencv-doc:messi5.jpg": "press photograph of a person, provenance unclear",
    "opencv-doc:starry_night.jpg, graf1.png, graf3.png": "artwork",
    "opencv-doc: logos, text, charts, renders, synthetic or grayscale test patterns": "not photographs",
}


# ---------------------------------------------------------------------------------- sources


def _deb_root(package: str, probe: Path, tmp: Path) -> tuple[Path, str]:
    """Where the files of a Debian package are (installed, else downloaded + unpacked)."""
    if probe.exists():
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
        ).stdout.strip()
        return Path("/"), version or "installed"
    dest = tmp / package
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=dest, check=True)
    deb = next(dest.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(dest / "root")], check=True)
    return dest / "root", deb.name.split("_")[1]


def _sklearn_images(tmp: Path) -> tuple[Path, str]:
    try:
        import sklearn  # type: ignore[import-not-found]

        return Path(sklearn.__file__).parent / "datasets" / "images", sklearn.__version__
    except ImportError:
        pass
    dl = tmp / "sklearn"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "scikit-learn", "-d", str(dl)],
        check=True,
    )
    wheel = next(dl.glob("scikit_learn-*.whl"))
    out = dl / "images"
    out.mkdir()
    with zipfile.ZipFile(wheel) as z:
        for name in ("china.jpg", "flower.jpg", "README.txt"):
            (out / name).write_bytes(z.read(f"sklearn/datasets/images/{name}"))
    return out, wheel.name.split("-")[1]


def locate_sources(tmp: Path) -> dict[str, tuple[Path, str]]:
    """package name -> (folder holding its photos, package version)."""
    import matplotlib
    import skimage

    lomiri_root, lomiri_v = _deb_root("lomiri-wallpapers-16.04", LOMIRI_DIR / _LOMIRI[0][1], tmp)
    opencv_root, opencv_v = _deb_root("opencv-doc", OPENCV_DIR / "apple.jpg", tmp)
    return {
        "skimage": (Path(skimage.data.__file__).parent, f"scikit-image {skimage.__version__}"),
        "sklearn": (lambda d, v: (d, f"scikit-learn {v}"))(*_sklearn_images(tmp)),
        "matplotlib": (Path(matplotlib.get_data_path()) / "sample_data", f"matplotlib {matplotlib.__version__}"),
        "lomiri-wallpapers-16.04": (lomiri_root / LOMIRI_DIR.relative_to("/"), f"Debian {lomiri_v}"),
        "opencv-doc": (opencv_root / OPENCV_DIR.relative_to("/"), f"Debian {opencv_v}"),
    }


# ------------------------------------------------------------------------------- processing


def _to_tensor64(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float64).transpose(2, 0, 1)).contiguous()


def make_test_image(img: np.ndarray) -> tuple[np.ndarray, str]:
    """Shortest side -> 256 (MATLAB bicubic), centre crop 256 x 256; uint8 HWC.

    The same operation as ``ctlib.data.build_test_set`` applies to ImageNet photos.
    """
    h, w = img.shape[:2]
    t = resize_short_side_center_crop(_to_tensor64(img), TEST_SIZE)
    s = TEST_SIZE / min(h, w)
    nh, nw = (TEST_SIZE, max(TEST_SIZE, round(w * s))) if h <= w else (max(TEST_SIZE, round(h * s)), TEST_SIZE)
    how = (f"imresize {w}x{h}->{nw}x{nh} (MATLAB bicubic); centre crop x={(nw - TEST_SIZE) // 2} "
           f"y={(nh - TEST_SIZE) // 2} 256x256")
    return to_uint8(t.permute(1, 2, 0).numpy()), how


def _detail(crop: np.ndarray) -> float:
    """Mean absolute gradient of the luma: ranks crops by how much texture they hold."""
    y = crop[..., 0] * 0.299 + crop[..., 1] * 0.587 + crop[..., 2] * 0.114
    return float(np.abs(np.diff(y, axis=0)).mean() + np.abs(np.diff(y, axis=1)).mean())


def make_train_crops(img: np.ndarray, per_photo: int) -> list[tuple[np.ndarray, str]]:
    h, w = img.shape[:2]
    how = f"native {w}x{h}"
    if min(h, w) >= HALVE_AT:
        t = imresize(_to_tensor64(img), 0.5)
        img = t.permute(1, 2, 0).numpy()
        how = f"imresize x0.5 {w}x{h}->{img.shape[1]}x{img.shape[0]} (MATLAB bicubic)"
        h, w = img.shape[:2]
    ny, nx = h // CROP, w // CROP
    oy, ox = (h - ny * CROP) // 2, (w - nx * CROP) // 2
    cells = []
    for j in range(ny):
        for i in range(nx):
            y, x = oy + j * CROP, ox + i * CROP
            cells.append((y, x, _detail(img[y : y + CROP, x : x + CROP])))
    best = sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:per_photo]
    best.sort(key=lambda c: (c[0], c[1]))
    return [(to_uint8(img[y : y + CROP, x : x + CROP]), f"{how}; crop x={x} y={y} {CROP}x{CROP}") for y, x, _ in best]


def copy_licence_files(dest: Path, where: dict[str, tuple[Path, str]]) -> None:
    """Copy the licence texts the bundled photos need next to them (data/photos/LICENSES)."""
    import skimage

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    lomiri_doc = where["lomiri-wallpapers-16.04"][0].parent / "doc" / "lomiri-wallpapers-16.04" / "copyright"
    opencv_doc = where["opencv-doc"][0].parents[1] / "copyright"
    skimage_licence = next(Path(skimage.__file__).parents[1].glob("scikit_image-*.dist-info/LICENSE.txt"), None)
    pairs = {
        "lomiri-wallpapers-16.04.copyright": lomiri_doc,  # holds CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0 texts
        "opencv-doc.copyright": opencv_doc,  # holds the BSD-3-Clause text
        "Apache-2.0.txt": Path("/usr/share/common-licenses/Apache-2.0"),
        "scikit-learn-images-README.txt": where["sklearn"][0] / "README.txt",
        "scikit-image-LICENSE.txt": skimage_licence,
    }
    for name, src in pairs.items():
        if src is None or not src.is_file():
            print(f"warning: licence file for {name} not found ({src}); copy it by hand", file=sys.stderr)
            continue
        shutil.copyfile(src, dest / name)


# ------------------------------------------------------------------------------------ main

FIELDS = [
    "file", "split", "source_group", "source_package", "package_version", "original_name", "licence",
    "attribution", "source_url", "source_sha256", "width", "height", "processing", "notes", "sha256",
]


def build(out: Path, per_photo: int, jpeg_quality: int) -> list[dict[str, str]]:
    photos = out / "photos"
    for sub in ("test", "train"):
        if (photos / sub).exists():
            shutil.rmtree(photos / sub)
        (photos / sub).mkdir(parents=True)
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        where = locate_sources(Path(tmpdir))

        def common(src: Source, path: Path) -> dict[str, str]:
            folder, version = where[src.package]
            return {
                "split": "", "source_group": src.scene, "source_package": src.package,
                "package_version": version, "original_name": src.original, "licence": src.licence,
                "attribution": src.attribution, "source_url": src.url, "source_sha256": file_sha256(path),
                "notes": src.notes,
            }

        for i, src in enumerate(TEST_SOURCES):
            path = where[src.package][0] / src.original
            img, how = make_test_image(read_image(path))  # type: ignore[arg-type]
            name = f"test/{i:02d}_{src.key}.png"
            Image.fromarray(img).save(photos / name, format="PNG", compress_level=9)
            row = common(src, path) | {"file": f"photos/{name}", "split": "test", "processing": how}
            rows.append(row)
            print(f"test  {name}: {how}")
        for src in TRAIN_SOURCES:
            path = where[src.package][0] / src.original
            for k, (img, how) in enumerate(make_train_crops(read_image(path), per_photo)):  # type: ignore[arg-type]
                name = f"train/{src.key}_{k}.jpg"
                Image.fromarray(img).save(
                    photos / name, format="JPEG", quality=jpeg_quality, subsampling=0, optimize=True
                )
                with Image.open(photos / name) as im:
                    err = np.asarray(im, dtype=np.float64) - img
                psnr = 10 * np.log10(255.0**2 / max(float((err**2).mean()), 1e-12))
                how_q = f"{how}; JPEG q{jpeg_quality} 4:4:4 ({psnr:.1f} dB PSNR vs lossless)"
                row = common(src, path) | {"file": f"photos/{name}", "split": "train", "processing": how_q}
                rows.append(row)
                print(f"train {name}: {how_q}")
        copy_licence_files(photos / "LICENSES", where)
    for row in rows:
        f = out / row["file"]
        with Image.open(f) as im:
            row["width"], row["height"] = str(im.size[0]), str(im.size[1])
        row["sha256"] = file_sha256(f)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in FIELDS})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "data", help="data folder (default: the repo's data/)")
    ap.add_argument("--crops-per-photo", type=int, default=6)
    ap.add_argument("--jpeg-quality", type=int, default=95)
    args = ap.parse_args(argv)
    rows = build(args.out, args.crops_per_photo, args.jpeg_quality)
    total = sum((args.out / r["file"]).stat().st_size for r in rows)
    n_test = sum(r["split"] == "test" for r in rows)
    print(f"{n_test} test images, {len(rows) - n_test} training crops, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
