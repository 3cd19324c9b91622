"""Schema of the ``paths`` group. Machine-specific values come from environment variables or ``conf/local/``."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "paths"


@dataclass
class PathsConf:
    root: str = "${oc.env:GOL_ROOT,${gol.launch_dir:}}"  # GOL_ROOT, else the folder the command was typed in
    data_root: str = "${oc.env:GOL_DATA,${.root}/data}"  # generated data and caches
    lvis_root: str = "${oc.env:LVIS_ROOT,${.data_root}/lvis}"  # lvis_v1_train.json, lvis_v1_val.json, ...
    coco_root: str = "${oc.env:COCO_ROOT,${.data_root}/coco}"  # holds train2017/ and val2017/
    weights_root: str = "${oc.env:GOL_WEIGHTS,${.data_root}/weights}"  # local backbone / detector weight files
    output_root: str = "${oc.env:GOL_OUTPUT,${.root}/outputs}"


SCHEMAS = {"paths_schema": PathsConf}
