"""Face datasets, protocol files, splits and partitions (key holders and tooling; never the server or the matcher)."""

from facepp.data.datasets import LAYOUTS, FaceDataset, Sample, data_root, detect_layout, load_dataset
from facepp.data.images import decode_image_bytes, read_image
from facepp.data.protocol import Pair, build_pairs, identities_in_pairs, read_pairs, read_people
from facepp.data.splits import PARTITION_SCHEMES, IdentitySplit, partition_identities, split_identities

__all__ = [
    "LAYOUTS",
    "PARTITION_SCHEMES",
    "FaceDataset",
    "IdentitySplit",
    "Pair",
    "Sample",
    "build_pairs",
    "data_root",
    "decode_image_bytes",
    "detect_layout",
    "identities_in_pairs",
    "load_dataset",
    "partition_identities",
    "read_image",
    "read_pairs",
    "read_people",
    "split_identities",
]
