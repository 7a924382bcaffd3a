"""Data for the kit: image I/O, MATLAB bicubic, the Real-ESRGAN degradation, datasets, bundled photos,
evaluation sets and training pairs.

Layouts: :func:`read_image` gives float32 HWC numpy RGB in [0, 1]; everything in torch is float32
(B)CHW in [0, 1]. Every random draw goes through a ``torch.Generator`` passed in.
"""

from .bundled import (
    BundledTrainDataset,
    bundled_paths,
    data_dir,
    load_bundled_test_set,
    load_bundled_train_images,
    read_manifest,
    verify_bundled,
)
from .datasets import (
    MIN_SIDE,
    BuiltTestSet,
    ImageFolderDataset,
    PairedTestSet,
    bicubic_lr,
    build_test_set,
    crop_official,
    item_generator,
    load_paired_folder,
    quantize_8bit,
    quantize_u8,
    resize_short_side_center_crop,
    select_resshift,
)
from .degradation import apply_degradation, degrade, jpeg_compress, jpeg_compress_pillow
from .degradation_params import (
    KERNEL_TYPES,
    PRESETS,
    REALESRGAN_TRAIN,
    RESIZE_MODES,
    RESSHIFT_TEST,
    DegradationConfig,
    DegradationParams,
    get_preset,
    sample_degradation,
)
from .evalsets import MIN_HR_SIDE, bundled_eval_set, choose_crop_windows, folder_eval_set
from .imresize import imresize, imresize_np
from .io import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    LoadedImages,
    list_images,
    load_images,
    read_image,
    read_image_tensor,
    to_numpy,
    to_tensor,
    to_uint8,
    write_png,
)
from .pairs import DEGRADATIONS, PairSource
from .viz import describe_degradation, plot_degradation_grid

__all__ = [
    "BundledTrainDataset", "bundled_paths", "data_dir", "load_bundled_test_set", "load_bundled_train_images",
    "read_manifest", "verify_bundled",
    "MIN_SIDE", "BuiltTestSet", "ImageFolderDataset", "PairedTestSet", "bicubic_lr", "build_test_set",
    "crop_official", "item_generator", "load_paired_folder", "quantize_8bit", "quantize_u8", "resize_short_side_center_crop",
    "select_resshift",
    "KERNEL_TYPES", "PRESETS", "REALESRGAN_TRAIN", "RESIZE_MODES", "RESSHIFT_TEST", "DegradationConfig",
    "DegradationParams", "apply_degradation", "degrade", "get_preset", "jpeg_compress", "jpeg_compress_pillow",
    "sample_degradation",
    "imresize", "imresize_np",
    "IMAGE_EXTENSIONS", "ImageReadError", "LoadedImages", "list_images", "load_images", "read_image",
    "read_image_tensor", "to_numpy", "to_tensor", "to_uint8", "write_png",
    "describe_degradation", "plot_degradation_grid",
    "MIN_HR_SIDE", "bundled_eval_set", "folder_eval_set", "choose_crop_windows",
    "DEGRADATIONS", "PairSource",
]
