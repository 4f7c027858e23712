"""The face MXN: a MobileNetV1 multi-exit network whose exits are face embeddings.

Algorithm 3 (docs/ARCHITECTURE.md section 6) needs, for each face, a feature vector per
exit, computed one exit at a time so a face matched at exit ``i`` costs only
the stages up to ``i``. :class:`FaceMXN` gives exactly that over an
embedding-head :class:`~mxn.modelfile.MXNModel`:

* every exit ends in global pooling, a dense layer and L2 normalisation, so
  its features are unit vectors and distances between them are Euclidean in
  ``[0, 2]`` (``|a - b|^2 = 2 - 2 cos``): the thresholds of
  :class:`~mxn.facerec.labeller.FaceLabeller` are distances on that scale;
* :meth:`FaceMXN.exit_features` walks :meth:`~mxn.runner.ExitRunner.iter_exits`
  on a batch of one, so stopping after exit ``i`` runs no deeper stage;
* :meth:`FaceMXN.embed_all` computes every exit for many crops with one shared
  prefix per batch (prefix batching).

Two ways to train one:

* :func:`train_face_mxn_distill`: distillation from the oracle. The teacher
  is dlib's 128-D embedding of the same crops; each exit learns to point the
  same way (cosine loss). Any faces will do, no names needed: crops from the
  user's own videos or photos (:func:`mxn.facerec.training_set.collect_face_crops`,
  ``mxn train faces``). The default model is distilled so on the faces of a
  training movie of the evaluation cast (``scripts/build_face_model.sh``).
* :func:`train_face_mxn_identities`: identity classification on a
  class-per-folder face data set. A classification-head MXN is trained, then
  converted to an embedding model whose exit ``i`` outputs the L2-normalised
  logits of classifier ``i`` (:func:`classifier_to_embedding`). That keeps one
  kind of face model file (embedding heads) for every consumer.

Input: aligned ``(112, 112, 3)`` ``uint8`` RGB crops from
:func:`mxn.facerec.detection.aligned_crops` (the dissertation's size); crops of
another size are resized to the model's input size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mxn.defaults import MODEL_DIR
from mxn.images import resize_batch, stratified_split
from mxn.modelfile import ModelFileError, MXNModel, load_model, model_sha
from mxn.network import build_network
from mxn.runner import ExitRunner
from mxn.spec import NetworkSpec
from mxn.training import TrainConfig, train_network, training_provenance

from .oracle import face_distances
from .settings import FACE_WIDTH

#: Where the default face model lives (next to the traffic world's default models).
DEFAULT_FACE_MODEL = MODEL_DIR / "face.mxn"
#: Exit positions of the face MXN: after MobileNetV1's conv3, conv5, conv7 and conv9.
FACE_EXITS: tuple[int, ...] = (3, 5, 7, 9)
FACE_INPUT_SIZE = 112
#: The teacher of distillation, recorded in the card.
DLIB_TEACHER = "dlib_face_recognition_resnet_model_v1 (face-recognition-models), L2-normalised"


def face_spec(
    width: float = FACE_WIDTH,
    input_size: int = FACE_INPUT_SIZE,
    exits: Sequence[int] = FACE_EXITS,
    embedding_dim: int = 128,
    dropout: float = 0.0,
) -> NetworkSpec:
    """The face MXN's architecture: MobileNetV1, embedding exits, feature aggregation on.

    The ImageNet stem (strided first conv) suits 112 px crops; inputs of
    64 px or less (tests) get the stride-1 CIFAR stem so the deep exits still
    see a few pixels.
    """
    return NetworkSpec(
        backbone="mobilenet_v1",
        input_size=input_size,
        width=width,
        exits=tuple(exits),
        head="embedding",
        embedding_dim=embedding_dim,
        aggregation=True,
        stem="imagenet" if input_size > 64 else "cifar",
        dropout=dropout,
    )


# -- the model wrapper ------------------------------------------------------------------------------------


class FaceMXN:
    """A face MXN ready for Algorithm 3: per-exit unit-norm features, lazily or in batches.

    Args:
        model: an embedding-head :class:`~mxn.modelfile.MXNModel`.
        batch_size: crops per batch in :meth:`embed_all`.
        source: where the model came from, for error messages.
    """

    def __init__(self, model: MXNModel, batch_size: int = 64, source: str = "the model") -> None:
        check_face_model(model, source)
        self.model = model
        self.runner: ExitRunner = model.runner(batch_size)
        self._sha: str | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike, batch_size: int = 64) -> FaceMXN:
        """Load a ``.mxn`` face model; :class:`ModelFileError` if it is not one."""
        return cls(load_model(path), batch_size, source=str(path))

    @classmethod
    def default(cls, batch_size: int = 64) -> FaceMXN:
        """The face model that ships with mxn (``mxn/default_models/face.mxn``)."""
        if not DEFAULT_FACE_MODEL.exists():
            raise ModelFileError(
                f"{DEFAULT_FACE_MODEL}: the default face model is missing; rebuild it with "
                "scripts/build_face_model.sh (or pass a face model file)"
            )
        return cls.from_file(DEFAULT_FACE_MODEL, batch_size)

    @property
    def spec(self) -> NetworkSpec:
        return self.model.spec

    @property
    def num_exits(self) -> int:
        return self.spec.num_exits

    @property
    def dims(self) -> list[int]:
        """Feature size of every exit (the embedding size, the same for all)."""
        return [self.spec.embedding_dim] * self.num_exits

    @property
    def sha(self) -> str:
        """:func:`~mxn.modelfile.model_sha` of the model (computed once: it hashes every weight)."""
        if self._sha is None:
            self._sha = model_sha(self.model)
        return self._sha

    def exit_features(self, face: np.ndarray) -> Iterator[np.ndarray]:
        """One face's unit-norm features, exit by exit, each computed only when asked for.

        Closing the generator early (FaceLabeller does, after a match) means
        no deeper stage ever runs for this face.
        """
        batch = self._prepare(np.asarray(face)[None])
        for outputs in self.runner.iter_exits(batch):
            yield outputs[0]

    def embed_all(self, crops: np.ndarray) -> list[np.ndarray]:
        """Every exit's features for many crops: a list of ``(N, D)`` arrays, one per exit."""
        crops = np.asarray(crops)
        if crops.ndim != 4:
            raise ValueError(f"expected a batch of crops (N, S, S, 3), got shape {crops.shape}")
        return self.runner.all_exits(self._prepare(crops)).outputs

    def __call__(self, face: np.ndarray) -> Iterator[np.ndarray]:
        """So a FaceMXN is itself the ``exit_features`` callable FaceLabeller takes."""
        return self.exit_features(face)

    def _prepare(self, crops: np.ndarray) -> np.ndarray:
        """Crops at the model's input size (aligned crops are 112 px; a test model may be smaller)."""
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
            raise ValueError(f"expected square RGB face crops (N, S, S, 3), got shape {crops.shape}")
        size = self.spec.input_size
        return crops if crops.shape[1] == size else resize_batch(crops, size)


