"""The patch files of each patient of a folder, as histocnn's scan reads them (for the bench scripts)."""
import collections
import os
import sys

import histocnn


def patient_patches(data, limit=None):
    """{patient: [patch file, ...]} for the first `limit` patients by id, each list sorted; a folder
    without patches ends the script with the library's message, which names what it found."""
    try:
        manifest = histocnn.data.scan_directory(str(data)).manifest
    except RuntimeError as e:
        sys.exit(str(e))
    files = collections.defaultdict(list)
    for row in manifest.rows:
        files[row.patient].append(os.path.join(manifest.root, row.path))
    return {patient: sorted(files[patient]) for patient in sorted(files)[:limit]}
