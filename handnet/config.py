"""The only defaults in handnet: one dataclass, saved as config.json beside every model.

Flags of train.py map one-to-one onto fields (`--batch-size` -> `batch_size`), and inference
rebuilds the network from the saved file, so an architecture is never restated.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from handnet.atomic import write_text

CONFIG_VERSION = 1

# What each label of a dataset means to the detector. "positive" hands are to be found, "ignore"
# hands are ambiguous (zero loss weight around them; detections there are neither right nor
# wrong), "negative" hands are treated as background.
ROLES = ("positive", "ignore", "negative")
STRATEGIES = ("default", "mirrored", "multiworker")  # handnet.distribute builds them
# Training arithmetic (handnet.distribute.set_precision); weights stay float32 and the saved model
# is float32 whichever is used. "auto": bfloat16 on CPUs that multiply it natively, else float32.
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# `face` and `arm` are the synthetic set's skin-coloured distractors (handnet.synthetic). A mapping
# with `*=ignore` would make them ignore regions, so name them when using one with that set.
DISTRACTORS_NEGATIVE = "face=negative,arm=negative"
DEFAULT_LABELS = "open=positive,other=ignore," + DISTRACTORS_NEGATIVE
# The one mapping of every set's classes to open / other hands (datasets/README.md lists the sets):
# these are the seed's "open, facing" hand; every other label is an `other` hand (fists, fingers,
# letters, signs, HaGRID's no_gesture), ignored by the open-hand map and a hand to the every-hand
# map. `--labels open-other` names it.
OPEN_HAND_LABELS = ("open", "hello", "five", "5-hand", "palm", "stop", "stop_inverted", "hand", "5")
OPEN_OTHER_LABELS = ",".join(f"{label}=positive" for label in OPEN_HAND_LABELS) + f",{DISTRACTORS_NEGATIVE},*=ignore"
LABEL_PRESETS = {"open-other": OPEN_OTHER_LABELS}

# Training-only 1x1 heads beside the heatmap (handnet.model.with_training_heads), in the order of
# their channels in y_true and y_pred, each with the Config field that weighs its loss (0 = off)
# and its number of output channels (in y_true, each head adds a weight channel after them).
TRAINING_HEADS = {"every_hand": "aux_weight", "openness": "openness_weight", "negatives": "negative_weight",
                  "segment": "segment_weight"}
HEAD_OUTPUTS = {"every_hand": 1, "openness": 1, "negatives": 1, "segment": len(ROLES)}
# The deployed maps of a network with the hand map, in channel order (peaks.detect_hands reads them).
MAP_CHANNELS = ("open", "hand", "openness")

# Output stride, default input (height, width) and what input sides must be multiples of, for each
# model preset; model.py builds them (fast upsamples 1/16 back onto 1/8, so its sides are multiples of 16).
PRESET_STRIDES = {"seed": 8, "fast": 8, "palm": 8}
PRESET_INPUT_SIZES = {"seed": (240, 426), "fast": (240, 320), "palm": (192, 256)}
PRESET_SIZE_MULTIPLES = {"seed": 8, "fast": 16, "palm": 32}


class SavedConfig:
    """JSON round trips shared by the config dataclasses."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def save(self, path: str | os.PathLike) -> None:
        write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SavedConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, raw: dict) -> "SavedConfig":
        """Fields of a saved config; keys this version does not know are skipped."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


# Fields added since configs were first saved, with how the runs before them behaved.
UNSAVED_BEFORE = {
    "aux_weight": 0.0,  # no every-hand head (2026-11-24)
    "precision": "float32",  # before `precision`, float32 unless mixed_precision (2026-11-24)
    "flip": False,  # no flips without augment (2026-11-24)
    "negative_weight": 0.0,  # no negatives head (2026-11-25)
    "segment_weight": 0.0,  # no segmentation head (2026-11-25)
    "prepare": False,  # every example made afresh each epoch (2026-11-25)
    "dense_scenes": False,  # the built-in set's scenes all drawn as frames, no split declared (2026-12-04)
    "epoch_val_images": 0,  # every validation image each epoch (2026-12-04)
    "stem_channels": 24,  # the fast preset's 1/4 stage was 24 channels wide (2026-12-04)
    "hand_map": False,  # the every-hand head trained only, the deployed network gave open hands alone
    "openness_weight": 0.0,  # no openness map (2026-12-07)
}


@dataclasses.dataclass
class Config(SavedConfig):
    # data
    data: list[str] = dataclasses.field(default_factory=list)  # empty: the synthetic set
    data_repeats: tuple[int, ...] = ()  # training images of data[i] recur data_repeats[i] times per
    # epoch (validation never repeats); () = once each. Keeps a few real photos from drowning among
    # thousands of synthetic scenes.
    labels: str = DEFAULT_LABELS
    skip_bad: bool = False  # leave bad files out (each reported, listed in skipped.txt) instead of stopping
    val_fraction: float = 0.2
    group_size: int = 16  # consecutive files kept on one side of the train/val split
    # Validation images behind each epoch's val_loss, spread over them (0: all). Validation does
    # not steer training, and the final metrics score every validation image; fewer make each
    # epoch's check cheaper (docs/default-run.md).
    epoch_val_images: int = 480
    synthetic_count: int = 9600  # distinct scenes beat repeats of fewer, which overfit (docs/default-run.md)
    # The built-in set's training scenes hold 2-9 hands, 2-6 more small ones and 4-8 faces or
    # arms, its validation scenes (val_fraction of them) 0-5 and 0-3 as a frame does: more to
    # learn per step (handnet.synthetic, docs/default-run.md). False: every scene drawn as a
    # frame, split by groups.
    dense_scenes: bool = True
    # model
    preset: str = "fast"
    stem_channels: int = 40  # fast: channels of the 1/4 stage (patch stem and its 3x3 block); the
    # shipped model has 24, for speed (docs/default-run.md)
    input_size: tuple[int, ...] = ()  # (height, width) of the network input; () = the preset's
    crop_size: tuple[int, ...] = ()  # training crops of the letterboxed input, at most
    # its size; () trains on whole inputs. The network is fully convolutional: smaller crops mean
    # more, cheaper steps. Without augment, crops are cut on the grid of the preset's size multiple,
    # so each crop's output cells are cells of the whole input's heatmap.
    focus_crops: float = 0.0  # share of training crops placed around a random positive hand
    crops_per_image: int = 1  # training images recur this many times per epoch, each time another
    # crop (and flip): with crops a quarter of the input, 4 keeps an epoch the pixels of whole images
    backbone_weights: str = "none"  # imagenet | none | path to a notop VGG16 .h5
    init: str = ""  # start from a trained model of the same preset (.keras, .weights.h5 or .tflite); "" = fresh weights
    # Training only: a trained detector (a run's model.keras, any preset, with the hand and openness
    # maps) whose maps on every training example are soft targets for this network's, beside the
    # annotations (handnet.losses.with_distillation): it teaches hands the annotations leave out and
    # what its features saw. "" = none.
    distill_from: str = ""
    distill_weight: float = 1.0
    # targets
    target: str = "gaussian"  # gaussian | disk
    sigma_scale: float = 0.35  # Gaussian sigma in output cells = sigma_scale * radius / stride
    min_sigma: float = 0.8  # output cells; keeps far hands a visible blob
    ignore_margin: float = 1.25  # ignore disks are this many hand radii wide
    # loss and optimisation
    loss: str = "focal"
    # Training only: weight of a focal loss on a second head, a heatmap of every annotated hand
    # (ignore ones included), dropped from the saved model. Knowing what any hand looks like helps
    # tell open hands from faces and arms (docs/default-run.md).
    aux_weight: float = 1.0  # 0 = no second head
    # Keep that every-hand head in the saved and exported network as a second output channel, so
    # detections come from it and carry an open score and label: a game sees fists and side views
    # too (handnet.peaks.detect_hands). Needs aux_weight > 0.
    hand_map: bool = True
    # Weight of a binary cross-entropy on a head trained only inside annotated hands, 1 on open
    # hands and 0 on other ones (weight 0 elsewhere): the chance that a hand is open. Kept in the
    # deployed network beside the hand map, it labels each hand (open where it reaches
    # open_threshold); the open map, which ignores other hands, cannot tell them apart
    # (docs/accuracy.md). 0 = no openness map.
    openness_weight: float = 1.0
    # Training only: weight of a focal loss on a third head, a heatmap of the annotated `negative`
    # things (the synthetic set's faces and arms), also dropped from the saved model. Naming what
    # the false alarms are helps (docs/default-run.md).
    negative_weight: float = 1.0  # 0 = no negatives head
    # Training only: weight of a loss on a fourth head that learns, per output cell, how much of it
    # shows things of each role (positive, ignore, negative) from the images' label masks (the
    # synthetic set writes them; datasets/README.md). Dropped from the saved model; images without
    # a mask do not train it (docs/default-run.md).
    segment_weight: float = 1.0  # 0 = no segmentation head
    pos_weight: float = 20.0  # weighted_bce
    fp_weight: float = 0.3  # tversky
    fn_weight: float = 0.7  # tversky
    epochs: int = 9  # the default run's (docs/default-run.md: its time and figures)
    batch_size: int = 8
    learning_rate: float = 3e-3  # peak of the warm-up + cosine schedule (docs/default-run.md)
    augment: bool = False  # zoom, shift, flip, colour; slows learning on the synthetic set, real data wants it
    # With augment: share of training examples made a 2x2 or 3x3 mosaic of augmented training
    # images (handnet.data.make_mosaic), so real hands also come 2-3x smaller, as people a few
    # metres away do, among real backgrounds. 0 = none.
    mosaic: float = 0.0
    # Without augment: mirror each training image left-right at random, which costs nothing and
    # delays memorising the scenes (+2 points of F1 in the default run, docs/default-run.md).
    flip: bool = True
    # Without augment: make every training and validation example once before training, into
    # memory-mapped files in the run folder (handnet.data.PreparedExamples; about 280 KB per 240 x
    # 320 image, removed after training), and read them back each epoch: the JPEG and mask decodes
    # and the targets' rendering then stop competing with training for the cores.
    prepare: bool = True
    seed: int = 0
    strategy: str = "default"  # default | mirrored (GPUs of one machine) | multiworker (hosts, via TF_CONFIG)
    precision: str = "auto"  # auto | float32 | bfloat16 | float16 (GPUs): training arithmetic, PRECISIONS
    # detection
    score_threshold: float = 0.4  # train.py replaces it by the best one on validation images
    # With the hand map: score_threshold cuts the every-hand map (which hands are reported), and a
    # reported hand is labelled open when its open score (the openness map's, else the open-hand
    # map's) reaches open_threshold; train.py tunes both.
    open_threshold: float = 0.4
    tune_threshold: bool = True  # and fits radius_knots on the same images (training.finish_run)
    # data folders whose validation images alone the threshold is tuned on (empty: all of them), such
    # as the real photos among synthetic scenes, where the model will meet real frames
    tune_on: list[str] = dataclasses.field(default_factory=list)
    # set by training: ((radius, ...), (factor, ...)) in network-input pixels, peaks.calibrate_radius
    radius_knots: list = dataclasses.field(default_factory=list)
    match_distance: float = 1.0  # a detection matches a hand within this many radii of its centre
    # deliverable
    export: bool = True  # write model-int8.tflite (handnet.export) at the end of training
    # bookkeeping
    out: str = ""
    version: int = CONFIG_VERSION

    @classmethod
    def from_dict(cls, raw: dict) -> "Config":
        """As SavedConfig.from_dict; a field the file predates takes the value that reproduces
        what the code that wrote it did (UNSAVED_BEFORE), so old runs resume as they began."""
        if raw.get("mixed_precision"):  # the flag `precision` replaced
            raw = {"precision": "float16", **raw}
        if "negative_weight" not in raw and "labels" in raw:
            # Saved before the synthetic set annotated its distractors, which were background then:
            # `negative`, unless the mapping names them itself (later entries win).
            raw = {**raw, "labels": f"{DISTRACTORS_NEGATIVE},{raw['labels']}"}
        return super().from_dict({**UNSAVED_BEFORE, **raw})

    def __post_init__(self):
        if self.preset not in PRESET_STRIDES:
            raise ValueError(f"unknown preset '{self.preset}' (choose from {', '.join(PRESET_STRIDES)})")
        self.input_size = tuple(int(v) for v in self.input_size or PRESET_INPUT_SIZES[self.preset])
        self.crop_size = tuple(int(v) for v in self.crop_size)
        self.data = [str(d) for d in self.data]
        self.data_repeats = tuple(int(v) for v in self.data_repeats)
        if self.data_repeats and (len(self.data_repeats) != len(self.data) or min(self.data_repeats) < 1):
            raise ValueError(f"data_repeats {list(self.data_repeats)} must give one whole number of at least 1 "
                             f"per data folder ({len(self.data)} given)")
        self.tune_on = [str(d) for d in self.tune_on]
        folders = {os.path.realpath(d) for d in self.data}
        for folder in self.tune_on:
            if os.path.realpath(folder) not in folders:
                raise ValueError(f"tune_on folder {folder} is not one of the data folders ({', '.join(self.data) or 'none'})")
        if len(self.input_size) != 2:
            raise ValueError(f"input_size must be (height, width), got {self.input_size}")
        if self.crop_size and len(self.crop_size) != 2:
            raise ValueError(f"crop_size must be (height, width) or (), got {self.crop_size}")
        for name in TRAINING_HEADS.values():
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (off) or more, got {getattr(self, name)}")
        if not 0 <= self.focus_crops <= 1:
            raise ValueError(f"focus_crops must be a share between 0 and 1, got {self.focus_crops}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{self.precision}' (choose from {', '.join(PRECISIONS)})")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy '{self.strategy}' (choose from {', '.join(STRATEGIES)})")
        if self.distill_from and not (self.deploys_hand_map and self.openness_weight > 0):
            raise ValueError("distill_from teaches the open, hand and openness maps: it needs hand_map, aux_weight "
                             "and openness_weight")
        if not 0 <= self.distill_weight < float("inf"):
            raise ValueError(f"distill_weight must be 0 or more, got {self.distill_weight}")
        if not 0 <= self.mosaic <= 1:
            raise ValueError(f"mosaic must be a share between 0 and 1, got {self.mosaic}")
        if self.mosaic and not self.augment:
            raise ValueError("mosaic is an augmentation: it needs augment")
        if self.focus_crops and not (self.crop_size or self.augment):
            raise ValueError("focus_crops places crops around hands, so it needs crop_size (or augment)")
        if self.stem_channels < 1:
            raise ValueError(f"stem_channels must be a whole number of at least 1, got {self.stem_channels}")
        check_schedule(self)
        if self.epoch_val_images < 0:
            raise ValueError(f"epoch_val_images must be 0 (all) or more, got {self.epoch_val_images}")
        if self.crops_per_image < 1:
            raise ValueError(f"crops_per_image must be a whole number of at least 1, got {self.crops_per_image}")

    @property
    def train_size(self) -> tuple[int, int]:
        """What training batches hold: crops when crop_size is set, else whole inputs."""
        if not self.crop_size:
            return self.input_size
        return min(self.crop_size[0], self.input_size[0]), min(self.crop_size[1], self.input_size[1])

    @property
    def training_heads(self) -> tuple[tuple[str, float, int], ...]:
        """(name, loss weight, output channels) of each training head this config trains, in
        channel order; the one place that decides which heads exist (targets, model and loss all
        follow it)."""
        return tuple((name, getattr(self, field), HEAD_OUTPUTS[name]) for name, field in TRAINING_HEADS.items()
                     if getattr(self, field) > 0)

    @property
    def deploys_hand_map(self) -> bool:
        """Whether the deployed network has the every-hand map beside the open-hand one."""
        return self.hand_map and self.aux_weight > 0

    @property
    def map_channels(self) -> tuple[str, ...]:
        """The deployed network's output channels, MAP_CHANNELS' names: open hands alone, or with
        the hand map every hand too, and the openness map where it trains."""
        if not self.deploys_hand_map:
            return MAP_CHANNELS[:1]
        return MAP_CHANNELS if self.openness_weight > 0 else MAP_CHANNELS[:2]

    @property
    def stride(self) -> int:
        return PRESET_STRIDES[self.preset]

    def heatmap_size(self, size) -> tuple[int, int]:
        """(height, width) of the heatmap for an input of `size`: every preset floors at each of
        its 2x poolings."""
        return size[0] // self.stride, size[1] // self.stride

    @property
    def output_size(self) -> tuple[int, int]:
        return self.heatmap_size(self.input_size)

GESTURE_LOSSES = ("ce", "bce", "bce_na")
GESTURE_BACKBONES = ("small", "fast")


@dataclasses.dataclass
class GestureConfig(SavedConfig):
    """The gesture classifier of hand crops (handnet.gestures); saved as config.json beside it."""

    # data
    data: str = ""  # one sub-folder per known gesture, plus na_name/; "" = the synthetic set
    unseen: str = ""  # one sub-folder per unseen gesture; "" = <data>-unseen where it exists
    na_name: str = "na"
    skip_bad: bool = False  # leave unreadable crops out (each reported, listed in skipped.txt) instead of stopping
    val_fraction: float = 0.2
    group_size: int = 8  # consecutive files kept on one side of the split
    # model
    input_side: int = 64  # crops are input_side x input_side BGR
    backbone: str = "fast"  # small: width, 2x, 4x filters down to 1/8 | fast: the detector's layers down to 1/16
    width: int = 32  # small backbone: filters of the first block; doubled twice
    stem_channels: int = 24  # fast backbone: its 1/4 stage's channels, as in the detector --init-from names
    init_from: str = ""  # a gestures.keras, or for the fast backbone a detector .keras / .tflite, to start from
    # loss and optimisation
    loss: str = "bce_na"  # ce | bce | bce_na
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    augment: bool = True
    balance: bool = True  # draw every gesture, na included, equally often in training
    mix_unknowns: float = 0.0  # share of na draws replaced by a made-up gesture: parts of two known ones
    seed: int = 0
    # decision
    threshold: float = 0.4  # the top score under it means na; train.py picks it on validation images
    tune_threshold: bool = True
    known_drop: float = 0.02  # tuning: known-gesture accuracy it may give up for more na answers
    classes: list[str] = dataclasses.field(default_factory=list)  # set by training: known gestures, then na
    # deliverable
    export: bool = True  # write gestures-int8.tflite at the end of training
    out: str = ""
    version: int = CONFIG_VERSION

    def __post_init__(self):
        if self.loss not in GESTURE_LOSSES:
            raise ValueError(f"unknown gesture loss '{self.loss}' (choose from {', '.join(GESTURE_LOSSES)})")
        if self.backbone not in GESTURE_BACKBONES:
            raise ValueError(f"unknown gesture backbone '{self.backbone}' (choose from {', '.join(GESTURE_BACKBONES)})")
        if self.input_side < 16 or self.input_side % 8:
            raise ValueError(f"input_side must be a multiple of 8, at least 16; got {self.input_side}")
        if self.backbone == "fast" and self.input_side % 16:
            raise ValueError(f"input_side must be a multiple of 16 for the fast backbone; got {self.input_side}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        check_schedule(self)
        if self.stem_channels < 1:
            raise ValueError(f"stem_channels must be a whole number of at least 1, got {self.stem_channels}")
        if not self.na_name:
            raise ValueError("na_name must not be empty")
        if not 0 <= self.mix_unknowns <= 1:
            raise ValueError(f"mix_unknowns must be in [0, 1], got {self.mix_unknowns}")


def parse_names(spec: str) -> list[str]:
    """A comma-separated flag value: 'hello, yes,,ok' -> ['hello', 'yes', 'ok']."""
    return [part.strip() for part in spec.split(",") if part.strip()]


def check_schedule(config) -> None:
    """ValueError unless epochs, batch_size and learning_rate can make a training schedule
    (Keras' own error for 0 epochs names `decay_steps`, which no flag sets)."""
    if config.epochs < 1:
        raise ValueError(f"epochs must be a whole number of at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {config.batch_size}")
    if not 0 < config.learning_rate < float("inf"):
        raise ValueError(f"learning_rate must be a positive number, got {config.learning_rate}")


def parse_labels(spec: str) -> dict[str, str]:
    """'hello=positive,*=ignore' -> {'hello': 'positive', '*': 'ignore'}; '*' matches the rest. A
    name of LABEL_PRESETS ('open-other') stands for its mapping."""
    spec = LABEL_PRESETS.get(spec.strip(), spec)
    mapping = {}
    for item in parse_names(spec):
        name, sep, role = item.partition("=")
        name, role = name.strip(), role.strip()
        if not sep or not name or role not in ROLES:
            raise ValueError(f"--labels: '{item}' is not LABEL=ROLE with ROLE one of {', '.join(ROLES)}")
        mapping[name] = role
    if "positive" not in mapping.values():
        raise ValueError(f"--labels: '{spec}' maps no label to positive, so there is nothing to detect")
    return mapping