def check_face_model(model: MXNModel, source: str = "the model") -> None:
    """Refuse a model that cannot serve as a face MXN, saying why (a classifier has no embeddings)."""
    spec = model.spec
    if spec.head != "embedding":
        raise ModelFileError(
            f"{source}: not a face model: its exits are a {spec.head} head "
            f"({spec.num_classes} classes), and faces need embedding exits; train one with "
            "`mxn train faces` or use the default face model"
        )


# -- distillation from the oracle -------------------------------------------------------------------------


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1: dlib's embeddings are not unit vectors, the exits' are."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def distill_config(**changes: Any) -> TrainConfig:
    """Training settings that work for distillation on a few thousand crops (Adam, as the defaults)."""
    settings: dict[str, Any] = {
        "loss": "cosine",
        "optimizer": "adam",
        "learning_rate": 0.003,
        "epochs": 30,
        "batch_size": 32,
        "plateau_patience": 3,
        "early_stopping_patience": 6,
        "flip": True,  # a mirrored face is the same person
        "progress": False,
    }
    return TrainConfig(**(settings | changes))


def train_face_mxn_distill(
    crops: np.ndarray,
    teacher: np.ndarray,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    val_fraction: float = 0.15,
    groups: np.ndarray | None = None,
    source: str = "",
    centre: bool = False,
) -> tuple[MXNModel, dict[str, Any]]:
    """Train a face MXN so that every exit points where dlib's embedding points.

    Args:
        crops: aligned face crops ``(N, S, S, 3)`` ``uint8`` (resized to the spec's input size).
        teacher: ``(N, 128)`` dlib embeddings of the same crops
            (``FaceEmbedder().embed_crops(crops)``). They are normalised to unit
            length here: the exits output unit vectors and the loss is cosine,
            so only the direction can be learnt (and dlib's distances are
            nearly a function of the angle, as its vectors have similar norms).
        spec: the architecture (default :func:`face_spec`); must have embedding
            heads whose size is the teacher's.
        config: training settings (default :func:`distill_config`); the loss must be ``"cosine"``.
        val_fraction: share of the crops held out for early stopping and the report.
        groups: optional group id per crop (e.g. the source image of augmented
            copies): whole groups are held out, so no near-copy of a held-out
            crop is trained on.
        source: where the crops came from, for the card.
        centre: subtract the mean direction of the training crops' teacher
            vectors before normalising. All of dlib's face vectors point
            roughly one way (cosine about 0.94 to their mean on the default
            crops), so uncentred targets let an exit score high by learning
            that mean alone; centred targets leave only what tells people
            apart. Algorithm 3 compares an exit's vectors with each other,
            never with dlib's, so the shift costs nothing there. Off by
            default: on the default crops it gave the same pair AUC at the
            first exit and a lower one at the deeper exits (docs/MODELS.md).

    Returns:
        the model, and a report with the held-out per-exit mean cosine
        similarity to the teacher, before and after training.
    """
    spec = spec or face_spec(embedding_dim=int(np.shape(teacher)[1]))
    config = config or distill_config()
    crops, targets = _check_pairs(crops, teacher, spec)
    train_idx, val_idx = _holdout(len(crops), val_fraction, config.seed, groups)
    centre_vector = targets[train_idx].mean(axis=0) if centre else np.zeros(targets.shape[1], np.float32)
    targets = unit_rows(targets - centre_vector)
    images = _at_size(crops, spec.input_size)
    network = build_network(spec, seed=config.seed)
    model = MXNModel(network=network, classes=[])
    before = exit_cosine(FaceMXN(model), images[val_idx], targets[val_idx])  # targets: centred already
    result = train_network(
        network, images[train_idx], targets[train_idx], images[val_idx], targets[val_idx], config
    )
    after = exit_cosine(FaceMXN(model), images[val_idx], targets[val_idx])
    report = {
        "kind": "distillation",
        "teacher": DLIB_TEACHER,
        "train_crops": len(train_idx),
        "heldout_crops": len(val_idx),
        "heldout_cosine_untrained": before,
        "heldout_cosine": after,
        "teacher_centre": [round(float(v), 6) for v in centre_vector],
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 1),
    }
    model.training = training_provenance(source, config, result.to_dict(), face_model=report)
    return model, report


