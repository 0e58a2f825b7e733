"""A label import beside the engine's results: both kept, each with its own label map, the engine preferred."""

from __future__ import annotations

import numpy as np

from engine.interop.importer import import_labels
from engine.interop.mapping import default_mapping
from store.home import home as make_home
from store.reader import Reader
from store.writer import Writer
from tests.engine.interop.conftest import SHAPE, femora, write_nifti
from tests.store.conftest import metric_rows

EID = 1234567


def test_a_label_import_after_the_engine_keeps_both_sources(tmp_path):
    home = make_home(tmp_path / "home")
    engine_labels = tmp_path / "engine_labels.nrrd"
    engine_labels.write_bytes(b"x")
    with Writer(home) as w:
        w.commit_subject(EID, metric_rows(EID), [{"kind": "labels", "path": str(engine_labels), "sha256": "e"}],
                         {"kind": "engine", "input_sha256": "pkg"})
    data = np.zeros(SHAPE, np.int16)
    femora(data, 6171, 6172)
    labels = write_nifti(tmp_path / f"{EID}_musclemap.nii.gz", data)
    (sub,) = import_labels([labels], "musclemap", default_mapping("musclemap"), home=home)
    assert sub.error is None, sub.error
    with Reader(home) as r:
        sources = r.metric_sources()[["source", "source_kind"]].to_dict("records")
        arts = r.artifacts(EID)
        wide = r.participants(columns=["eid", "metric_source", "metric_source_kind"]).to_dict("records")
    assert sources == [{"source": "msmv", "source_kind": "engine"},
                       {"source": "musclemap", "source_kind": "label-import"}]
    labels_by_source = dict(arts.loc[arts["kind"] == "labels", ["source", "path"]].itertuples(index=False))
    assert labels_by_source["msmv"] == str(engine_labels)
    assert labels_by_source["musclemap"].endswith("labels.nrrd") and labels_by_source["musclemap"] != str(engine_labels)
    assert wide == [{"eid": EID, "metric_source": "msmv", "metric_source_kind": "engine"}]
