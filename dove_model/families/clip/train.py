"""The clip family's training (its ``train``; the shared run: ``training/run.py``).

``zero_shot: true``: nothing trains. The checkpoint is validated once on ``train.val_split``
(recorded as epoch 0) and written as a model directory, to be evaluated, gated and
registered like any other: the baseline a team starts from ("promote only models that beat
RemoteCLIP zero-shot on our data"). ``zero_shot: false``: both towers are fine-tuned with the
shared contrastive recipe (``training/finetune.py``), with resume, the time budget, early
stopping and data parallelism as for every family.
"""

from __future__ import annotations

from dove_model.families.clip.io import save_clip_model_dir
from dove_model.families.clip.model import ClipModel
from dove_model.families.clip.settings import ClipSettings
from dove_model.metrics import retrieval_metrics
from dove_model.training.checkpoint import Trainables
from dove_model.training.finetune import TowerFinetune, split_embeddings
from dove_model.training.run import (
    EpochStats,
    TrainingRun,
    TrainRequest,
    TrainResult,
    trained_model_dir,
)


def _zero_shot(run: TrainingRun, model: ClipModel) -> TrainResult:
    """Validate the checkpoint as it is and keep it as the run's model."""
    size, prep = model.input_spec
    metrics = None
    if run.dist.is_main:
        images, texts = split_embeddings(model, run.val_split, size, prep, run.device)
        metrics = retrieval_metrics((images @ texts.T).numpy(), run.val_split.caption_image)
    target = trained_model_dir(run.out_dir)
    run.end_epoch(
        EpochStats(epoch=0),
        lr=0.0,
        metrics=run.agreed(metrics),
        save_best=lambda: save_clip_model_dir(model, target),
        save_last=lambda: None,  # nothing trained: nothing to resume
    )
    return run.finish("zero_shot", model)


def train_clip(request: TrainRequest) -> TrainResult:
    settings = request.settings
    assert isinstance(settings, ClipSettings)
    run = TrainingRun(request)
    model = ClipModel.build(settings, pretrained=True).to(run.device)
    if settings.zero_shot:
        return _zero_shot(run, model)
    recipe = TowerFinetune(run, model, model.input_spec, fixed_input=True)
    trainables = Trainables(model, recipe.optimiser, recipe.schedule)
    if run.resumable(settings):
        run.resume(trainables)
    target = trained_model_dir(run.out_dir)
    stop_reason = run.run_epochs(
        recipe.train_epoch,
        recipe.val_metrics,
        lambda: recipe.lr,
        save_best=lambda: save_clip_model_dir(model, target),
        save_last=lambda: run.checkpoint(trainables, settings),
    )
    return run.finish(stop_reason, model)