def exit_cosine(
    face_model: FaceMXN, crops: np.ndarray, teacher: np.ndarray, centre: Sequence[float] | None = None
) -> list[float]:
    """Per exit, the mean cosine similarity between the exit's vectors and the teacher's.

    ``centre`` is subtracted from the (unit) teacher vectors first: the
    ``teacher_centre`` of a distillation report, so the figure is the one
    training optimised.
    """
    targets = unit_rows(unit_rows(teacher) - (0.0 if centre is None else np.asarray(centre, np.float32)))
    return [float(np.mean(np.sum(f * targets, axis=1))) for f in face_model.embed_all(crops)]


def nearest_identity_agreement(
    face_model: FaceMXN, crops: np.ndarray, teacher: np.ndarray, identities: Sequence[str]
) -> list[float]:
    """Per exit, how often the exit and dlib name the same identity for a crop's nearest neighbour.

    Leave-one-out among ``crops``: for each crop, the nearest other crop by
    dlib distance and by the exit's distance; agreement when both belong to
    the same identity. This is what Algorithm 3 relies on: an exit's nearest
    person in its database should be the oracle's.
    """
    identities = np.asarray(identities)
    teacher_nn = _nearest_other(-face_distances(teacher, teacher))  # the oracle's own (Euclidean) distances
    return [
        float(np.mean(identities[_nearest_other(f @ f.T)] == identities[teacher_nn]))
        for f in face_model.embed_all(crops)
    ]


def _nearest_other(similarity: np.ndarray) -> np.ndarray:
    """Index of each row's most similar other row, from a square similarity matrix."""
    similarity = np.array(similarity, dtype=np.float64)
    np.fill_diagonal(similarity, -np.inf)
    return np.argmax(similarity, axis=1)


# -- identity classification ------------------------------------------------------------------------------


