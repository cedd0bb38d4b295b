"""Run the reference scripts (Wolfda95/Less_is_More, unmodified except the two paths of the export's
main()) on the LIDC-style tree of tests/ct/conftest.py::build_lidc_tree, with opencv-python-headless
4.5.5 (the reference's cv2), numpy 1.26, pydicom 2.4, imagehash 4.3; record what they wrote."""
import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import imagehash
import numpy as np
import PIL
import pydicom

REF = Path("/work/scratch/ct/Less_is_More")
spec = importlib.util.spec_from_file_location("ct_conftest", "/work/main/tests/ct/conftest.py")
mod = importlib.util.module_from_spec(spec)
sys.modules["pytest"] = type(sys)("pytest")  # conftest imports pytest only for fixtures
sys.modules["pytest"].fixture = lambda *a, **k: (lambda f: f) if not a or not callable(a[0]) else a[0]
sys.modules["pytest"].TempPathFactory = object
spec.loader.exec_module(mod)

work = Path(tempfile.mkdtemp(prefix="ctfix-"))
root = mod.build_lidc_tree(work / "LIDC-IDRI")
flat = work / "png"
flat.mkdir()
src = (REF / "PreTrain-Data_Preprocessing/LIDC_3DDICOM_to_2Dpng.py").read_text()
src = src.replace('"/path/to/LIDC/manifest-1600709154662/LIDC-IDRI"', repr(str(root)))
src = src.replace('"/folder/where/the/data/should/be/saved"', repr(str(flat)))
exec(compile(src, "LIDC_3DDICOM_to_2Dpng.py", "exec"), {"__name__": "__main__"})  # noqa: S102 - runs the reference
names = sorted(p.name for p in flat.iterdir())
pixels = {}
for n in names:
    a = cv2.imread(str(flat / n), cv2.IMREAD_UNCHANGED)
    pixels[n] = {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                 "sum": int(a.astype(np.int64).sum())}
n_vol = len({n.rsplit("_", 1)[0] for n in names})
# The published Hash_LIDC_Volume.py declares --Number_of_volumes / --Number_of_Images with type=float, so
# range(1, vol + 1) raises TypeError whenever they are passed on the command line (only the LIDC defaults,
# given as ints, run). The one change made to run it here: those two arguments parsed as int.
hsrc = (REF / "PreTrain-Data_Reduction/Hash_LIDC_Volume.py").read_text()
hsrc = hsrc.replace('default=1010, type=float', 'default=1010, type=int').replace('default=243958, type=float', 'default=243958, type=int')
assert hsrc.count("type=int") == 2
hash_script = work / "Hash_LIDC_Volume_int_args.py"
hash_script.write_text(hsrc)
kept = {}
for k in (0, 2, 6, 10, 20):
    out = work / f"kept{k}"
    out.mkdir()
    subprocess.run([sys.executable, str(hash_script), "--images_folder", str(flat),
                    "--save_folder", str(out), "--boarder", str(k), "--Number_of_volumes", str(n_vol),
                    "--Number_of_Images", str(len(names))], check=True, capture_output=True)
    kept[str(k)] = sorted(p.name for p in out.iterdir())
res = {"made_with": {"cv2": cv2.__version__, "numpy": np.__version__, "pydicom": pydicom.__version__,
                     "imagehash": imagehash.__version__, "pillow": PIL.__version__,
                     "scripts": ["PreTrain-Data_Preprocessing/LIDC_3DDICOM_to_2Dpng.py",
                                 "PreTrain-Data_Reduction/Hash_LIDC_Volume.py (--Number_of_volumes / --Number_of_Images parsed as int)"],
                     "reference_commit": subprocess.run(["git", "--git-dir=/work/.mirror/Wolfda95+Less_is_More/repo", "rev-parse", "HEAD"],
                                                        capture_output=True, text=True, check=True).stdout.strip()},
       "exported": names, "pixels": pixels, "kept": kept}
with open(sys.argv[1], "w") as fh:
    json.dump(res, fh, indent=1)
print(len(names), {k: len(v) for k, v in kept.items()})
