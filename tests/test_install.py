"""The base install is the slim runtime: a fresh virtualenv without TensorFlow segments a real slice."""
import subprocess
import sys

import numpy as np
from conftest import REPO
from PIL import Image


def test_fresh_base_install_segments_without_tensorflow(tmp_path, test_slice):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(REPO)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('tensorflow'), "
                            "u.find_spec('scipy'))"], capture_output=True, text=True)
    assert probe.stdout.strip() == "None None", "the base install must pull in neither TensorFlow nor scipy"

    info = subprocess.run([str(venv / "bin" / "emseg-lite"), "info"], capture_output=True, text=True)
    assert "watershed      compiled C" in info.stdout, info.stdout + info.stderr  # the C extension was built

    result = subprocess.run([str(venv / "bin" / "emseg-lite"), "segment", str(test_slice), "-o", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    mask = np.array(Image.open(tmp_path / "0_mask.png"))
    assert mask.shape == (512, 512) and set(np.unique(mask)) == {0, 255}

    code = ("import sys\nfrom emseg_lite.runtime import Segmenter\nfrom emseg_lite.runtime.formats.reader import read_slices\n"
            f"Segmenter.load().segment(read_slices({str(test_slice)!r}).pages[0])\n"
            "assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
            "print('no tensorflow')")
    check = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert check.stdout.strip() == "no tensorflow", check.stderr[-1000:]