def train_face_mxn_identities(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    val_fraction: float = 0.15,
    source: str = "",
) -> tuple[MXNModel, dict[str, Any]]:
    """Train a face MXN by identity classification (a class-per-folder face data set).

    A classification-head MXN with the face backbone is trained with
    cross-entropy (or the config's focal loss), then converted by
    :func:`classifier_to_embedding`, so the result is an embedding face model
    like any other (its vectors have one dimension per identity). The report
    holds the held-out top-1 accuracy per exit.
    """
    classes = [str(c) for c in classes]
    spec = (spec or face_spec()).replace(head="classification", num_classes=len(classes))
    config = config or distill_config(loss="ce")
    labels = np.asarray(labels, np.int64)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    train_idx, val_idx = stratified_split(labels, (1.0 - val_fraction, val_fraction), config.seed)
    if len(val_idx) == 0:
        raise ValueError("too few images per identity to hold any out; add more or lower val_fraction")
    x = _at_size(np.asarray(images), spec.input_size)
    network = build_network(spec, seed=config.seed)
    result = train_network(network, x[train_idx], labels[train_idx], x[val_idx], labels[val_idx], config)
    outputs = ExitRunner(network).all_exits(x[val_idx]).outputs
    accuracy = [float(np.mean(o.argmax(axis=1) == labels[val_idx])) for o in outputs]
    report = {
        "kind": "identities",
        "identities": len(classes),
        "train_images": len(train_idx),
        "heldout_images": len(val_idx),
        "heldout_top1": accuracy,
        "epochs_run": result.epochs_run,
        "seconds": round(result.seconds, 1),
    }
    classifier = MXNModel(network=network, classes=classes)
    model = classifier_to_embedding(classifier)
    model.training = training_provenance(source, config, result.to_dict(), face_model=report)
    return model, report


def classifier_to_embedding(model: MXNModel) -> MXNModel:
    """The same network with embedding exits: exit ``i`` gives classifier ``i``'s L2-normalised logits.

    The stages are copied as they are; each head's softmax layer becomes the
    embedding head's dense layer (same kernel and bias), and normalisation
    replaces the softmax. Faces of one person then point the same way, and
    the argmax of an embedding is the classifier's prediction.
    """
    spec = model.spec
    if spec.head != "classification":
        raise ValueError("classifier_to_embedding needs a classification-head model")
    network = build_network(spec.replace(head="embedding", embedding_dim=spec.num_classes))
    for new, old in zip(network.stages, model.network.stages, strict=True):
        new.set_weights(old.get_weights())
    for i, (new, old) in enumerate(zip(network.heads, model.network.heads, strict=True)):
        new.get_layer(f"exit{i}_dense").set_weights(old.get_layer(f"exit{i}_softmax").get_weights())
    return MXNModel(network=network, classes=list(model.classes), training=dict(model.training))


# -- helpers ----------------------------------------------------------------------------------------------


def _check_pairs(crops, teacher, spec: NetworkSpec) -> tuple[np.ndarray, np.ndarray]:
    crops, teacher = np.asarray(crops), np.asarray(teacher, np.float32)
    if spec.head != "embedding":
        raise ValueError("distillation needs an embedding-head spec (face_spec())")
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"expected face crops (N, S, S, 3), got shape {crops.shape}")
    if teacher.ndim != 2 or len(teacher) != len(crops):
        raise ValueError(f"expected one teacher vector per crop, got {teacher.shape} for {len(crops)} crops")
    if teacher.shape[1] != spec.embedding_dim:
        raise ValueError(
            f"teacher vectors have {teacher.shape[1]} dims, the spec's exits {spec.embedding_dim}"
        )
    return crops, unit_rows(teacher)


def _holdout(n: int, fraction: float, seed: int, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out indices; whole groups go to one side when ``groups`` is given."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    keys = np.arange(n) if groups is None else np.asarray(groups)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} group ids for {n} crops")
    unique = np.random.default_rng(seed).permutation(np.unique(keys))
    held = set(unique[: max(1, round(len(unique) * fraction))].tolist())
    mask = np.array([k in held for k in keys.tolist()])
    if mask.all() or not mask.any():
        raise ValueError(f"cannot hold out {fraction:.0%} of {len(unique)} groups; give more crops")
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _at_size(crops: np.ndarray, size: int) -> np.ndarray:
    return crops if crops.shape[1:3] == (size, size) else resize_batch(crops, size)
