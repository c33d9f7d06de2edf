"""uv's static binaries out of its musl wheel on PyPI: the exact version and
hash /tmp/requirements.txt pins (pip's hash-checking mode), written to
/out/uv and /out/uvx. Run by the uv recipes' first stage."""

import glob
import os
import subprocess
import zipfile

subprocess.run(
    ["python3", "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
     "--platform", "musllinux_1_1_x86_64", "--require-hashes", "-r", "/tmp/requirements.txt",
     "-d", "/tmp/wheel"],
    check=True,
)
[wheel] = glob.glob("/tmp/wheel/uv-*.whl")
os.makedirs("/out")
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if ".data/scripts/" in name:
            path = os.path.join("/out", os.path.basename(name))
            with open(path, "wb") as f:
                f.write(z.read(name))
            os.chmod(path, 0o755)
