"""Training under ``MultiWorkerMirroredStrategy``, where Keras 3.15's ``model.fit`` fails (keras-team/keras#20585).

Keras' own pieces do the work: the compiled loss and optimizer (whose update all-reduces the gradients across
replicas), ``strategy.run`` for the replicated step, and a ``CallbackList`` driving the same callbacks as
``model.fit`` (whole-volume Dice, checkpoints, ``BackupAndRestore``, CSV and TensorBoard logs). Only the loop is
written here; the patch-level validation metrics of ``fit`` are not computed (whole-volume Dice is).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


def fit_with_strategy_run(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    dataset: tf.data.Dataset,
    epochs: int,
    steps_per_epoch: int,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int | str = "auto",
) -> keras.callbacks.History:
    """Train a compiled ``model`` (built in ``strategy.scope()``) on ``dataset``, like ``model.fit``.

    Args:
        model: compiled model whose variables were created under ``strategy``.
        strategy: the distribution strategy (every worker runs this same call).
        dataset: endless dataset of global batches ``(slabs, labels)``.
        epochs: last epoch (a ``BackupAndRestore`` callback may start later).
        steps_per_epoch: global batches per epoch.
        callbacks: Keras callbacks, called as ``model.fit`` calls them.
        verbose: 0 silent, 1 or "auto" progress bar, 2 one line per epoch.

    Returns:
        The Keras ``History`` of this call (``loss`` per epoch, plus what the callbacks log).
    """
    verbose = 1 if verbose == "auto" else verbose
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, history],
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    loss_function = model.loss
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def train_step(iterator):
        def replica_step(batch):
            slabs, labels = batch
            with tf.GradientTape() as tape:
                loss = loss_function(labels, model(slabs, training=True))
                # The optimizer sums gradients over replicas: scale so the sum is the global batch mean.
                scaled = loss / strategy.num_replicas_in_sync
            model.optimizer.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
            return loss

        return strategy.reduce("MEAN", strategy.run(replica_step, args=(next(iterator),)), axis=None)

    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = getattr(model, "_initial_epoch", None) or 0  # set by BackupAndRestore, as fit reads it
    logs: dict = {}
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        total = 0.0
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            loss = float(train_step(iterator))
            total += loss
            callback_list.on_train_batch_end(step, {"loss": loss})
        logs = {"loss": total / steps_per_epoch}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return history
